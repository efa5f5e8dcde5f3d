//! Reports a 10 MB version; the host must refuse it with a short reason.
use cmdscope_plugin_sdk::{Resolver, ResolverInfo, UserContext, export_resolver};

struct Plugin;

impl Resolver for Plugin {
    fn info() -> ResolverInfo {
        ResolverInfo {
            name: "huge-version".into(),
            version: "9".repeat(10 << 20),
            profiles: vec!["guest".into()],
        }
    }

    fn resolve(_: UserContext) -> Result<String, String> {
        Ok("guest".into())
    }
}

export_resolver!(Plugin);
