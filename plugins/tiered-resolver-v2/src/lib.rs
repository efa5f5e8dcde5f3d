//! Version 2 of `tiered-resolver` (the same plugin name, a new rule): as version 1 (the first
//! true flag of banned, admin, premium, registered decides), and a registered user with 10 or
//! more orders (`orders`, an integer flag) is premium. The demo and the live-host tests swap it
//! in while the host runs: only the users it moves get a call.
use cmdscope_plugin_sdk::{FlagValue, Resolver, ResolverInfo, UserContext, export_resolver};

struct Tiered;

/// Orders that make a registered user premium.
pub const LOYAL_ORDERS: i64 = 10;

/// Missing flags count as false; only boolean `true` counts as set.
pub fn tier(ctx: &UserContext) -> &'static str {
    let orders = ctx.flags.iter().find_map(|f| match (&*f.name, &f.value) {
        ("orders", FlagValue::Integer(n)) => Some(*n),
        _ => None,
    });
    if ctx.is("banned") {
        "banned"
    } else if ctx.is("admin") {
        "admin"
    } else if ctx.is("premium") || (ctx.is("registered") && orders >= Some(LOYAL_ORDERS)) {
        "premium"
    } else if ctx.is("registered") {
        "user"
    } else {
        "guest"
    }
}

impl Resolver for Tiered {
    fn info() -> ResolverInfo {
        ResolverInfo::new(
            "tiered-resolver",
            env!("CARGO_PKG_VERSION"),
            &["banned", "admin", "premium", "user", "guest"],
        )
    }

    fn resolve(ctx: UserContext) -> Result<String, String> {
        Ok(tier(&ctx).to_string())
    }
}

export_resolver!(Tiered);

#[cfg(test)]
mod tests {
    use super::*;
    use cmdscope_plugin_sdk::FlagValue::{Boolean, Integer};

    #[test]
    fn loyal_registered_users_are_premium() {
        let registered = UserContext::private(1).with("registered", Boolean(true));
        assert_eq!(tier(&registered), "user");
        assert_eq!(tier(&registered.clone().with("orders", Integer(9))), "user");
        assert_eq!(
            tier(&registered.clone().with("orders", Integer(10))),
            "premium"
        );
        let guest = UserContext::private(2).with("orders", Integer(50));
        assert_eq!(tier(&guest), "guest", "orders alone are not registration");
        let banned = registered
            .with("orders", Integer(50))
            .with("banned", Boolean(true));
        assert_eq!(tier(&banned), "banned");
    }
}
