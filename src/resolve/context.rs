//! The user context a bot gives for each user, and the one parser of contexts from outside
//! (the HTTP API, `sync-users`, golden cases): nothing in a context is ignored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::scope::{ChatType, Lang, Viewer};

/// A typed flag value a bot attaches to a user context.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FlagValue {
    Bool(bool),
    Int(i64),
    Text(String),
}

impl FlagValue {
    /// Parses a command-line value: `true`/`false` are booleans, integers are integers, the rest text.
    pub fn parse_cli(value: &str) -> FlagValue {
        match value {
            "true" => FlagValue::Bool(true),
            "false" => FlagValue::Bool(false),
            _ => value
                .parse()
                .map(FlagValue::Int)
                .unwrap_or_else(|_| FlagValue::Text(value.to_string())),
        }
    }
}

impl From<bool> for FlagValue {
    fn from(v: bool) -> Self {
        FlagValue::Bool(v)
    }
}
impl From<i64> for FlagValue {
    fn from(v: i64) -> Self {
        FlagValue::Int(v)
    }
}
impl From<&str> for FlagValue {
    fn from(v: &str) -> Self {
        FlagValue::Text(v.to_string())
    }
}
impl From<String> for FlagValue {
    fn from(v: String) -> Self {
        FlagValue::Text(v)
    }
}

/// Everything a resolver may base its decision on, and where the menu is shown.
///
/// From JSON (an API request, a `sync-users` line, a golden case) an unknown field is an
/// error, never ignored: a bot's typo (`flag` for `flags`) would otherwise resolve the user
/// as a guest and delete their list at Telegram.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserContext {
    pub user_id: i64,
    /// The chat the menu is for; defaults to the user's private chat.
    #[serde(default)]
    pub chat_id: Option<i64>,
    #[serde(default = "private")]
    pub chat_type: ChatType,
    /// The user's language as Telegram sends it (`en`, `pt-br`).
    #[serde(default)]
    pub language_code: Option<String>,
    #[serde(default)]
    pub flags: BTreeMap<String, FlagValue>,
    /// Whether the user administers the group chat (admins see `all_chat_administrators` lists).
    #[serde(default)]
    pub is_chat_admin: bool,
}

fn private() -> ChatType {
    ChatType::Private
}

/// The fields of a context's JSON shape.
pub const CONTEXT_FIELDS: [&str; 6] = [
    "user_id",
    "chat_id",
    "chat_type",
    "language_code",
    "flags",
    "is_chat_admin",
];

/// Why a context from outside was refused: the field (its path; empty for the whole) and a
/// message that says what to send instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextError {
    pub field: String,
    pub message: String,
}

impl ContextError {
    pub fn new(field: &str, message: impl Into<String>) -> ContextError {
        ContextError {
            field: field.to_string(),
            message: message.into(),
        }
    }

    /// `unknown field `flag`; did you mean `flags`?` (or the list of fields when nothing is
    /// close).
    pub fn unknown_field(name: &str) -> ContextError {
        let message = match closest(name, &CONTEXT_FIELDS) {
            Some(known) => format!("unknown field `{name}`; did you mean `{known}`?"),
            None => format!(
                "unknown field `{name}`; a context has {}",
                CONTEXT_FIELDS.map(|f| format!("`{f}`")).join(", ")
            ),
        };
        ContextError::new(name, message)
    }
}

impl std::fmt::Display for ContextError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ContextError {}

/// The known name `name` most likely misspells: a few edits away, or most of it shared
/// (`is_admin` -> `is_chat_admin`).
pub fn closest<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    let name = name.to_ascii_lowercase();
    known
        .iter()
        .map(|k| {
            (
                strsim::osa_distance(&name, k),
                strsim::jaro_winkler(&name, k),
                *k,
            )
        })
        .filter(|(edits, similar, _)| *edits <= 2 || *similar >= 0.85)
        .min_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)))
        .map(|(_, _, k)| k)
}

