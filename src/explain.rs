//! Why a user sees the menu they see, as support answers a user with: the profile and who
//! decided it (the plugin's name, version and sha256, or the fallback and why), the menu, and
//! Telegram's precedence chain for them (each candidate scope and language, in order, and
//! whether the store says a list is set there), the list Telegram shows them from, whether it
//! holds this menu, and for a known user the rules and day of their last update.
//!
//! [`explain`] assembles what was read (pure); [`read`] reads it from an engine and a store,
//! for `Host::explain` (`GET /v1/explain`) and `cmdscope explain` alike.

use serde::Serialize;

use crate::engine::Resolution;
use crate::menu::{BotCommand, Fingerprint, Menu};
use crate::scope::{ListKey, Viewer};
use crate::state::{Generation, KeyState, KnownUser};

/// One user's menu, explained.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    pub user_id: i64,
    pub profile: String,
    pub decided_by: Decision,
    pub menu: Vec<BotCommand>,
    /// Telegram's precedence chain for this user, most specific first.
    pub chain: Vec<Step>,
    /// The list Telegram shows this user (the first step set), if any.
    pub shown_from: Option<String>,
    /// Whether the list shown holds exactly this menu, as the store records it.
    pub telegram_has_this_menu: bool,
    /// The user as the store remembers them, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub known: Option<Known>,
}

/// Who decided the profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// The resolver's name (a plugin's, or a native resolver's).
    pub resolver: String,
    /// The plugin serving under that name, when it is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin: Option<PluginRef>,
    /// Set when the resolver failed or answered a profile the config lacks: the config's
    /// `default_profile` was used, and this says why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
}

/// A plugin version, as the status page and events name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct PluginRef {
    pub name: String,
    pub version: String,
    pub sha256: String,
}

impl PluginRef {
    pub fn of(info: &crate::plugin::PluginInfo) -> PluginRef {
        PluginRef {
            name: info.name.clone(),
            version: info.version.clone(),
            sha256: info.sha256.clone(),
        }
    }
}

/// One candidate list of the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    pub list: String,
    /// The store records a list set there (confirmed by Telegram).
    pub set: bool,
    /// A call for it was made and never confirmed: Telegram may hold either version.
    pub uncertain: bool,
}

/// What the store remembers of a known user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Known {
    /// The rules their menu was last brought to (hex), and whether those serve now.
    pub generation: String,
    pub current: bool,
    /// The day the bot last gave their context (`YYYY-MM-DD`, UTC).
    pub last_seen: String,
}

/// What the host read for one user.
pub struct Facts<'a> {
    pub viewer: &'a Viewer,
    pub resolution: &'a Resolution,
    pub plugin: Option<PluginRef>,
    pub menu: &'a Menu,
    /// The store's state of each of `viewer.candidates()`, in order.
    pub states: &'a [KeyState],
    pub known: Option<&'a KnownUser>,
    pub generation: Generation,
}

/// Reads what explaining `ctx` takes: the engine's resolution (a plugin call, off the async
/// threads) and menu, the store's state of every candidate list, the known user.
pub async fn read(
    engine: &crate::engine::Engine,
    store: &dyn crate::state::StateStore,
    plugin: impl FnOnce(&str) -> Option<PluginRef>,
    ctx: &crate::resolve::UserContext,
) -> Result<Explanation, crate::state::StoreError> {
    let resolution = engine.resolve_async(ctx).await;
    let menu = engine.menu_of(&resolution.profile, ctx);
    let viewer = ctx.viewer();
    let candidates = viewer.candidates();
    let keys: Vec<&ListKey> = candidates.iter().collect();
    let states = store.load_many(&keys).await?;
    let known = match store.known_users() {
        Some(known) => known.get(crate::state::UserKey::of(ctx)).await?,
        None => None,
    };
    Ok(explain(Facts {
        viewer: &viewer,
        resolution: &resolution,
        plugin: plugin(&resolution.source),
        menu: &menu,
        states: &states,
        known: known.as_ref(),
        generation: engine.generation(),
    }))
}

/// Assembles the explanation (see the module's docs).
pub fn explain(facts: Facts<'_>) -> Explanation {
    let candidates: Vec<ListKey> = facts.viewer.candidates();
    let chain: Vec<Step> = candidates
        .iter()
        .zip(facts.states)
        .map(|(key, state)| Step {
            list: key.to_string(),
            set: state.applied.is_some(),
            uncertain: state.pending.is_some(),
        })
        .collect();
    let shown = candidates
        .iter()
        .zip(facts.states)
        .find(|(_, state)| state.applied.is_some());
    let telegram_has_this_menu = match shown {
        Some((_, state)) => state.applied == Some(Fingerprint::of(facts.menu)),
        None => facts.menu.is_empty(),
    };
    Explanation {
        user_id: facts.viewer.user_id,
        profile: facts.resolution.profile.to_string(),
        decided_by: Decision {
            resolver: facts.resolution.source.to_string(),
            plugin: facts.plugin,
            fallback: facts
                .resolution
                .error
                .as_ref()
                .map(|e| format!("{e}; the config's default_profile was used")),
        },
        menu: facts.menu.to_vec(),
        chain,
        shown_from: shown.map(|(key, _)| key.to_string()),
        telegram_has_this_menu,
        known: facts.known.map(|user| Known {
            generation: format!("{:016x}", user.generation),
            current: user.generation == facts.generation,
            last_seen: civil_date(user.seen_day),
        }),
    }
}

/// `YYYY-MM-DD` of a day counted from 1970-01-01 (Howard Hinnant's civil-from-days).
pub(crate) fn civil_date(days: u32) -> String {
    let z = i64::from(days) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_dates() {
        assert_eq!(civil_date(0), "1970-01-01");
        assert_eq!(civil_date(19_723), "2024-01-01");
        assert_eq!(civil_date(20_429), "2025-12-07");
        assert_eq!(civil_date(11_016), "2000-02-29");
    }
}
