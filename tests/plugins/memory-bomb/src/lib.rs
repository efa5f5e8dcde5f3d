//! Allocates 64 MiB for user 666; the memory cap must stop it.
use cmdscope_plugin_sdk::{Resolver, ResolverInfo, UserContext, export_resolver};

struct Plugin;

impl Resolver for Plugin {
    fn info() -> ResolverInfo {
        ResolverInfo::new("memory-bomb", "0.1.0", &["guest", "admin"])
    }

    fn resolve(ctx: UserContext) -> Result<String, String> {
        if ctx.user_id == 666 {
            let big: Vec<u8> = vec![7; 64 << 20];
            return Ok(format!("guest{}", std::hint::black_box(big)[12345]));
        }
        Ok("guest".into())
    }
}

export_resolver!(Plugin);
