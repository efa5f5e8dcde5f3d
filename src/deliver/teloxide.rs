//! [`BotApi`] over a teloxide `Bot`, so a teloxide bot hands cmdscope the client it already has.
//!
//! teloxide drops the Bot API's `error_code`; the code is recovered from the description's
//! standard prefix (`Bad Request: ...` is 400 and so on), which Telegram always sends.
//! Note: teloxide itself waits 10 s after any 5xx answer before returning the error.

use teloxide_core::RequestError;
use teloxide_core::payloads::{
    DeleteMyCommandsSetters, SetChatMenuButtonSetters, SetMyCommandsSetters,
};
use teloxide_core::prelude::Requester;
use teloxide_core::types::{self as tg, BotCommandScope, ChatId, Recipient, UserId};

use super::{ApiError, ApiFuture, BotApi};
use crate::config::MenuButton;
use crate::menu::BotCommand;
use crate::scope::{ChatRef, ListKey, Scope};

/// The teloxide adapter. Build it from any `teloxide::Bot` (`Bot::set_api_url` for other servers).
#[derive(Clone, Debug)]
pub struct TeloxideApi {
    bot: teloxide_core::Bot,
}

impl TeloxideApi {
    pub fn new(bot: teloxide_core::Bot) -> Self {
        TeloxideApi { bot }
    }

    /// A bot for `token` talking to `api_url` instead of api.telegram.org.
    pub fn with_api_url(token: &str, api_url: &str) -> Result<Self, url::ParseError> {
        let url = url::Url::parse(api_url)?;
        Ok(TeloxideApi::new(
            teloxide_core::Bot::new(token).set_api_url(url),
        ))
    }

    pub fn bot(&self) -> &teloxide_core::Bot {
        &self.bot
    }
}

fn recipient(chat: &ChatRef) -> Recipient {
    match chat {
        ChatRef::Id(id) => Recipient::Id(ChatId(*id)),
        ChatRef::Username(name) => Recipient::ChannelUsername(name.clone()),
    }
}

fn scope(scope: &Scope) -> BotCommandScope {
    match scope {
        Scope::Default => BotCommandScope::Default,
        Scope::AllPrivateChats => BotCommandScope::AllPrivateChats,
        Scope::AllGroupChats => BotCommandScope::AllGroupChats,
        Scope::AllChatAdministrators => BotCommandScope::AllChatAdministrators,
        Scope::Chat { chat_id } => BotCommandScope::Chat {
            chat_id: recipient(chat_id),
        },
        Scope::ChatAdministrators { chat_id } => BotCommandScope::ChatAdministrators {
            chat_id: recipient(chat_id),
        },
        Scope::ChatMember { chat_id, user_id } => BotCommandScope::ChatMember {
            chat_id: recipient(chat_id),
            user_id: UserId(*user_id as u64),
        },
    }
}

/// Maps teloxide's error to ours, keeping Telegram's description.
fn classify(err: RequestError) -> ApiError {
    match err {
        RequestError::RetryAfter(secs) => ApiError::RetryAfter(secs.duration()),
        // teloxide renames Telegram's "Unauthorized" / "Not Found" for a bad token.
        RequestError::Api(teloxide_core::ApiError::InvalidToken) => ApiError::Api {
            code: Some(401),
            description: "Unauthorized: invalid bot token".to_string(),
        },
        RequestError::Api(api) => {
            let description = match api {
                teloxide_core::ApiError::Unknown(text) => text,
                known => known.to_string(),
            };
            ApiError::Api {
                code: code_from_description(&description),
                description,
            }
        }
        RequestError::MigrateToChatId(id) => ApiError::Api {
            code: Some(400),
            description: format!("Bad Request: group chat was upgraded to a supergroup chat {id}"),
        },
        RequestError::Network(e) => ApiError::Transport(super::http::without_url(&e)),
        RequestError::InvalidJson { raw, .. } => ApiError::Transport(format!(
            "unparsable Bot API answer: {}",
            raw.chars().take(200).collect::<String>()
        )),
        RequestError::Io(e) => ApiError::Transport(e.to_string()),
    }
}

/// Telegram's descriptions start with the status phrase of their error code.
fn code_from_description(description: &str) -> Option<u16> {
    const PREFIXES: [(&str, u16); 6] = [
        ("Bad Request", 400),
        ("Unauthorized", 401),
        ("Forbidden", 403),
        ("Not Found", 404),
        ("Conflict", 409),
        ("Too Many Requests", 429),
    ];
    PREFIXES
        .iter()
        .find(|(p, _)| description.starts_with(p))
        .map(|&(_, c)| c)
}

impl BotApi for TeloxideApi {
    fn set_my_commands<'a>(
        &'a self,
        key: &'a ListKey,
        commands: &'a [BotCommand],
    ) -> ApiFuture<'a> {
        Box::pin(async move {
            let commands = commands
                .iter()
                .map(|c| tg::BotCommand::new(c.command.clone(), c.description.clone()));
            let mut req = self.bot.set_my_commands(commands).scope(scope(&key.scope));
            if let Some(lang) = key.language {
                req = req.language_code(lang.as_str());
            }
            req.await.map(drop).map_err(classify)
        })
    }

    fn delete_my_commands<'a>(&'a self, key: &'a ListKey) -> ApiFuture<'a> {
        Box::pin(async move {
            let mut req = self.bot.delete_my_commands().scope(scope(&key.scope));
            if let Some(lang) = key.language {
                req = req.language_code(lang.as_str());
            }
            req.await.map(drop).map_err(classify)
        })
    }

    fn set_default_menu_button(&self, button: MenuButton) -> ApiFuture<'_> {
        Box::pin(async move {
            let button = match button {
                MenuButton::Commands => tg::MenuButton::Commands,
                MenuButton::Default => tg::MenuButton::Default,
            };
            self.bot
                .set_chat_menu_button()
                .menu_button(button)
                .await
                .map(drop)
                .map_err(classify)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_come_from_descriptions() {
        assert_eq!(
            code_from_description("Bad Request: BOT_COMMAND_INVALID"),
            Some(400)
        );
        assert_eq!(
            code_from_description("Forbidden: bot was blocked by the user"),
            Some(403)
        );
        assert_eq!(code_from_description("Internal Server Error"), None);
        let e = classify(RequestError::Api(teloxide_core::ApiError::Unknown(
            "Bad Request: x".into(),
        )));
        assert!(!e.is_retryable());
        let e = classify(RequestError::Api(teloxide_core::ApiError::Unknown(
            "Bad Gateway".into(),
        )));
        assert!(e.is_retryable());
    }
}
