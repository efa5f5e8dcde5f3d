//! Delivery: the [`BotApi`] trait, its errors, the two clients (our own HTTP client and the
//! teloxide adapter) and [`Delivery`], which paces, retries and counts every call.
//!
//! Architecture invariant: this is the only module that knows HTTP and Telegram's error
//! codes. Everything above it sees [`ApiError`], already classified as retryable or not.

mod http;
mod lanes;
mod pace;
mod reliable;
mod retry;
#[cfg(feature = "teloxide")]
mod teloxide;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

pub use self::http::{HttpBotApi, TELEGRAM_API_URL};
pub use self::lanes::{BACKGROUND_SHARE, Lane};
pub use self::pace::{GateFuture, LocalGate, RateGate};
pub use self::reliable::{Delivery, DeliveryOptions, DeliveryStats, Permit};
pub use self::retry::{BreakerState, RetryPolicy};
#[cfg(feature = "teloxide")]
pub use self::teloxide::TeloxideApi;

use crate::config::MenuButton;
use crate::menu::BotCommand;
use crate::scope::ListKey;

/// A boxed future, so `BotApi` can be used as a trait object.
pub type ApiFuture<'a> = Pin<Box<dyn Future<Output = Result<(), ApiError>> + Send + 'a>>;

/// The Bot API methods the engine needs.
pub trait BotApi: Send + Sync {
    /// `setMyCommands` for one (scope, language).
    fn set_my_commands<'a>(&'a self, key: &'a ListKey, commands: &'a [BotCommand])
    -> ApiFuture<'a>;
    /// `deleteMyCommands` for one (scope, language).
    fn delete_my_commands<'a>(&'a self, key: &'a ListKey) -> ApiFuture<'a>;
    /// `setChatMenuButton` without a chat: the bot's default button.
    fn set_default_menu_button(&self, button: MenuButton) -> ApiFuture<'_>;
}

/// Why a Bot API call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// Telegram refused the request (`{"ok":false,...}`); `code` is the HTTP-like error code
    /// when known.
    #[error("Bot API error{}: {description}", code.map(|c| format!(" {c}")).unwrap_or_default())]
    Api {
        code: Option<u16>,
        description: String,
    },
    /// 429: flood control asks to wait this long before retrying.
    #[error("rate limited by Telegram: retry after {0:?}")]
    RetryAfter(Duration),
    /// The request did not get a Bot API answer (connection, timeout, unparsable body).
    #[error("transport error: {0}")]
    Transport(String),
}

impl ApiError {
    /// Whether sending the same request again may succeed: flood control, server errors and
    /// transport failures may; a 4xx answer will not.
    pub fn is_retryable(&self) -> bool {
        match self {
            ApiError::RetryAfter(_) | ApiError::Transport(_) => true,
            ApiError::Api { code, .. } => !matches!(code, Some(400..=499)),
        }
    }
}
