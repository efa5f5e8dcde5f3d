//! Reads the wall clock twice; the host clock is fixed, so both readings are the same.
use cmdscope_plugin_sdk::{Resolver, ResolverInfo, UserContext, export_resolver};

struct Plugin;

impl Resolver for Plugin {
    fn info() -> ResolverInfo {
        ResolverInfo::new("clock-reader", "0.1.0", &["guest", "admin"])
    }

    fn resolve(ctx: UserContext) -> Result<String, String> {
        let _ = ctx;
        let first = std::time::SystemTime::now();
        let second = std::time::SystemTime::now();
        let since = |t: std::time::SystemTime| {
            t.duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        };
        cmdscope_plugin_sdk::log(
            cmdscope_plugin_sdk::LogLevel::Info,
            &format!("clock {} {}", since(first), since(second)),
        );
        Err(format!("clock {} {}", since(first), since(second)))
    }
}

export_resolver!(Plugin);
