//! Tries to read /etc/passwd; the host preopens no directory, so it must fail.
use cmdscope_plugin_sdk::{Resolver, ResolverInfo, UserContext, export_resolver};

struct Plugin;

impl Resolver for Plugin {
    fn info() -> ResolverInfo {
        ResolverInfo::new("read-passwd", "0.1.0", &["guest", "admin"])
    }

    fn resolve(ctx: UserContext) -> Result<String, String> {
        let _ = ctx;
        match std::fs::read_to_string("/etc/passwd") {
            Ok(text) => Ok(format!("admin-{}", text.len())),
            Err(e) => Err(format!("cannot read /etc/passwd: {e}")),
        }
    }
}

export_resolver!(Plugin);
