//! Declares 200,000 profiles; the host must refuse it with a short reason.
use cmdscope_plugin_sdk::{Resolver, ResolverInfo, UserContext, export_resolver};

struct Plugin;

impl Resolver for Plugin {
    fn info() -> ResolverInfo {
        ResolverInfo {
            name: "many-profiles".into(),
            version: "0.1.0".into(),
            profiles: (0..200_000)
                .map(|i| format!("unknown-profile-{i}"))
                .collect(),
        }
    }

    fn resolve(_: UserContext) -> Result<String, String> {
        Ok("guest".into())
    }
}

export_resolver!(Plugin);
