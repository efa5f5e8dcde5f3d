//! Sleeps an hour in resolve; the host's clocks are fixed, so the sleep ends at once.
use cmdscope_plugin_sdk::{Resolver, ResolverInfo, UserContext, export_resolver};

struct Plugin;

impl Resolver for Plugin {
    fn info() -> ResolverInfo {
        ResolverInfo::new("sleeper", "0.1.0", &["guest", "admin"])
    }

    fn resolve(ctx: UserContext) -> Result<String, String> {
        std::thread::sleep(std::time::Duration::from_secs(3600));
        Ok(if ctx.user_id == 1 { "admin" } else { "guest" }.into())
    }
}

export_resolver!(Plugin);
