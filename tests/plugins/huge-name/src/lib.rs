//! Reports a 10 MB name; the host must refuse it with a short reason.
use cmdscope_plugin_sdk::{Resolver, ResolverInfo, UserContext, export_resolver};

struct Plugin;

impl Resolver for Plugin {
    fn info() -> ResolverInfo {
        ResolverInfo {
            name: "n".repeat(10 << 20),
            version: "0.1.0".into(),
            profiles: vec!["guest".into()],
        }
    }

    fn resolve(_: UserContext) -> Result<String, String> {
        Ok("guest".into())
    }
}

export_resolver!(Plugin);
