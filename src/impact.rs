//! What a rule change would do, before it is made, with no Bot API call: every known user
//! resolved with the rules serving now and with the candidate (a plugin version, a config, or
//! both), both menus built, and the candidate's lists compared with what the store says
//! Telegram holds, exactly as the reconciliation after a real swap would compare them.
//!
//! [`candidate_engine`] builds the engine a change would serve (checked as a swap would check
//! it); [`impact`] walks the known users the swap would walk and counts. `cmdscope impact` and
//! `POST /v1/impact` (`Host::impact`) use both.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::engine::Engine;
use crate::explain::PluginRef;
use crate::menu::Menu;
use crate::plugin::Plugin;
use crate::resolve::UserContext;
use crate::scope::ListKey;
use crate::sources::{PluginLookup, WithCandidate};
use crate::state::{StateStore, StoreError};
use crate::sync::{Op, diff};

/// Sample user ids kept per transition.
pub const SAMPLES: usize = 5;

/// What changes: a plugin version, a config, or both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    Plugin {
        #[serde(flatten)]
        candidate: PluginRef,
        /// The version serving under that name now, if one does.
        replaces: Option<PluginRef>,
    },
    Config {
        /// Where the candidate config came from (a file, or `request body`).
        source: String,
    },
}

/// The report (see the module's docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Impact {
    pub changes: Vec<Change>,
    /// The rules serving now and the candidate's, as the engine's generation (hex).
    pub generation_now: String,
    pub generation_candidate: String,
    /// Known users the swap would walk (everyone not already on the candidate's rules).
    pub users_examined: u64,
    /// Users whose menu (the commands they see) would change.
    pub users_changed: u64,
    /// Users not seen for `[known_users] forget_after_days`: the walk forgets them, no call.
    pub users_forgotten: u64,
    /// Profile to profile, most users first; `from == to` when the profile stays and its
    /// menu changes (a config or translator change).
    pub transitions: Vec<Transition>,
    /// Resolutions that fell back to `default_profile` (errors, traps, undeclared profiles).
    pub fallbacks: Fallbacks,
    /// The calls the swap would make.
    pub calls: Calls,
    /// The bot's pace (requests per second) and how long those calls take at it.
    pub pace_per_second: f64,
    pub calls_take_s: f64,
    /// How long this report took to make.
    pub took_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Every user whose menu changes or who needs a call, when asked for
    /// ([`Options::list_users`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub users: Option<Vec<UserChange>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    pub from: String,
    pub to: String,
    pub users: u64,
    /// Up to [`SAMPLES`] user ids, the first met.
    pub sample: Vec<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fallbacks {
    pub now: u64,
    pub candidate: u64,
    /// The candidate's reasons, most frequent first (at most [`SAMPLES`]).
    pub candidate_reasons: Vec<Reason>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    pub reason: String,
    pub users: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Calls {
    #[serde(rename = "setMyCommands")]
    pub set_my_commands: u64,
    #[serde(rename = "deleteMyCommands")]
    pub delete_my_commands: u64,
    /// Of those, the calls for configured lists (scopes of the config), not users' own.
    pub configured_lists: u64,
}

impl Calls {
    pub fn total(&self) -> u64 {
        self.set_my_commands + self.delete_my_commands
    }

    fn count(&mut self, op: Option<Op>) -> Option<&'static str> {
        let op = op?;
        match op {
            Op::Set(_) => self.set_my_commands += 1,
            Op::Delete => self.delete_my_commands += 1,
        }
        Some(op.method())
    }
}

/// One user the change touches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserChange {
    pub user_id: i64,
    pub chat_id: i64,
    pub from: String,
    pub to: String,
    pub menu_changes: bool,
    /// The Bot API method the swap would call for them, if any.
    pub call: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Options {
    /// Users read and resolved at once.
    pub page: usize,
    /// The bot's pace, requests per second.
    pub pace: f64,
    pub list_users: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            page: 1024,
            pace: crate::deliver::DeliveryOptions::default().pace,
            list_users: false,
        }
    }
}

