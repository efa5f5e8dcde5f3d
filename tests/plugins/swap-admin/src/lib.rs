//! Plugin `swappable` answering `admin` for everyone: one half of the hot-swap tests.
use cmdscope_plugin_sdk::{Resolver, ResolverInfo, UserContext, export_resolver};

struct Plugin;

impl Resolver for Plugin {
    fn info() -> ResolverInfo {
        ResolverInfo::new("swappable", "2.0.0", &["guest", "admin"])
    }

    fn resolve(_: UserContext) -> Result<String, String> {
        Ok("admin".into())
    }
}

export_resolver!(Plugin);
