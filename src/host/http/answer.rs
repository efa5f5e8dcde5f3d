//! What the JSON API answers, as types: each answer derives `Serialize`, and every refusal is
//! an [`ApiError`] carrying its status and the field it is about (from the parser that
//! refused it, never guessed from a message).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::manager::{ListOutcome, UserOutcome};
use crate::menu::BotCommand;
use crate::resolve::ContextError;

/// A request refused: `{"error": "...", "field": "...", "reasons": [..]}` with its status.
#[derive(Debug)]
pub(super) struct ApiError {
    status: StatusCode,
    error: String,
    field: Option<String>,
    reasons: Vec<String>,
}

impl ApiError {
    pub(super) fn new(status: StatusCode, error: impl Into<String>) -> ApiError {
        ApiError {
            status,
            error: error.into(),
            field: None,
            reasons: Vec::new(),
        }
    }

    /// Every reason, when there are several (a config's diagnostics).
    pub(super) fn reasons(mut self, reasons: Vec<String>) -> ApiError {
        self.reasons = reasons;
        self
    }

    pub(super) fn about(mut self, field: &str) -> ApiError {
        self.field = (!field.is_empty()).then(|| field.to_string());
        self
    }

    /// A query that does not describe a context (400, naming the parameter).
    pub(super) fn query(why: ContextError) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, why.message).about(&why.field)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        #[derive(Serialize)]
        struct Body<'a> {
            error: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            field: Option<&'a str>,
            #[serde(skip_serializing_if = "<[String]>::is_empty")]
            reasons: &'a [String],
        }
        let body = Body {
            error: &self.error,
            field: self.field.as_deref(),
            reasons: &self.reasons,
        };
        (self.status, Json(body)).into_response()
    }
}

/// One user's update: `POST /v1/users`.
#[derive(Serialize)]
pub(super) struct UserAnswer<'a> {
    user_id: i64,
    profile: &'a str,
    source: &'a str,
    status: &'static str,
    key: String,
    #[serde(rename = "override")]
    has_override: bool,
    menu: &'a [BotCommand],
    #[serde(skip_serializing_if = "Option::is_none")]
    resolver_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl<'a> From<&'a UserOutcome> for UserAnswer<'a> {
    fn from(o: &'a UserOutcome) -> UserAnswer<'a> {
        UserAnswer {
            user_id: o.user_id,
            profile: &o.resolution.profile,
            source: &o.resolution.source,
            status: o.status.label(),
            key: o.key.to_string(),
            has_override: o.has_override,
            menu: &o.menu,
            resolver_error: o.resolution.error.as_ref().map(|e| e.to_string()),
            error: o.status.is_failed().then(|| o.status.to_string()),
        }
    }
}

/// One list of a user's clearing.
#[derive(Serialize)]
pub(super) struct ListAnswer {
    key: String,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl From<&ListOutcome> for ListAnswer {
    fn from(l: &ListOutcome) -> ListAnswer {
        ListAnswer {
            key: l.key.to_string(),
            status: l.status.label(),
            error: l.status.is_failed().then(|| l.status.to_string()),
        }
    }
}

/// One user's clearing: `POST /v1/users/clear`.
#[derive(Serialize)]
pub(super) struct ClearAnswer {
    pub(super) user_id: i64,
    pub(super) lists: Vec<ListAnswer>,
}

/// The answer for one context of a request: what was done, or why it was refused (its
/// field, and its index in a list).
#[derive(Serialize)]
#[serde(untagged)]
pub(super) enum Each<T> {
    Done(T),
    Refused {
        error: String,
        field: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        index: Option<usize>,
    },
}

impl<T> Each<T> {
    pub(super) fn refused(why: &ContextError, index: Option<usize>) -> Each<T> {
        Each::Refused {
            error: why.message.clone(),
            field: why.field.clone(),
            index,
        }
    }
}

/// A list's answers, in input order.
#[derive(Serialize)]
pub(super) struct Results<T> {
    pub(super) results: Vec<Each<T>>,
}

/// What a user would see: `GET /v1/preview`.
#[derive(Serialize)]
pub(super) struct PreviewAnswer<'a> {
    pub(super) user_id: i64,
    pub(super) profile: &'a str,
    pub(super) source: &'a str,
    pub(super) menu: &'a [BotCommand],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) resolver_error: Option<String>,
}

/// The command a user meant: `GET /v1/suggest` (`command` null: none).
#[derive(Serialize)]
pub(super) struct SuggestAnswer<'a> {
    pub(super) command: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) description: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) exact: Option<bool>,
}

/// `GET /healthz`.
#[derive(Serialize)]
pub(super) struct Health {
    pub(super) ready: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) why: Option<&'static str>,
}
