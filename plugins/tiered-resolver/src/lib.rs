//! The example resolver: the first true flag of banned, admin, premium, registered decides.
use cmdscope_plugin_sdk::{Resolver, ResolverInfo, UserContext, export_resolver};

struct Tiered;

/// Missing flags count as false; only boolean `true` counts as set.
pub fn tier(ctx: &UserContext) -> &'static str {
    const TIERS: [(&str, &str); 4] = [
        ("banned", "banned"),
        ("admin", "admin"),
        ("premium", "premium"),
        ("registered", "user"),
    ];
    TIERS
        .iter()
        .find(|(flag, _)| ctx.is(flag))
        .map_or("guest", |(_, profile)| profile)
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
    fn tiers_follow_the_spec() {
        let ctx = UserContext::private(1);
        assert_eq!(tier(&ctx), "guest");
        assert_eq!(tier(&ctx.clone().with("registered", Boolean(true))), "user");
        assert_eq!(
            tier(
                &ctx.clone()
                    .with("registered", Boolean(true))
                    .with("premium", Boolean(true))
            ),
            "premium"
        );
        assert_eq!(
            tier(
                &ctx.clone()
                    .with("premium", Boolean(true))
                    .with("admin", Boolean(true))
            ),
            "admin"
        );
        assert_eq!(
            tier(
                &ctx.clone()
                    .with("admin", Boolean(true))
                    .with("banned", Boolean(true))
            ),
            "banned"
        );
        assert_eq!(tier(&ctx.clone().with("admin", Integer(1))), "guest");
    }
}
