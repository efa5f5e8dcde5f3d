//! Returns the profile named by its `profile` setting, logging what it read.
use cmdscope_plugin_sdk::{Resolver, ResolverInfo, UserContext, export_resolver};

struct Plugin;

impl Resolver for Plugin {
    fn info() -> ResolverInfo {
        ResolverInfo::new("settings-echo", "0.1.0", &["guest", "admin"])
    }

    fn resolve(ctx: UserContext) -> Result<String, String> {
        let _ = ctx;
        let profile = cmdscope_plugin_sdk::setting("profile");
        cmdscope_plugin_sdk::log(
            cmdscope_plugin_sdk::LogLevel::Warn,
            &format!("setting profile = {profile:?}"),
        );
        println!("stdout goes to the host log");
        profile.ok_or_else(|| "no `profile` setting".to_string())
    }
}

export_resolver!(Plugin);
