//! A bad candidate of `tiered-resolver` (same name): version 2's rules, and a panic (a trap
//! in the sandbox) for one user in 20. A staged rollout must abort it by itself.
use cmdscope_plugin_sdk::{FlagValue, Resolver, ResolverInfo, UserContext, export_resolver};

struct Flaky;

impl Resolver for Flaky {
    fn info() -> ResolverInfo {
        ResolverInfo::new(
            "tiered-resolver",
            env!("CARGO_PKG_VERSION"),
            &["banned", "admin", "premium", "user", "guest"],
        )
    }

    fn resolve(ctx: UserContext) -> Result<String, String> {
        if ctx.user_id % 20 == 0 {
            panic!("flaky: user {} hits a bug", ctx.user_id);
        }
        let orders = ctx.flags.iter().find_map(|f| match (&*f.name, &f.value) {
            ("orders", FlagValue::Integer(n)) => Some(*n),
            _ => None,
        });
        Ok(if ctx.is("banned") {
            "banned"
        } else if ctx.is("admin") {
            "admin"
        } else if ctx.is("premium") || (ctx.is("registered") && orders >= Some(10)) {
            "premium"
        } else if ctx.is("registered") {
            "user"
        } else {
            "guest"
        }
        .to_string())
    }
}

export_resolver!(Flaky);
