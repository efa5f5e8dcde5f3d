//! The seam between the engine and the logic that decides who sees what: the user context,
//! the [`Resolver`] (context -> profile name) and [`Translator`] (key, language -> text) traits,
//! and their native implementations. WebAssembly plugins implement the same traits.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

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
        match serde_json::from_str::<UserContext>(text) {
            Ok(ctx) => ctx.checked(),
            Err(e) => match serde_json::from_str::<serde_json::Value>(text) {
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

/// Why a resolver gave no profile. The engine then uses `default_profile` and reports this.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveError {
    /// The resolver itself answered with an error.
    #[error("resolver returned an error: {0}")]
    Rejected(String),
    /// The resolver answered a profile the config does not define.
    #[error("resolver returned unknown profile `{0}`")]
    UnknownProfile(String),
    /// The resolver could not run to completion (crash, timeout, resource limit).
    #[error("resolver failed: {0}")]
    Failed(String),
}

/// Decides a user's profile from their context.
///
/// Implementations should be pure functions of the context: that is what makes caching their
/// outputs exact.
/// A profile or resolver name, shared rather than copied: the resolutions of a million users
/// hold the same few names. Compares, prints and serialises as the text.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(Arc<str>);

impl Name {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for Name {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Name {
    fn from(s: &str) -> Name {
        Name(Arc::from(s))
    }
}

impl From<String> for Name {
    fn from(s: String) -> Name {
        Name(Arc::from(s))
    }
}

impl From<Arc<str>> for Name {
    fn from(s: Arc<str>) -> Name {
        Name(s)
    }
}

impl From<Name> for Arc<str> {
    fn from(n: Name) -> Arc<str> {
        n.0
    }
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::fmt::Debug for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.0, f)
    }
}

impl PartialEq<str> for Name {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for Name {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl PartialEq<String> for Name {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

impl Serialize for Name {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

pub trait Resolver: Send + Sync {
    /// A name for reports (`source` in outputs).
    fn name(&self) -> &str;
    fn resolve(&self, ctx: &UserContext) -> Result<String, ResolveError>;

    /// Whether a call may take long enough (up to its sandbox deadline) that async callers
    /// should run it off the runtime's worker threads.
    fn may_block(&self) -> bool {
        false
    }

    /// What the answers depend on besides the context (a plugin's sha256, a rule set's
    /// fingerprint). Two calls with the same identity and context give the same answer, which
    /// is what makes caching exact. `None`: not cacheable (it may read state nobody sees).
    fn identity(&self) -> Option<Arc<str>> {
        None
    }

    /// Resolves and says which identity answered, from one snapshot: a hot-swapped resolver
    /// may change between `identity()` and `resolve()`, and a cache must not file an answer of
    /// the new version under the old one.
    fn resolve_identified(
        &self,
        ctx: &UserContext,
    ) -> (Option<Arc<str>>, Result<String, ResolveError>) {
        (self.identity(), self.resolve(ctx))
    }

    /// Many users at once, answers in the same order. Bulk paths (reconciliation, batches)
    /// call this once per page; a plugin resolver crosses into the sandbox as few times as
    /// its interface allows.
    fn resolve_batch(&self, ctxs: &[&UserContext]) -> Vec<Result<String, ResolveError>> {
        ctxs.iter().map(|ctx| self.resolve(ctx)).collect()
    }
}

/// Gives text for a translation key in a language, or `None` when it has none.
pub trait Translator: Send + Sync {
    fn translate(&self, key: &str, language: Lang) -> Option<String>;

    /// Translates many keys in one call; plugins override this to cross the sandbox once.
    fn translate_batch(&self, keys: &[&str], language: Lang) -> Vec<Option<String>> {
        keys.iter().map(|k| self.translate(k, language)).collect()
    }

    /// `translate_batch`, or `None` when the call failed (a trap, a timeout): then the
    /// answers are not "no translation" and must not be cached.
    fn try_translate_batch(&self, keys: &[&str], language: Lang) -> Option<Vec<Option<String>>> {
        Some(self.translate_batch(keys, language))
    }

    /// What this translator's answers depend on (a plugin's sha256 and settings), when they
    /// depend on nothing else; `None` means uncacheable.
    fn identity(&self) -> Option<Arc<str>> {
        None
    }
}

/// A resolver from a closure, for bots whose rules live in Rust.
pub struct FnResolver<F> {
    name: String,
    f: F,
}

impl<F> FnResolver<F>
where
    F: Fn(&UserContext) -> Result<String, ResolveError> + Send + Sync,
{
    pub fn new(name: &str, f: F) -> Self {
        FnResolver {
            name: name.to_string(),
            f,
        }
    }
}

impl<F> Resolver for FnResolver<F>
where
    F: Fn(&UserContext) -> Result<String, ResolveError> + Send + Sync,
{
    fn name(&self) -> &str {
        &self.name
    }
    fn resolve(&self, ctx: &UserContext) -> Result<String, ResolveError> {
        (self.f)(ctx)
    }
}

/// Everyone gets the same profile.
pub struct StaticResolver(pub String);

impl Resolver for StaticResolver {
    fn name(&self) -> &str {
        "static"
    }
    fn identity(&self) -> Option<Arc<str>> {
        Some(Arc::from(format!("static:{}", self.0)))
    }
    fn resolve(&self, _: &UserContext) -> Result<String, ResolveError> {
        Ok(self.0.clone())
    }
}

/// The first rule whose boolean flag is true decides the profile; otherwise `otherwise`.
/// `FlagRules::tiered()` is the native twin of the `tiered-resolver` example plugin.
#[derive(Debug, Clone)]
pub struct FlagRules {
    rules: Vec<(String, String)>,
    otherwise: String,
}

impl FlagRules {
    pub fn new<'a>(rules: impl IntoIterator<Item = (&'a str, &'a str)>, otherwise: &str) -> Self {
        FlagRules {
            rules: rules
                .into_iter()
                .map(|(f, p)| (f.to_string(), p.to_string()))
                .collect(),
            otherwise: otherwise.to_string(),
        }
    }

    /// banned -> banned; admin -> admin; premium -> premium; registered -> user; else guest.
    pub fn tiered() -> Self {
        FlagRules::new(
            [
                ("banned", "banned"),
                ("admin", "admin"),
                ("premium", "premium"),
                ("registered", "user"),
            ],
            "guest",
        )
    }
}

impl Resolver for FlagRules {
    fn name(&self) -> &str {
        "flag-rules"
    }
    /// Pure: the answer depends on the rules and the context only.
    fn identity(&self) -> Option<Arc<str>> {
        Some(Arc::from(format!(
            "flag-rules:{:?}->{}",
            self.rules, self.otherwise
        )))
    }
    fn resolve(&self, ctx: &UserContext) -> Result<String, ResolveError> {
        let hit = self.rules.iter().find(|(flag, _)| ctx.is(flag));
        Ok(hit.map(|(_, p)| p).unwrap_or(&self.otherwise).clone())
    }
}

/// Translates nothing: descriptions come from the config alone.
pub struct NoTranslator;

impl Translator for NoTranslator {
    fn translate(&self, _: &str, _: Lang) -> Option<String> {
        None
    }
}

/// An in-memory catalog: language -> key -> text.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    entries: HashMap<Lang, HashMap<String, String>>,
}

impl Catalog {
    pub fn insert(&mut self, language: Lang, key: &str, text: &str) {
        self.entries
            .entry(language)
            .or_default()
            .insert(key.to_string(), text.to_string());
    }

    /// Reads `{"es": {"shop.start.desc": "Iniciar"}}`.
    pub fn from_json(text: &str) -> Result<Catalog, serde_json::Error> {
        let raw: HashMap<Lang, HashMap<String, String>> = serde_json::from_str(text)?;
        Ok(Catalog { entries: raw })
    }
}

impl Translator for Catalog {
    fn translate(&self, key: &str, language: Lang) -> Option<String> {
        self.entries.get(&language)?.get(key).cloned()
    }
}

/// Asks each translator in turn; the first answer wins.
#[derive(Clone, Default)]
pub struct TranslatorChain(pub Vec<Arc<dyn Translator>>);

impl Translator for TranslatorChain {
    fn translate(&self, key: &str, language: Lang) -> Option<String> {
        self.0.iter().find_map(|t| t.translate(key, language))
    }

    /// One batch per translator, each asked only for what the ones before it lacked.
    fn translate_batch(&self, keys: &[&str], language: Lang) -> Vec<Option<String>> {
        let mut out = vec![None; keys.len()];
        for translator in &self.0 {
            let missing: Vec<usize> = (0..keys.len()).filter(|&i| out[i].is_none()).collect();
            if missing.is_empty() {
                break;
            }
            let asked: Vec<&str> = missing.iter().map(|&i| keys[i]).collect();
            for (i, text) in missing
                .into_iter()
                .zip(translator.translate_batch(&asked, language))
            {
                out[i] = text;
            }
        }
        out
    }
}

impl fmt::Debug for dyn Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Resolver({})", self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiered_rules_follow_the_spec() {
        let r = FlagRules::tiered();
        let base = UserContext::private(1);
        let cases = [
            (vec![], "guest"),
            (vec![("registered", true)], "user"),
            (vec![("registered", true), ("premium", true)], "premium"),
            (vec![("premium", true), ("admin", true)], "admin"),
            (vec![("admin", true), ("banned", true)], "banned"),
            (vec![("admin", false), ("registered", true)], "user"),
        ];
        for (flags, expected) in cases {
            let mut ctx = base.clone();
            for (f, v) in &flags {
                ctx = ctx.flag(f, *v);
            }
            assert_eq!(r.resolve(&ctx).unwrap(), expected, "{flags:?}");
        }
        // Non-boolean values never count as true.
        assert_eq!(r.resolve(&base.clone().flag("admin", 1)).unwrap(), "guest");
        assert_eq!(r.resolve(&base.flag("admin", "true")).unwrap(), "guest");
    }

    #[test]
    fn cli_flag_values_are_typed() {
        assert_eq!(FlagValue::parse_cli("true"), FlagValue::Bool(true));
        assert_eq!(FlagValue::parse_cli("-42"), FlagValue::Int(-42));
        assert_eq!(FlagValue::parse_cli("gold"), FlagValue::Text("gold".into()));
    }

    #[test]
    fn context_json_matches_the_users_file_shape() {
        let ctx: UserContext = serde_json::from_str(
            r#"{"user_id":1,"chat_id":-5,"chat_type":"group","language_code":"pt-br","flags":{"registered":true,"level":3,"tier":"gold"}}"#,
        )
        .unwrap();
        assert_eq!(ctx.chat(), -5);
        assert_eq!(ctx.lang().unwrap().as_str(), "pt");
        assert!(ctx.is("registered"));
        assert_eq!(ctx.flags["level"], FlagValue::Int(3));
        let private: UserContext = serde_json::from_str(r#"{"user_id":9}"#).unwrap();
        assert_eq!(private.chat(), 9);
        assert_eq!(private.chat_type, ChatType::Private);
    }

    #[test]
    fn chain_takes_the_first_answer() {
        let en = Lang::parse("en").unwrap();
        let mut a = Catalog::default();
        a.insert(en, "k1", "from a");
        let b = Catalog::from_json(r#"{"en": {"k1": "from b", "k2": "only b"}}"#).unwrap();
        let chain = TranslatorChain(vec![Arc::new(a), Arc::new(b)]);
        assert_eq!(chain.translate("k1", en).as_deref(), Some("from a"));
        assert_eq!(chain.translate("k2", en).as_deref(), Some("only b"));
        assert_eq!(
            chain.translate_batch(&["k2", "k3"], en),
            vec![Some("only b".to_string()), None]
        );
    }
}
