//! `tiered-resolver` as built against interface 0.1 (`wit/v0.1`, frozen), with its own
//! bindings: the fixture that keeps the host's promise to 0.1 plugins tested. Same rules:
//! the first true flag of banned, admin, premium, registered decides.

wit_bindgen::generate!({
    path: "../../../wit/v0.1",
    world: "resolver-plugin",
});

use cmdscope::plugin::types::{FlagValue, UserContext};
use exports::cmdscope::plugin::resolver::{Guest, ResolverInfo};

struct Tiered;

fn is(ctx: &UserContext, flag: &str) -> bool {
    ctx.flags
        .iter()
        .any(|f| f.name == flag && matches!(f.value, FlagValue::Boolean(true)))
}

impl Guest for Tiered {
    fn info() -> ResolverInfo {
        ResolverInfo {
            name: "tiered-resolver".into(),
            version: "0.1.0".into(),
            profiles: ["banned", "admin", "premium", "user", "guest"]
                .map(String::from)
                .to_vec(),
        }
    }

    fn resolve(ctx: UserContext) -> Result<String, String> {
        let tier = [
            ("banned", "banned"),
            ("admin", "admin"),
            ("premium", "premium"),
            ("registered", "user"),
        ]
        .iter()
        .find(|(flag, _)| is(&ctx, flag))
        .map_or("guest", |(_, profile)| profile);
        Ok(tier.to_string())
    }
}

export!(Tiered);
