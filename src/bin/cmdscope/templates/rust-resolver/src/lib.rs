//! {{name}}: a cmdscope resolver plugin (user context -> profile name).
//! The decision is in `rules.rs`, plain Rust tested natively; this file is the component glue.

mod rules;

wit_bindgen::generate!({ path: "wit", world: "resolver-plugin" });

use cmdscope::plugin::types::{FlagValue, UserContext};
use exports::cmdscope::plugin::resolver::{Guest, ResolverInfo};

struct Plugin;

/// The flags set to boolean `true`.
fn true_flags(ctx: &UserContext) -> Vec<&str> {
    ctx.flags
        .iter()
        .filter(|f| matches!(f.value, FlagValue::Boolean(true)))
        .map(|f| f.name.as_str())
        .collect()
}

impl Guest for Plugin {
    fn info() -> ResolverInfo {
        ResolverInfo {
            name: "{{name}}".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            profiles: rules::PROFILES.iter().map(|p| p.to_string()).collect(),
        }
    }

    fn resolve(ctx: UserContext) -> Result<String, String> {
        Ok(rules::decide(&true_flags(&ctx)).to_string())
    }

    fn resolve_batch(ctxs: Vec<UserContext>) -> Vec<Result<String, String>> {
        ctxs.into_iter().map(Self::resolve).collect()
    }
}

export!(Plugin);
