//! Panics for user 666.
use cmdscope_plugin_sdk::{Resolver, ResolverInfo, UserContext, export_resolver};

struct Plugin;

impl Resolver for Plugin {
    fn info() -> ResolverInfo {
        ResolverInfo::new("panicking", "0.1.0", &["guest", "admin"])
    }

    fn resolve(ctx: UserContext) -> Result<String, String> {
        if ctx.user_id == 666 {
            panic!("plugin panicked on purpose");
        }
        Ok("guest".into())
    }
}

export_resolver!(Plugin);