impl UserContext {
    /// A context from its JSON shape (a `sync-users` line, an API request, a golden case),
    /// checked: an unknown field is named with the closest known one, a bad value by its path
    /// (`flags.level: invalid type ...`), and the chat must be one Telegram can have (a group
    /// names its negative chat id; a private chat's id is the user's).
    pub fn from_json(value: serde_json::Value) -> Result<UserContext, ContextError> {
        let serde_json::Value::Object(fields) = &value else {
            return Err(ContextError::new(
                "",
                "a context is a JSON object, e.g. {\"user_id\": 42, \"flags\": {\"registered\": true}}",
            ));
        };
        for name in fields.keys() {
            if !CONTEXT_FIELDS.contains(&name.as_str()) {
                return Err(ContextError::unknown_field(name));
            }
        }
        if !fields.contains_key("user_id") {
            return Err(ContextError::new(
                "user_id",
                "missing field `user_id` (the user's Telegram id)",
            ));
        }
        let ctx: UserContext = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            if path == "." {
                ContextError::new("", e.inner().to_string())
            } else {
                ContextError::new(&path, format!("{path}: {}", e.inner()))
            }
        })?;
        ctx.checked()
    }

    /// [`from_json`](Self::from_json) from text: parsed straight into a context, and only a
    /// line that fails is parsed again to name the field.
    pub fn from_json_str(text: &str) -> Result<UserContext, ContextError> {
        UserContext::from_json_bytes(text.as_bytes())
    }

    /// [`from_json_str`](Self::from_json_str) from bytes (a request body).
    pub fn from_json_bytes(text: &[u8]) -> Result<UserContext, ContextError> {
        match serde_json::from_slice::<UserContext>(text) {
            Ok(ctx) => ctx.checked(),
            Err(e) => match serde_json::from_slice::<serde_json::Value>(text) {
                Ok(value) => UserContext::from_json(value),
                Err(_) => Err(ContextError::new("", e.to_string())),
            },
        }
    }

    fn checked(self) -> Result<UserContext, ContextError> {
        let ctx = self;
        let kind = || {
            serde_json::to_value(ctx.chat_type)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        };
        match (ctx.chat_type, ctx.chat_id) {
            (ChatType::Private, Some(chat)) if chat != ctx.user_id => Err(ContextError::new(
                "chat_id",
                format!(
                    "chat_id: {chat} is not user {}'s private chat (Telegram's private chat id is the user id): drop `chat_id`, or send the group's `chat_type`",
                    ctx.user_id
                ),
            )),
            (ChatType::Private, _) => Ok(ctx),
            (_, None) => Err(ContextError::new(
                "chat_id",
                format!(
                    "chat_id: a `{}` context needs the group's `chat_id`",
                    kind()
                ),
            )),
            (_, Some(chat)) if chat > 0 => Err(ContextError::new(
                "chat_id",
                format!(
                    "chat_id: {chat} cannot be a `{}` (Telegram's group ids are negative, -100... for supergroups; a positive id is a user's)",
                    kind()
                ),
            )),
            _ => Ok(ctx),
        }
    }

    /// A user in their private chat with the bot.
    pub fn private(user_id: i64) -> Self {
        UserContext {
            user_id,
            chat_id: None,
            chat_type: ChatType::Private,
            language_code: None,
            flags: BTreeMap::new(),
            is_chat_admin: false,
        }
    }

    /// A user in a group or supergroup chat.
    pub fn in_group(user_id: i64, chat_id: i64) -> Self {
        UserContext {
            chat_id: Some(chat_id),
            chat_type: ChatType::Supergroup,
            ..UserContext::private(user_id)
        }
    }

    pub fn language(mut self, code: &str) -> Self {
        self.language_code = Some(code.to_string());
        self
    }

    pub fn flag(mut self, name: &str, value: impl Into<FlagValue>) -> Self {
        self.flags.insert(name.to_string(), value.into());
        self
    }

    pub fn admin(mut self, is_admin: bool) -> Self {
        self.is_chat_admin = is_admin;
        self
    }

    /// The chat whose menu this context is about.
    pub fn chat(&self) -> i64 {
        self.chat_id.unwrap_or(self.user_id)
    }

    /// The user's language normalised to a list language (`pt-br` -> `pt`).
    pub fn lang(&self) -> Option<Lang> {
        self.language_code.as_deref().and_then(Lang::from_user_tag)
    }

    /// True when the flag is set to boolean true; a missing flag counts as false.
    pub fn is(&self, flag: &str) -> bool {
        matches!(self.flags.get(flag), Some(FlagValue::Bool(true)))
    }

    /// This user as the precedence rule sees them.
    pub fn viewer(&self) -> Viewer {
        Viewer {
            chat_type: self.chat_type,
            chat_id: self.chat(),
            user_id: self.user_id,
            language: self.lang(),
            is_admin: self.is_chat_admin,
        }
    }
}
