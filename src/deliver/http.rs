//! [`BotApi`] over our own reqwest client: one attempt per call, classified by the Bot API's
//! `error_code` and `parameters.retry_after` (teloxide drops the first and waits 10 s after a
//! 5xx), so the delivery layer above decides every retry itself.

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use super::{ApiError, ApiFuture, BotApi};
use crate::config::MenuButton;
use crate::menu::BotCommand;
use crate::scope::ListKey;

/// A Bot API client for one bot. Cheap to clone (the connection pool is shared).
#[derive(Clone)]
pub struct HttpBotApi {
    client: reqwest::Client,
    /// `{api_url}bot{token}/`: holds the token, so never printed.
    method_base: String,
}

impl std::fmt::Debug for HttpBotApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HttpBotApi { .. }")
    }
}

/// The public Bot API server.
pub const TELEGRAM_API_URL: &str = "https://api.telegram.org/";

impl HttpBotApi {
    /// A client for `token` on `api_url` (e.g. [`TELEGRAM_API_URL`] or an emulator), with a
    /// 30 s request timeout.
    pub fn new(token: &str, api_url: &str) -> Result<HttpBotApi, ApiError> {
        Self::with_timeout(token, api_url, Duration::from_secs(30))
    }

    pub fn with_timeout(
        token: &str,
        api_url: &str,
        timeout: Duration,
    ) -> Result<HttpBotApi, ApiError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| ApiError::Transport(without_url(&e)))?;
        let base = api_url.trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ApiError::Transport(format!(
                "the Bot API URL must start with http:// or https://, got `{base}`"
            )));
        }
        Ok(HttpBotApi {
            client,
            method_base: format!("{base}/bot{token}/"),
        })
    }

    async fn call(&self, method: &str, body: serde_json::Value) -> Result<(), ApiError> {
        let response = self
            .client
            .post(format!("{}{method}", self.method_base))
            .json(&body)
            .send()
            .await
            .map_err(|e| ApiError::Transport(without_url(&e)))?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| ApiError::Transport(without_url(&e)))?;
        classify(status, &bytes)
    }
}

/// Telegram's answer shape, as far as errors go.
#[derive(Deserialize)]
struct Answer {
    ok: bool,
    error_code: Option<u16>,
    description: Option<String>,
    parameters: Option<Parameters>,
}

#[derive(Deserialize)]
struct Parameters {
    retry_after: Option<u64>,
}

/// Maps an HTTP answer to the outcome: the body when it is Telegram's shape, else the status.
fn classify(status: u16, body: &[u8]) -> Result<(), ApiError> {
    match serde_json::from_slice::<Answer>(body) {
        Ok(answer) if answer.ok => Ok(()),
        Ok(answer) => {
            let code = answer.error_code.unwrap_or(status);
            let retry_after = answer.parameters.and_then(|p| p.retry_after);
            if let Some(secs) = retry_after.or((code == 429).then_some(1)) {
                return Err(ApiError::RetryAfter(Duration::from_secs(secs)));
            }
            Err(ApiError::Api {
                code: Some(code),
                description: answer
                    .description
                    .unwrap_or_else(|| status_phrase(status).to_string()),
            })
        }
        // A proxy or load balancer answered (502 pages and the like): the status decides.
        Err(_) if status >= 400 => Err(ApiError::Api {
            code: Some(status),
            description: status_phrase(status).to_string(),
        }),
        Err(_) => Err(ApiError::Transport(format!(
            "unparsable Bot API answer (HTTP {status}): {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        ))),
    }
}

fn status_phrase(status: u16) -> &'static str {
    reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("HTTP error")
}

/// reqwest errors print the URL, and Bot API URLs contain the token: never let it out.
pub(crate) fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let mut msg = kind.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

fn list_body(key: &ListKey) -> serde_json::Map<String, serde_json::Value> {
    let mut body = serde_json::Map::new();
    body.insert(
        "scope".into(),
        serde_json::to_value(&key.scope).expect("scopes serialise"),
    );
    if let Some(lang) = key.language {
        body.insert("language_code".into(), lang.as_str().into());
    }
    body
}

impl BotApi for HttpBotApi {
    fn set_my_commands<'a>(
        &'a self,
        key: &'a ListKey,
        commands: &'a [BotCommand],
    ) -> ApiFuture<'a> {
        Box::pin(async move {
            let mut body = list_body(key);
            body.insert(
                "commands".into(),
                serde_json::to_value(commands).expect("commands serialise"),
            );
            self.call("setMyCommands", body.into()).await
        })
    }

    fn delete_my_commands<'a>(&'a self, key: &'a ListKey) -> ApiFuture<'a> {
        Box::pin(async move { self.call("deleteMyCommands", list_body(key).into()).await })
    }

    fn set_default_menu_button(&self, button: MenuButton) -> ApiFuture<'_> {
        let kind = button.name();
        Box::pin(async move {
            self.call("setChatMenuButton", json!({"menu_button": {"type": kind}}))
                .await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified_by_telegram_fields_then_status() {
        assert_eq!(classify(200, br#"{"ok":true,"result":true}"#), Ok(()));
        assert_eq!(
            classify(
                429,
                br#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 3","parameters":{"retry_after":3}}"#
            ),
            Err(ApiError::RetryAfter(Duration::from_secs(3)))
        );
        let bad = classify(
            400,
            br#"{"ok":false,"error_code":400,"description":"Bad Request: BOT_COMMAND_INVALID"}"#,
        )
        .unwrap_err();
        assert_eq!(
            bad,
            ApiError::Api {
                code: Some(400),
                description: "Bad Request: BOT_COMMAND_INVALID".into()
            }
        );
        assert!(!bad.is_retryable());
        let gateway = classify(502, b"<html>Bad Gateway</html>").unwrap_err();
        assert_eq!(
            gateway,
            ApiError::Api {
                code: Some(502),
                description: "Bad Gateway".into()
            }
        );
        assert!(gateway.is_retryable());
        assert!(matches!(
            classify(200, b"garbage"),
            Err(ApiError::Transport(_))
        ));
    }

    #[test]
    fn debug_output_hides_the_token() {
        let api = HttpBotApi::new("123:SECRET", "http://127.0.0.1:1/").unwrap();
        assert!(!format!("{api:?}").contains("SECRET"));
        assert!(HttpBotApi::new("t", "ftp://x").is_err());
    }
}