/// Why a candidate cannot be tried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub Vec<String>);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join("; "))
    }
}

/// The engine the change would serve: `config` (the candidate's, or the one serving), with
/// the plugins of `plugins` (`serving`: the same plugins, to check) and `candidate` in place
/// of the one of its name. Checked as a swap is: the candidate must be a plugin the config
/// names, of the world it is used as, and every resolver able to answer only profiles the
/// config defines.
pub fn candidate_engine(
    config: Config,
    plugins: Option<&dyn PluginLookup>,
    serving: &[Plugin],
    candidate: Option<&Plugin>,
    native: Option<std::sync::Arc<dyn crate::resolve::Resolver>>,
) -> Result<Engine, Refused> {
    let mut problems = Vec::new();
    let replaced = candidate.map(|c| c.info().name.as_str());
    if let Some(name) = &config.resolver
        && replaced != Some(name.as_str())
        && let Some(plugin) = serving.iter().find(|p| p.info().name == *name)
        && let Err(e) = plugin.check_profiles(&config)
    {
        problems.push(format!("resolver `{name}` (serving) {e}"));
    }
    if let Some(plugin) = candidate {
        let name = &plugin.info().name;
        let as_resolver = config.resolver.as_deref() == Some(name.as_str());
        let as_translator = config.translators.iter().any(|t| {
            matches!(
                crate::catalog::TranslatorSource::parse(t, &config.base_dir),
                Ok(crate::catalog::TranslatorSource::Plugin(n)) if n == *name
            )
        });
        match (plugin, as_resolver, as_translator) {
            (_, false, false) => problems.push(format!(
                "{} names no plugin `{name}` (resolver: {}; translators: {}): the candidate would change nothing",
                config.source,
                config.resolver.as_deref().unwrap_or("none"),
                if config.translators.is_empty() {
                    "none".to_string()
                } else {
                    config.translators.join(", ")
                }
            )),
            (Plugin::Translator(_), true, _) => problems.push(format!(
                "`{name}` is the config's resolver, and the candidate is a translator"
            )),
            (Plugin::Resolver(_), false, true) => problems.push(format!(
                "`{name}` is one of the config's translators, and the candidate is a resolver"
            )),
            _ => {}
        }
        if let Err(e) = plugin.check_profiles(&config) {
            problems.push(format!("{name}: {e}"));
        }
    }
    if !problems.is_empty() {
        return Err(Refused(problems));
    }
    let overlay;
    let lookup = match candidate {
        Some(candidate) => {
            overlay = WithCandidate {
                base: plugins,
                candidate,
            };
            Some(&overlay as &dyn PluginLookup)
        }
        None => plugins,
    };
    crate::sources::engine(config, lookup, native)
        .map(|(engine, _)| engine)
        .map_err(|e| Refused(e.lines().map(str::to_string).collect()))
}

