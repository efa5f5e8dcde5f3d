//! Spins forever when asked for user 666; the host's deadline must stop it.
use cmdscope_plugin_sdk::{Resolver, ResolverInfo, UserContext, export_resolver};

struct Plugin;

impl Resolver for Plugin {
    fn info() -> ResolverInfo {
        ResolverInfo::new("spin", "0.1.0", &["guest", "admin"])
    }

    fn resolve(ctx: UserContext) -> Result<String, String> {
        if ctx.user_id == 666 {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        Ok("guest".into())
    }
}

export_resolver!(Plugin);
