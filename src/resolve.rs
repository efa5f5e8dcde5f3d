//! The seam between the engine and the logic that decides who sees what: the user context,
//! the [`Resolver`] (context -> profile name) and [`Translator`] (key, language -> text) traits,
//! and their native implementations. WebAssembly plugins implement the same traits.

mod context;
mod native;

use std::fmt;
use std::sync::Arc;

use serde::Serialize;

pub use self::context::{CONTEXT_FIELDS, ContextError, FlagValue, UserContext, closest};
pub use self::native::{
    Catalog, FlagRules, FnResolver, NoTranslator, StaticResolver, TranslatorChain,
};
use crate::scope::Lang;

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

/// Decides a user's profile from their context.
///
/// Implementations should be pure functions of the context: that is what makes caching their
/// outputs exact.
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

impl fmt::Debug for dyn Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Resolver({})", self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scope::ChatType;

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
