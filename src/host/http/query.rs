//! The query string of `GET /v1/preview`, `/v1/suggest` and the status page's preview: a
//! user context in parameters, every parameter known (a typo is named with the closest one).

use serde::Deserialize;

use crate::resolve::{ContextError, FlagValue, UserContext};

/// `?user_id=5&chat_id=..&chat_type=group&language_code=es&flags=registered,level=3`
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct ContextQuery {
    pub(super) user_id: Option<i64>,
    pub(super) chat_id: Option<i64>,
    pub(super) chat_type: Option<String>,
    pub(super) language_code: Option<String>,
    /// Comma-separated: `name` (true) or `name=value`.
    pub(super) flags: Option<String>,
    #[serde(default)]
    pub(super) chat_admin: bool,
    /// What the user sent (`/v1/suggest` only).
    pub(super) text: Option<String>,
}

const QUERY_FIELDS: [&str; 7] = [
    "user_id",
    "chat_id",
    "chat_type",
    "language_code",
    "flags",
    "chat_admin",
    "text",
];

impl ContextQuery {
    /// The query string, every parameter known: a typo is named with the closest one.
    pub(super) fn parse(raw: Option<&str>) -> Result<ContextQuery, ContextError> {
        let raw = raw.unwrap_or("");
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw)
            .map_err(|e| ContextError::new("", format!("the query string is unreadable: {e}")))?;
        for (name, _) in &pairs {
            if !QUERY_FIELDS.contains(&name.as_str()) {
                let message = match crate::resolve::closest(name, &QUERY_FIELDS) {
                    Some(known) => format!("unknown parameter `{name}`; did you mean `{known}`?"),
                    None => format!(
                        "unknown parameter `{name}`; the query takes {}",
                        QUERY_FIELDS.join(", ")
                    ),
                };
                return Err(ContextError::new(name, message));
            }
        }
        serde_urlencoded::from_str(raw).map_err(|e| {
            let text = e.to_string();
            let field = QUERY_FIELDS
                .iter()
                .find(|f| text.contains(&format!("`{f}`")))
                .copied()
                .unwrap_or("");
            ContextError::new(field, text)
        })
    }

    pub(super) fn context(&self) -> Result<UserContext, ContextError> {
        let Some(user_id) = self.user_id else {
            return Err(ContextError::new("user_id", "user_id is required"));
        };
        let mut ctx = UserContext::private(user_id);
        if let Some(kind) = self.chat_type.as_deref().filter(|k| !k.is_empty()) {
            match crate::ChatType::parse(kind) {
                Some(t) => ctx.chat_type = t,
                None => {
                    return Err(ContextError::new(
                        "chat_type",
                        format!("chat_type: unknown chat type `{kind}`"),
                    ));
                }
            }
        }
        ctx.chat_id = self.chat_id;
        ctx.is_chat_admin = self.chat_admin;
        ctx.language_code = self.language_code.clone().filter(|l| !l.is_empty());
        for flag in self
            .flags
            .as_deref()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
        {
            if flag.is_empty() {
                continue;
            }
            let (name, value) = match flag.split_once('=') {
                Some((n, v)) => (n, FlagValue::parse_cli(v)),
                None => (flag, FlagValue::Bool(true)),
            };
            ctx.flags.insert(name.to_string(), value);
        }
        // The same checks as a JSON context (a private chat is the user's; groups negative).
        let value = serde_json::to_value(&ctx).map_err(|e| ContextError::new("", e.to_string()))?;
        UserContext::from_json(value)
    }
}

/// `POST /v1/impact?users=true`: list every user the change touches.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct ImpactQuery {
    #[serde(default)]
    pub(super) users: bool,
}

impl ImpactQuery {
    pub(super) fn parse(raw: Option<&str>) -> Result<ImpactQuery, ContextError> {
        serde_urlencoded::from_str(raw.unwrap_or("")).map_err(|e| {
            let text = e.to_string();
            let field = if text.contains("users") { "users" } else { "" };
            ContextError::new(field, format!("{text} (the query takes users=true|false)"))
        })
    }
}

/// `POST /v1/rollouts?percent=P`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RolloutQuery {
    pub(super) percent: f64,
}

impl RolloutQuery {
    pub(super) fn parse(raw: Option<&str>) -> Result<RolloutQuery, ContextError> {
        serde_urlencoded::from_str(raw.unwrap_or("")).map_err(|e| {
            ContextError::new(
                "percent",
                format!("{e} (the query takes percent=P, the share of users, e.g. percent=10)"),
            )
        })
    }
}
