//! The cmdscope plugin SDK: bindings for `wit/plugin.wit` and a few helpers, so a resolver is
//! about fifteen lines:
//!
//! ```ignore
//! use cmdscope_plugin_sdk::{Resolver, ResolverInfo, UserContext, export_resolver};
//!
//! struct Tiered;
//!
//! impl Resolver for Tiered {
//!     fn info() -> ResolverInfo {
//!         ResolverInfo::new("tiered", "1.0.0", &["admin", "user", "guest"])
//!     }
//!     fn resolve(ctx: UserContext) -> Result<String, String> {
//!         Ok(if ctx.is("admin") { "admin" } else if ctx.is("registered") { "user" } else { "guest" }.into())
//!     }
//! }
//!
//! export_resolver!(Tiered);
//! ```
//!
//! Build with `cargo build --release --target wasm32-wasip2`: the output `.wasm` is a component
//! of the current interface (`wit/plugin.wit`, 0.2).

/// Bindings of the `resolver-plugin` world.
pub mod resolver_world {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "resolver-plugin",
        pub_export_macro: true,
        export_macro_name: "export_resolver",
        default_bindings_module: "cmdscope_plugin_sdk::resolver_world",
    });
}

/// Bindings of the `translator-plugin` world.
pub mod translator_world {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "translator-plugin",
        pub_export_macro: true,
        export_macro_name: "export_translator",
        default_bindings_module: "cmdscope_plugin_sdk::translator_world",
    });
}

pub use resolver_world::cmdscope::plugin::host::{LogLevel, log, setting};
pub use resolver_world::cmdscope::plugin::types::{ChatType, Flag, FlagValue, UserContext};
pub use resolver_world::export_resolver;
pub use resolver_world::exports::cmdscope::plugin::resolver::ResolverInfo;

/// A resolver: a user context in, a profile name out. `resolve_batch` answers a page of
/// users in one sandbox crossing (interface 0.2); by default it is `resolve` for each, which
/// is what it must agree with.
pub trait Resolver {
    fn info() -> ResolverInfo;
    fn resolve(ctx: UserContext) -> Result<String, String>;
    fn resolve_batch(ctxs: Vec<UserContext>) -> Vec<Result<String, String>> {
        ctxs.into_iter().map(Self::resolve).collect()
    }
}

impl<T: Resolver> resolver_world::exports::cmdscope::plugin::resolver::Guest for T {
    fn info() -> ResolverInfo {
        <T as Resolver>::info()
    }
    fn resolve(ctx: UserContext) -> Result<String, String> {
        <T as Resolver>::resolve(ctx)
    }
    fn resolve_batch(ctxs: Vec<UserContext>) -> Vec<Result<String, String>> {
        <T as Resolver>::resolve_batch(ctxs)
    }
}
pub use translator_world::export_translator;
pub use translator_world::exports::cmdscope::plugin::translator::{
    Guest as Translator, TranslatorInfo,
};

impl UserContext {
    /// A context in a private chat, for tests.
    pub fn private(user_id: i64) -> Self {
        UserContext {
            user_id,
            chat_id: None,
            chat_type: ChatType::Private,
            language_code: None,
            flags: Vec::new(),
            is_chat_admin: false,
        }
    }

    /// Adds a flag, for tests.
    pub fn with(mut self, name: &str, value: FlagValue) -> Self {
        self.flags.push(Flag {
            name: name.to_string(),
            value,
        });
        self
    }

    pub fn flag(&self, name: &str) -> Option<&FlagValue> {
        self.flags.iter().find(|f| f.name == name).map(|f| &f.value)
    }

    /// True when the flag is boolean true; a missing flag counts as false.
    pub fn is(&self, name: &str) -> bool {
        matches!(self.flag(name), Some(FlagValue::Boolean(true)))
    }
}

impl ResolverInfo {
    pub fn new(name: &str, version: &str, profiles: &[&str]) -> Self {
        ResolverInfo {
            name: name.to_string(),
            version: version.to_string(),
            profiles: profiles.iter().map(|p| p.to_string()).collect(),
        }
    }
}

impl TranslatorInfo {
    pub fn new(name: &str, version: &str, locales: &[&str]) -> Self {
        TranslatorInfo {
            name: name.to_string(),
            version: version.to_string(),
            locales: locales.iter().map(|l| l.to_string()).collect(),
        }
    }
}
