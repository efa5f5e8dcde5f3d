//! [`BotApi`] over our own reqwest client: one attempt per call, classified by the Bot API's
//! `error_code` and `parameters.retry_after` (teloxide drops the first and waits 10 s after a
//! 5xx), so the delivery layer above decides every retry itself.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ApiError, ApiFuture, BotApi};
use crate::config::MenuButton;
use crate::menu::BotCommand;
use crate::scope::{ListKey, Scope};

/// A Bot API client for one bot. Cheap to clone (the connection pool is shared).
#[derive(Clone)]
pub struct HttpBotApi {
    client: reqwest::Client,
    /// `{api_url}bot{token}/{method}`, parsed once: they hold the token, so never printed.
    set_commands: reqwest::Url,
    delete_commands: reqwest::Url,
    set_menu_button: reqwest::Url,
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
        let method = |name: &str| {
            reqwest::Url::parse(&format!("{base}/bot{token}/{name}")).map_err(|e| {
                // The error names the part that failed, never the URL with the token.
                ApiError::Transport(format!("the Bot API URL `{base}` is not valid: {e}"))
            })
        };
        Ok(HttpBotApi {
            client,
            set_commands: method("setMyCommands")?,
            delete_commands: method("deleteMyCommands")?,
            set_menu_button: method("setChatMenuButton")?,
        })
    }

    /// One POST with a JSON body, built straight from borrowed data (no intermediate JSON
    /// tree: this is the per-update hot path).
    async fn call(&self, url: &reqwest::Url, body: Vec<u8>) -> Result<(), ApiError> {
        let response = self
            .client
            .post(url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
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

fn json(body: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(body).expect("requests serialise")
}

/// `setMyCommands` / `deleteMyCommands` parameters.
#[derive(Serialize)]
struct ListRequest<'a> {
    scope: &'a Scope,
    #[serde(skip_serializing_if = "Option::is_none")]
    language_code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    commands: Option<&'a [BotCommand]>,
}

impl<'a> ListRequest<'a> {
    fn new(key: &'a ListKey, commands: Option<&'a [BotCommand]>) -> Self {
        ListRequest {
            scope: &key.scope,
            language_code: key.language.as_ref().map(|l| l.as_str()),
            commands,
        }
    }
}

#[derive(Serialize)]
struct MenuButtonRequest {
    menu_button: MenuButtonType,
}

#[derive(Serialize)]
struct MenuButtonType {
    #[serde(rename = "type")]
    kind: &'static str,
}

impl BotApi for HttpBotApi {
    fn set_my_commands<'a>(
        &'a self,
        key: &'a ListKey,
        commands: &'a [BotCommand],
    ) -> ApiFuture<'a> {
        Box::pin(self.call(
            &self.set_commands,
            json(&ListRequest::new(key, Some(commands))),
        ))
    }

    fn delete_my_commands<'a>(&'a self, key: &'a ListKey) -> ApiFuture<'a> {
        Box::pin(self.call(&self.delete_commands, json(&ListRequest::new(key, None))))
    }

    fn set_default_menu_button(&self, button: MenuButton) -> ApiFuture<'_> {
        let body = MenuButtonRequest {
            menu_button: MenuButtonType {
                kind: button.name(),
            },
        };
        Box::pin(self.call(&self.set_menu_button, json(&body)))
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