/// Walks the known users the swap to `candidate` would walk and counts what it would do.
pub async fn impact(
    now: &Engine,
    candidate: &Engine,
    store: &dyn StateStore,
    changes: Vec<Change>,
    options: &Options,
) -> Result<Impact, StoreError> {
    let started = std::time::Instant::now();
    let generation = candidate.generation();
    let mut report = Impact {
        changes,
        generation_now: format!("{:016x}", now.generation()),
        generation_candidate: format!("{generation:016x}"),
        users_examined: 0,
        users_changed: 0,
        users_forgotten: 0,
        transitions: Vec::new(),
        fallbacks: Fallbacks::default(),
        calls: configured_calls(now, candidate, store).await?,
        pace_per_second: options.pace,
        calls_take_s: 0.0,
        took_ms: 0,
        note: None,
        users: options.list_users.then(Vec::new),
    };
    if generation == now.generation() {
        report.note = Some("the candidate is the rules serving now: nothing would change".into());
    }
    let Some(known) = store.known_users() else {
        report.note = Some(format!(
            "{} keeps no known users: only the configured lists are counted",
            store.describe()
        ));
        return Ok(finish(report, started, HashMap::new(), BTreeMap::new()));
    };
    let forget_after = candidate.config().known_users.forget_after_days;
    let today = crate::state::today();
    let mut transitions: HashMap<(String, String), Transition> = HashMap::new();
    let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
    let mut cursor = None;
    loop {
        let (page, next) = known
            .behind(generation, cursor.as_ref(), options.page.max(1))
            .await?;
        let mut contexts: Vec<UserContext> = Vec::with_capacity(page.len());
        for user in page {
            if forget_after != 0 && user.seen_day + forget_after < today {
                report.users_forgotten += 1;
            } else {
                contexts.push(user.context);
            }
        }
        let before = now.resolve_many(&contexts).await;
        let after = candidate.resolve_many(&contexts).await;
        let (built_now, built_after) = (now.built(), candidate.built());
        let mut targets = Vec::with_capacity(contexts.len());
        let mut menus: Vec<(Menu, Menu)> = Vec::with_capacity(contexts.len());
        for ((ctx, old), new) in contexts.iter().zip(&before).zip(&after) {
            let menu_now = built_now.menu_of(now.config(), &old.profile, ctx);
            let menu_after = built_after.menu_of(candidate.config(), &new.profile, ctx);
            targets.push(built_after.plan.user_target(&ctx.viewer(), &menu_after));
            menus.push((menu_now, menu_after));
        }
        let keys: Vec<&ListKey> = targets.iter().map(|t| &t.key).collect();
        let states = store.load_many(&keys).await?;
        for (i, ctx) in contexts.iter().enumerate() {
            let (old, new) = (&before[i], &after[i]);
            report.users_examined += 1;
            report.fallbacks.now += u64::from(old.error.is_some());
            if let Some(e) = &new.error {
                report.fallbacks.candidate += 1;
                *reasons.entry(e.to_string()).or_default() += 1;
            }
            let menu_changes = menus[i].0[..] != menus[i].1[..];
            let call = report
                .calls
                .count(diff(targets[i].desired.as_ref(), &states[i]));
            if menu_changes || old.profile != new.profile {
                report.users_changed += u64::from(menu_changes);
                let entry = transitions
                    .entry((old.profile.to_string(), new.profile.to_string()))
                    .or_insert_with(|| Transition {
                        from: old.profile.to_string(),
                        to: new.profile.to_string(),
                        users: 0,
                        sample: Vec::new(),
                    });
                entry.users += 1;
                if entry.sample.len() < SAMPLES {
                    entry.sample.push(ctx.user_id);
                }
            }
            if let Some(users) = &mut report.users
                && (menu_changes || call.is_some())
            {
                users.push(UserChange {
                    user_id: ctx.user_id,
                    chat_id: ctx.chat(),
                    from: old.profile.to_string(),
                    to: new.profile.to_string(),
                    menu_changes,
                    call: call.map(str::to_string),
                });
            }
        }
        match next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    Ok(finish(report, started, transitions, reasons))
}

fn finish(
    mut report: Impact,
    started: std::time::Instant,
    transitions: HashMap<(String, String), Transition>,
    reasons: BTreeMap<String, u64>,
) -> Impact {
    let mut transitions: Vec<Transition> = transitions.into_values().collect();
    transitions.sort_by(|a, b| {
        b.users
            .cmp(&a.users)
            .then_with(|| (&a.from, &a.to).cmp(&(&b.from, &b.to)))
    });
    report.transitions = transitions;
    let mut reasons: Vec<Reason> = reasons
        .into_iter()
        .map(|(reason, users)| Reason { reason, users })
        .collect();
    reasons.sort_by_key(|r| std::cmp::Reverse(r.users));
    reasons.truncate(SAMPLES);
    report.fallbacks.candidate_reasons = reasons;
    report.calls_take_s = if report.pace_per_second > 0.0 {
        report.calls.total() as f64 / report.pace_per_second
    } else {
        0.0
    };
    report.took_ms = started.elapsed().as_millis() as u64;
    report
}

/// The configured lists' calls: the candidate's lists not held, and the serving config's
/// lists the candidate drops that are set.
async fn configured_calls(
    now: &Engine,
    candidate: &Engine,
    store: &dyn StateStore,
) -> Result<Calls, StoreError> {
    let (plan_now, plan_after) = (now.plan(), candidate.plan());
    let dropped: Vec<&ListKey> = plan_now
        .lists
        .iter()
        .map(|l| &l.key)
        .filter(|k| plan_after.get(k).is_none())
        .collect();
    let kept: Vec<&ListKey> = plan_after.lists.iter().map(|l| &l.key).collect();
    let keys: Vec<&ListKey> = kept.iter().chain(&dropped).copied().collect();
    let states = store.load_many(&keys).await?;
    let mut calls = Calls::default();
    for (i, state) in states.iter().enumerate() {
        let desired = plan_after.lists.get(i).map(|l| &l.commands);
        calls.count(diff(desired, state));
    }
    calls.configured_lists = calls.total();
    Ok(calls)
}

/// The report as a table, for a terminal.
pub fn table(report: &Impact) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    for change in &report.changes {
        match change {
            Change::Plugin {
                candidate,
                replaces,
            } => {
                let _ = write!(
                    out,
                    "candidate: plugin {} {} (sha256 {})",
                    candidate.name,
                    candidate.version,
                    short(&candidate.sha256)
                );
                match replaces {
                    Some(old) => {
                        let _ = writeln!(
                            out,
                            ", replacing {} (sha256 {})",
                            old.version,
                            short(&old.sha256)
                        );
                    }
                    None => out.push_str(", new\n"),
                }
            }
            Change::Config { source } => {
                let _ = writeln!(out, "candidate: config {source}");
            }
        }
    }
    let _ = writeln!(
        out,
        "users examined: {}\nusers whose menu changes: {}",
        thousands(report.users_examined),
        thousands(report.users_changed)
    );
    if report.users_forgotten > 0 {
        let _ = writeln!(
            out,
            "users not seen for too long (forgotten, no call): {}",
            thousands(report.users_forgotten)
        );
    }
    if !report.transitions.is_empty() {
        out.push_str("transitions:\n");
        for t in &report.transitions {
            let sample: Vec<String> = t.sample.iter().map(i64::to_string).collect();
            let what = if t.from == t.to {
                format!("{} (menu changes)", t.from)
            } else {
                format!("{} -> {}", t.from, t.to)
            };
            let _ = writeln!(
                out,
                "  {what}: {} (e.g. {})",
                thousands(t.users),
                sample.join(", ")
            );
        }
    }
    let _ = writeln!(
        out,
        "fallbacks to default_profile: {} now, {} with the candidate",
        thousands(report.fallbacks.now),
        thousands(report.fallbacks.candidate)
    );
    for r in &report.fallbacks.candidate_reasons {
        let _ = writeln!(out, "  {}: {}", thousands(r.users), r.reason);
    }
    let _ = writeln!(
        out,
        "calls: {} setMyCommands, {} deleteMyCommands ({} for configured lists); {:.0} s at {} requests/s",
        thousands(report.calls.set_my_commands),
        thousands(report.calls.delete_my_commands),
        report.calls.configured_lists,
        report.calls_take_s.ceil(),
        report.pace_per_second
    );
    if let Some(note) = &report.note {
        let _ = writeln!(out, "note: {note}");
    }
    let _ = writeln!(out, "took {} ms", report.took_ms);
    out
}

fn short(sha256: &str) -> &str {
    &sha256[..sha256.len().min(12)]
}

/// `12004` -> `12,004`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(12_004), "12,004");
        assert_eq!(thousands(1_000_000), "1,000,000");
    }
}
