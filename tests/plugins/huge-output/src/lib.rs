//! Returns a 1 MiB profile name for user 666.
use cmdscope_plugin_sdk::{Resolver, ResolverInfo, UserContext, export_resolver};

struct Plugin;

impl Resolver for Plugin {
    fn info() -> ResolverInfo {
        ResolverInfo::new("huge-output", "0.1.0", &["guest", "admin"])
    }

    fn resolve(ctx: UserContext) -> Result<String, String> {
        if ctx.user_id == 666 {
            return Ok("x".repeat(1 << 20));
        }
        Ok("guest".into())
    }
}

export_resolver!(Plugin);
