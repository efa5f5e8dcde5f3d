//! Makes the host work on its behalf through WASI: 64 MiB of random bytes (user 7), a million
//! clock subscriptions never dropped (user 8). The host must refuse before allocating. User 9
//! gets `r<random u64>`: the host's randomness, which must be the same in every call.
use cmdscope_plugin_sdk::{Resolver, ResolverInfo, UserContext, export_resolver};

struct Plugin;

impl Resolver for Plugin {
    fn info() -> ResolverInfo {
        ResolverInfo::new("wasi-hog", "0.1.0", &["guest", "admin"])
    }

    fn resolve(ctx: UserContext) -> Result<String, String> {
        match ctx.user_id {
            7 => {
                let bytes = wasip2::random::random::get_random_bytes(64 << 20);
                Ok(format!("guest{}", bytes.len()))
            }
            8 => {
                for _ in 0..1_000_000 {
                    std::mem::forget(wasip2::clocks::monotonic_clock::subscribe_duration(0));
                }
                Ok("admin".into())
            }
            9 => Ok(format!("r{}", wasip2::random::random::get_random_u64())),
            _ => Ok("guest".into()),
        }
    }
}

export_resolver!(Plugin);
