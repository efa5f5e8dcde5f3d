//! Returns a profile the config does not define for user 666 (and does not declare it).
use cmdscope_plugin_sdk::{Resolver, ResolverInfo, UserContext, export_resolver};

struct Plugin;

impl Resolver for Plugin {
    fn info() -> ResolverInfo {
        ResolverInfo::new("unknown-profile", "0.1.0", &["guest", "admin"])
    }

    fn resolve(ctx: UserContext) -> Result<String, String> {
        if ctx.user_id == 666 {
            return Ok("superuser".into());
        }
        Ok("guest".into())
    }
}

export_resolver!(Plugin);
