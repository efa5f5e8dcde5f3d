//! Recurses without end for user 666; the stack overflow must trap.
use cmdscope_plugin_sdk::{Resolver, ResolverInfo, UserContext, export_resolver};

struct Plugin;

impl Resolver for Plugin {
    fn info() -> ResolverInfo {
        ResolverInfo::new("deep-recursion", "0.1.0", &["guest", "admin"])
    }

    fn resolve(ctx: UserContext) -> Result<String, String> {
        #[allow(unconditional_recursion)]
        fn down(n: u64) -> u64 {
            std::hint::black_box(down(std::hint::black_box(n + 1))) + 1
        }
        if ctx.user_id == 666 {
            return Ok(format!("{}", down(0)));
        }
        Ok("guest".into())
    }
}

export_resolver!(Plugin);
