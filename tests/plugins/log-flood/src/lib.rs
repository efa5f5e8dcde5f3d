//! Logs a million lines per call through the host log, stdout and stderr; the host's log
//! budget must hold.
use std::io::Write;

use cmdscope_plugin_sdk::{LogLevel, Resolver, ResolverInfo, UserContext, export_resolver, log};

struct Plugin;

impl Resolver for Plugin {
    fn info() -> ResolverInfo {
        ResolverInfo::new("log-flood", "0.1.0", &["guest", "admin"])
    }

    fn resolve(ctx: UserContext) -> Result<String, String> {
        let line = "x".repeat(2000);
        for i in 0..1_000_000 {
            match i % 3 {
                0 => log(LogLevel::Error, &line),
                1 => {
                    let _ = writeln!(std::io::stdout(), "{line}");
                }
                _ => {
                    let _ = writeln!(std::io::stderr(), "{line}");
                }
            }
        }
        Ok(if ctx.user_id == 1 { "admin" } else { "guest" }.into())
    }
}

export_resolver!(Plugin);
