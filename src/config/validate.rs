//! Turns a raw config into a [`Config`], collecting every problem instead of stopping at the first.

use std::collections::HashMap;

use indexmap::IndexMap;

use super::diagnostic::{Diagnostic, join, suggest};
use super::raw::{RawConfig, RawProfile, RawSandbox, RawScope};
use super::{
    CommandSpec, Config, ConfigErrors, Loaded, MenuButton, Profile, SandboxLimits, ScopeSpec,
};
use crate::limits::{self, MAX_COMMANDS};
use crate::scope::{ChatRef, Lang, ListKey, ScopeKind};

/// Collects errors and warnings for one file.
struct Report<'a> {
    file: &'a str,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
}

impl Report<'_> {
    fn error(
        &mut self,
        path: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.errors
            .push(Diagnostic::error(self.file, path, message, fix));
    }

    fn warn(
        &mut self,
        path: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.warnings
            .push(Diagnostic::error(self.file, path, message, fix));
    }
}

pub(super) fn validate(
    (raw, unknown_keys): (RawConfig, Vec<Diagnostic>),
    file: &str,
) -> Result<Loaded, ConfigErrors> {
    let mut r = Report {
        file,
        errors: unknown_keys,
        warnings: Vec::new(),
    };

    let languages = languages(&raw, &mut r);
    let fallback_language = fallback_language(&raw, &languages, &mut r);
    let i18n_key_prefix = raw
        .i18n_key_prefix
        .clone()
        .unwrap_or_else(|| "cmd".to_string());
    if i18n_key_prefix.trim().is_empty() {
        r.error(
            "i18n_key_prefix",
            "the prefix is empty",
            "remove the key to use the default `cmd`, or set a prefix",
        );
    }

    let commands = commands(&raw, &languages, &mut r);
    let profiles = profiles(&raw.profiles, &commands, &mut r);
    let default_profile = default_profile(&raw, &profiles, &mut r);
    let scopes = scopes(&raw.scopes, &languages, &profiles, &mut r);
    warn_empty_profiles(&profiles, &mut r);
    let sandbox = sandbox(&raw.sandbox, &mut r);
    let cache = cache(&raw, &mut r);
    let state = state(&raw, &mut r);
    let known_users = super::KnownUsersSettings {
        max: raw
            .known_users
            .max
            .unwrap_or(super::KnownUsersSettings::default().max),
        forget_after_days: raw
            .known_users
            .forget_after_days
            .unwrap_or(super::KnownUsersSettings::default().forget_after_days),
    };
    let rollout = rollout(&raw, &mut r);
    let audit = audit(&raw, &mut r);
    let plugin_settings = plugin_settings(&raw, &sandbox, &mut r);
    for (i, entry) in raw.translators.iter().enumerate() {
        if let Err(e) = crate::catalog::TranslatorSource::parse(entry, std::path::Path::new(".")) {
            r.error(
                format!("translators[{i}]"),
                e,
                "name a translator plugin, or a catalog folder as json:DIR or fluent:DIR",
            );
        }
    }
    for (path, name) in raw
        .resolver
        .iter()
        .map(|n| ("resolver".to_string(), n))
        .chain(
            raw.translators
                .iter()
                .enumerate()
                .map(|(i, n)| (format!("translators[{i}]"), n)),
        )
    {
        if name.trim().is_empty() {
            r.error(
                path,
                "the plugin name is empty",
                "name a plugin as its `info` reports it, or remove the entry",
            );
        }
    }

    if !r.errors.is_empty() {
        return Err(ConfigErrors(r.errors));
    }
    Ok(Loaded {
        config: Config {
            source: file.to_string(),
            base_dir: std::path::PathBuf::from("."),
            languages,
            fallback_language,
            i18n_key_prefix,
            default_profile,
            commands,
            profiles,
            scopes,
            menu_button: raw.menu_button.unwrap_or(MenuButton::Commands),
            resolver: raw.resolver.clone(),
            translators: raw.translators.clone(),
            plugin_settings,
            sandbox,
            cache,
            state,
            known_users,
            rollout,
            audit,
        },
        warnings: r.warnings,
    })
}

/// Parses a language code; reports it at `path` when it is not two letters.
fn lang_at(code: &str, path: &str, r: &mut Report) -> Option<Lang> {
    let lang = Lang::parse(code);
    if lang.is_none() {
        let hint = Lang::from_user_tag(code)
            .map(|l| format!("use `{l}` (lists are per two-letter ISO 639-1 code)"))
            .unwrap_or_else(|| "use a two-letter ISO 639-1 code such as `en`".into());
        r.error(
            path,
            format!("`{code}` is not a two-letter language code"),
            hint,
        );
    }
    lang
}

fn languages(raw: &RawConfig, r: &mut Report) -> Vec<Lang> {
    let Some(codes) = &raw.languages else {
        return vec![Lang::parse("en").expect("`en` is a language code")];
    };
    if codes.is_empty() {
        r.error(
            "languages",
            "no languages are listed",
            "list at least one, e.g. languages = [\"en\"]",
        );
    }
    let mut out = Vec::new();
    for (i, code) in codes.iter().enumerate() {
        let path = format!("languages[{i}]");
        if let Some(lang) = lang_at(code, &path, r) {
            if out.contains(&lang) {
                r.error(
                    path,
                    format!("`{lang}` is listed twice"),
                    "remove the duplicate",
                );
            } else {
                out.push(lang);
            }
        }
    }
    out
}

fn fallback_language(raw: &RawConfig, languages: &[Lang], r: &mut Report) -> Lang {
    let first = languages
        .first()
        .copied()
        .unwrap_or(Lang::parse("en").expect("valid"));
    let Some(code) = &raw.fallback_language else {
        return first;
    };
    let Some(lang) = lang_at(code, "fallback_language", r) else {
        return first;
    };
    if !languages.contains(&lang) {
        let list: Vec<&str> = languages.iter().map(|l| l.as_str()).collect();
        r.error(
            "fallback_language",
            format!("`{lang}` is not one of `languages` ({})", list.join(", ")),
            format!("add \"{lang}\" to `languages` or pick one of them"),
        );
    }
    lang
}

fn commands(raw: &RawConfig, languages: &[Lang], r: &mut Report) -> IndexMap<String, CommandSpec> {
    let mut out = IndexMap::new();
    for (name, cmd) in &raw.commands {
        let path = join("commands", name);
        if let Some(problem) = limits::command_name_problem(name) {
            r.error(
                &path,
                format!("invalid command name: {problem}"),
                format!(
                    "rename it, e.g. to `{}`",
                    limits::suggested_command_name(name)
                ),
            );
        }
        let mut descriptions = IndexMap::new();
        for (code, text) in &cmd.descriptions {
            let dpath = join(&join(&path, "descriptions"), code);
            let Some(lang) = lang_at(code, &dpath, r) else {
                continue;
            };
            if let Some(problem) = limits::description_problem(text) {
                r.error(
                    &dpath,
                    problem,
                    format!("write 1 to {} characters", limits::MAX_DESCRIPTION_CHARS),
                );
            }
            if !languages.contains(&lang) {
                r.warn(
                    &dpath,
                    format!("`{lang}` is not in `languages`, so this description is never used"),
                    format!("add \"{lang}\" to `languages` or remove it"),
                );
            }
            descriptions.insert(lang, text.trim().to_string());
        }
        if let Some(key) = &cmd.i18n_key
            && key.trim().is_empty()
        {
            r.error(
                join(&path, "i18n_key"),
                "the key is empty",
                "remove it to use the default key, or name one",
            );
        }
        out.insert(
            name.clone(),
            CommandSpec {
                name: name.clone(),
                descriptions,
                i18n_key: cmd.i18n_key.clone(),
                tags: cmd.tags.clone(),
            },
        );
    }
    out
}

fn unknown_name_fix<'a>(
    what: &str,
    wrong: &str,
    known: impl IntoIterator<Item = &'a str> + Clone,
) -> String {
    match suggest(wrong, known.clone()) {
        Some(good) => format!("did you mean `{good}`? or define {what} `{wrong}`"),
        None => {
            let all: Vec<&str> = known.into_iter().collect();
            if all.is_empty() {
                format!("define {what} `{wrong}`")
            } else {
                format!("define {what} `{wrong}` or use one of: {}", all.join(", "))
            }
        }
    }
}

/// Flattens every profile. Unknown references and `extends` cycles are reported; the rest of
/// the profile is still resolved so later checks see as much as possible.
fn profiles(
    raw: &IndexMap<String, RawProfile>,
    commands: &IndexMap<String, CommandSpec>,
    r: &mut Report,
) -> IndexMap<String, Profile> {
    let command_names = || commands.keys().map(String::as_str);
    for (name, profile) in raw {
        let path = join("profiles", name);
        for (field, list) in [("include", &profile.include), ("exclude", &profile.exclude)] {
            for (i, cmd) in list.iter().enumerate() {
                if !commands.contains_key(cmd) {
                    r.error(
                        format!("{}[{i}]", join(&path, field)),
                        format!("unknown command `{cmd}`"),
                        unknown_name_fix("the command", cmd, command_names()),
                    );
                }
            }
        }
        for (i, parent) in profile.extends.iter().enumerate() {
            if !raw.contains_key(parent) {
                r.error(
                    format!("{}[{i}]", join(&path, "extends")),
                    format!("unknown profile `{parent}`"),
                    unknown_name_fix("the profile", parent, raw.keys().map(String::as_str)),
                );
            }
        }
    }

    let mut flat: IndexMap<String, Profile> = IndexMap::new();
    let mut cycles_reported = Vec::new();
    for name in raw.keys() {
        let mut stack = Vec::new();
        let commands = flatten(name, raw, commands, &mut stack, &mut cycles_reported, r);
        if commands.len() > MAX_COMMANDS {
            r.error(
                join("profiles", name),
                format!(
                    "the profile resolves to {} commands; Telegram shows at most {MAX_COMMANDS}",
                    commands.len()
                ),
                "exclude some commands or split the profile",
            );
        }
        flat.insert(
            name.clone(),
            Profile {
                name: name.clone(),
                commands,
            },
        );
    }
    flat
}

fn flatten(
    name: &str,
    raw: &IndexMap<String, RawProfile>,
    known_commands: &IndexMap<String, CommandSpec>,
    stack: &mut Vec<String>,
    cycles_reported: &mut Vec<String>,
    r: &mut Report,
) -> Vec<String> {
    let Some(profile) = raw.get(name) else {
        return Vec::new();
    };
    if let Some(pos) = stack.iter().position(|p| p == name) {
        let mut cycle: Vec<String> = stack[pos..].to_vec();
        cycle.push(name.to_string());
        // Report each cycle once, at the first profile of it, whichever profile we started from.
        let mut members = cycle[..cycle.len() - 1].to_vec();
        members.sort();
        let id = members.join(",");
        if !cycles_reported.contains(&id) {
            cycles_reported.push(id);
            let from = &cycle[cycle.len() - 2];
            let idx = raw[from.as_str()]
                .extends
                .iter()
                .position(|p| p == name)
                .unwrap_or(0);
            r.error(
                format!("{}[{idx}]", join(&join("profiles", from), "extends")),
                format!("`extends` forms a cycle: {}", cycle.join(" -> ")),
                "remove one of these `extends` entries",
            );
        }
        return Vec::new();
    }
    stack.push(name.to_string());
    let mut out: Vec<String> = Vec::new();
    for parent in &profile.extends {
        for cmd in flatten(parent, raw, known_commands, stack, cycles_reported, r) {
            if !out.contains(&cmd) {
                out.push(cmd);
            }
        }
    }
    stack.pop();
    for cmd in &profile.include {
        if known_commands.contains_key(cmd) && !out.contains(cmd) {
            out.push(cmd.clone());
        }
    }
    out.retain(|c| !profile.exclude.contains(c));
    out
}

fn default_profile(
    raw: &RawConfig,
    profiles: &IndexMap<String, Profile>,
    r: &mut Report,
) -> String {
    let known = || profiles.keys().map(String::as_str);
    match &raw.default_profile {
        Some(name) => {
            if !profiles.contains_key(name) {
                r.error(
                    "default_profile",
                    format!("unknown profile `{name}`"),
                    unknown_name_fix("the profile", name, known()),
                );
            }
            name.clone()
        }
        None if profiles.contains_key("default") => "default".to_string(),
        None => {
            r.error(
                "default_profile",
                "no default profile: it is used when a resolver fails or returns an unknown profile",
                match profiles.keys().next() {
                    Some(first) => format!("set default_profile = \"{first}\" (or another profile)"),
                    None => "define a profile and set default_profile to its name".to_string(),
                },
            );
            String::new()
        }
    }
}

fn scopes(
    raw: &[RawScope],
    languages: &[Lang],
    profiles: &IndexMap<String, Profile>,
    r: &mut Report,
) -> Vec<ScopeSpec> {
    let mut out = Vec::new();
    // Which scopes[i] first claimed each (scope, language) pair.
    let mut claimed: HashMap<ListKey, usize> = HashMap::new();
    for (i, s) in raw.iter().enumerate() {
        let path = format!("scopes[{i}]");
        let kind = match ScopeKind::parse(&s.scope) {
            Some((kind, alias)) => {
                if let Some(canonical) = alias {
                    r.warn(
                        format!("{path}.scope"),
                        format!("`{}` is the aiogram-cmds alias of `{canonical}`", s.scope),
                        format!("write scope = \"{canonical}\""),
                    );
                }
                Some(kind)
            }
            None => {
                let names = ScopeKind::ALL.map(ScopeKind::name);
                let fix = match suggest(&s.scope, names) {
                    Some(good) => format!("did you mean `{good}`?"),
                    None => format!("use one of: {}", names.join(", ")),
                };
                r.error(
                    format!("{path}.scope"),
                    format!("unknown scope type `{}`", s.scope),
                    fix,
                );
                None
            }
        };
        if !profiles.contains_key(&s.profile) {
            r.error(
                format!("{path}.profile"),
                format!("unknown profile `{}`", s.profile),
                unknown_name_fix(
                    "the profile",
                    &s.profile,
                    profiles.keys().map(String::as_str),
                ),
            );
        }
        let langs = match &s.languages {
            None => languages.to_vec(),
            Some(codes) => {
                let mut langs = Vec::new();
                for (j, code) in codes.iter().enumerate() {
                    let lpath = format!("{path}.languages[{j}]");
                    if let Some(lang) = lang_at(code, &lpath, r) {
                        if !languages.contains(&lang) {
                            r.error(
                                &lpath,
                                format!("`{lang}` is not one of `languages`"),
                                format!("add \"{lang}\" to `languages` or remove it here"),
                            );
                        } else if langs.contains(&lang) {
                            r.error(
                                &lpath,
                                format!("`{lang}` is listed twice"),
                                "remove the duplicate",
                            );
                        } else {
                            langs.push(lang);
                        }
                    }
                }
                langs
            }
        };
        let Some(kind) = kind else { continue };
        if let Some(scope) = scope_ids(kind, s, &path, r) {
            // The plan sets one list per language plus one without a language.
            for lang in langs.iter().copied().map(Some).chain([None]) {
                let key = ListKey::new(scope.clone(), lang);
                if let Some(first) = claimed.get(&key) {
                    let which = lang
                        .map(|l| format!("language `{l}`"))
                        .unwrap_or_else(|| "the list without a language".into());
                    r.error(
                        &path,
                        format!("{scope} with {which} is already configured by scopes[{first}]"),
                        "merge the two entries or give them different `languages`",
                    );
                    break;
                }
                claimed.insert(key, i);
            }
            out.push(ScopeSpec {
                scope,
                profile: s.profile.clone(),
                languages: langs,
            });
        }
    }
    out
}

/// Checks that a scope carries exactly the ids its type needs, and builds it.
fn scope_ids(
    kind: ScopeKind,
    s: &RawScope,
    path: &str,
    r: &mut Report,
) -> Option<crate::scope::Scope> {
    let mut ok = true;
    let name = kind.name();
    if kind.needs_chat_id() && s.chat_id.is_none() {
        r.error(
            format!("{path}.chat_id"),
            format!("scope `{name}` needs a `chat_id`"),
            "add chat_id = <chat id> or \"@channelusername\"",
        );
        ok = false;
    }
    if !kind.needs_chat_id() && s.chat_id.is_some() {
        r.error(
            format!("{path}.chat_id"),
            format!("scope `{name}` does not take a `chat_id`"),
            "remove chat_id, or use scope = \"chat\" for one chat",
        );
        ok = false;
    }
    if kind.needs_user_id() && s.user_id.is_none() {
        r.error(
            format!("{path}.user_id"),
            "scope `chat_member` needs a `user_id`",
            "add user_id = <user id>",
        );
        ok = false;
    }
    if !kind.needs_user_id() && s.user_id.is_some() {
        r.error(
            format!("{path}.user_id"),
            format!("scope `{name}` does not take a `user_id`"),
            "remove user_id, or use scope = \"chat_member\" for one member of a chat",
        );
        ok = false;
    }
    if let Some(ChatRef::Username(u)) = &s.chat_id
        && !u.starts_with('@')
    {
        r.error(
            format!("{path}.chat_id"),
            format!("`{u}` is neither a number nor an @username"),
            format!("write \"@{u}\" or the numeric chat id"),
        );
        ok = false;
    }
    if !ok {
        return None;
    }
    kind.build(s.chat_id.clone(), s.user_id)
}

/// Telegram treats an empty list as no list: users of an empty profile see a broader menu.
fn warn_empty_profiles(profiles: &IndexMap<String, Profile>, r: &mut Report) {
    for p in profiles.values().filter(|p| p.commands.is_empty()) {
        r.warn(
            join("profiles", &p.name),
            "the profile has no commands; Telegram treats an empty list as unset, so its users see the broader scope's menu",
            "include at least one command (e.g. `help`) if these users must not see other commands",
        );
    }
}

/// `[sandbox]`: each bound within a range where the host stays safe and plugins stay usable.
fn sandbox(raw: &RawSandbox, r: &mut Report) -> SandboxLimits {
    let mut limits = SandboxLimits::default();
    let mut bounded =
        |key: &str, value: Option<u64>, min: u64, max: u64, unit: &str| -> Option<u64> {
            let v = value?;
            if (min..=max).contains(&v) {
                Some(v)
            } else {
                r.error(
                    format!("sandbox.{key}"),
                    format!("{v} {unit} is out of range"),
                    format!("use {min} to {max} {unit}"),
                );
                None
            }
        };
    if let Some(ms) = bounded("timeout_ms", raw.timeout_ms, 1, 10_000, "ms") {
        limits.timeout = std::time::Duration::from_millis(ms);
    }
    if let Some(mib) = bounded("memory_mib", raw.memory_mib, 1, 4096, "MiB") {
        limits.memory_bytes = (mib as usize) << 20;
    }
    // The maxima default to at least the defaults every plugin gets.
    limits.max_timeout = limits.max_timeout.max(limits.timeout);
    limits.max_memory_bytes = limits.max_memory_bytes.max(limits.memory_bytes);
    if let Some(ms) = bounded("max_timeout_ms", raw.max_timeout_ms, 1, 10_000, "ms") {
        limits.max_timeout = std::time::Duration::from_millis(ms);
    }
    if let Some(mib) = bounded("max_memory_mib", raw.max_memory_mib, 1, 4096, "MiB") {
        limits.max_memory_bytes = (mib as usize) << 20;
    }
    if let Some(n) = bounded(
        "table_elements",
        raw.table_elements,
        1_000,
        1 << 26,
        "elements",
    ) {
        limits.table_elements = n as usize;
    }
    if let Some(mib) = bounded("max_file_mib", raw.max_file_mib, 1, 1024, "MiB") {
        limits.max_file_bytes = mib << 20;
    }
    if let Some(s) = bounded("compile_timeout_s", raw.compile_timeout_s, 1, 600, "s") {
        limits.compile_timeout = std::time::Duration::from_secs(s);
    }
    if let Some(kib) = bounded("max_output_kib", raw.max_output_kib, 1, 4096, "KiB") {
        limits.max_output_bytes = (kib as usize) << 10;
    }
    if let Some(n) = bounded(
        "failure_threshold",
        raw.failure_threshold.map(u64::from),
        1,
        1000,
        "failures",
    ) {
        limits.failure_threshold = n as u32;
    }
    if let Some(s) = bounded("cooldown_s", raw.cooldown_s, 0, 86_400, "s") {
        limits.cooldown = std::time::Duration::from_secs(s);
    }
    if let Some(reuse) = raw.reuse_instances {
        limits.reuse_instances = reuse;
    }
    if limits.timeout > limits.max_timeout {
        r.error(
            "sandbox.timeout_ms",
            "is over `max_timeout_ms`",
            "lower it, or raise `max_timeout_ms`",
        );
    }
    if limits.memory_bytes > limits.max_memory_bytes {
        r.error(
            "sandbox.memory_mib",
            "is over `max_memory_mib`",
            "lower it, or raise `max_memory_mib`",
        );
    }
    limits
}

/// `[plugins.<name>]` values as plugins read them: strings as-is, other values as JSON text.
/// `memory_mib` and `timeout_ms` are that plugin's limits, checked against the host's maximum.
fn plugin_settings(
    raw: &RawConfig,
    limits: &SandboxLimits,
    r: &mut Report,
) -> std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>> {
    let mut out = std::collections::BTreeMap::new();
    for (plugin, table) in &raw.plugins {
        let mut settings = std::collections::BTreeMap::new();
        for (key, value) in table {
            let max = match key.as_str() {
                "memory_mib" => Some((
                    (limits.max_memory_bytes >> 20) as u64,
                    "MiB",
                    "max_memory_mib",
                )),
                "timeout_ms" => Some((
                    limits.max_timeout.as_millis() as u64,
                    "ms",
                    "max_timeout_ms",
                )),
                _ => None,
            };
            if let Some((max, unit, max_key)) = max {
                match value.as_u64() {
                    Some(v) if (1..=max).contains(&v) => {}
                    _ => {
                        r.error(
                            join(&join("plugins", plugin), key),
                            format!("{value} is not a limit this host allows for one plugin"),
                            format!(
                                "use 1 to {max} {unit} (raise `[sandbox] {max_key}` to allow more)"
                            ),
                        );
                        continue;
                    }
                }
            }
            let text = match value {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Null => {
                    r.error(
                        join(&join("plugins", plugin), key),
                        "a setting cannot be null",
                        "give it a value or remove it",
                    );
                    continue;
                }
                other => other.to_string(),
            };
            settings.insert(key.clone(), text);
        }
        out.insert(plugin.clone(), settings);
    }
    out
}

/// `[cache]`: capacity 0 turns caching off; `ttl_s = 0` keeps answers until evicted.
fn cache(raw: &RawConfig, r: &mut Report) -> crate::output_cache::CacheSettings {
    let mut settings = crate::output_cache::CacheSettings::default();
    if let Some(capacity) = raw.cache.capacity {
        if capacity > 100_000_000 {
            r.error(
                "cache.capacity",
                format!("{capacity} entries is out of range"),
                "use 0 (off) to 100000000",
            );
        } else {
            settings.capacity = capacity;
        }
    }
    if let Some(ttl) = raw.cache.ttl_s {
        settings.ttl = (ttl > 0).then(|| std::time::Duration::from_secs(ttl));
    }
    settings
}

/// `[state]`: `memory` (default), `file` with `path`, or `redis` with `url`.
/// A relative `path` is made relative to the config file by `Config::load`.
fn state(raw: &RawConfig, r: &mut Report) -> super::StateBackend {
    use super::StateBackend;
    let s = &raw.state;
    let unused = |r: &mut Report, key: &str, present: bool, backend: &str| {
        if present {
            r.warn(
                format!("state.{key}"),
                format!("`{key}` is not used by the `{backend}` backend"),
                "remove it",
            );
        }
    };
    match s.backend.as_deref().unwrap_or("memory") {
        "memory" => {
            unused(r, "path", s.path.is_some(), "memory");
            unused(r, "url", s.url.is_some(), "memory");
            StateBackend::Memory
        }
        "file" => {
            unused(r, "url", s.url.is_some(), "file");
            match &s.path {
                Some(path) if !path.is_empty() => StateBackend::File(path.into()),
                _ => {
                    r.error(
                        "state.path",
                        "the `file` backend needs a path",
                        "add path = \"bot.state\" (relative to this file)",
                    );
                    StateBackend::Memory
                }
            }
        }
        "redis" => {
            unused(r, "path", s.path.is_some(), "redis");
            match &s.url {
                Some(url) if url.starts_with("redis://") || url.starts_with("rediss://") => {
                    StateBackend::Redis {
                        url: url.clone(),
                        key_prefix: s.key_prefix.clone(),
                    }
                }
                Some(url) => {
                    r.error(
                        "state.url",
                        format!("`{url}` is not a Redis URL"),
                        "use redis://HOST:PORT (or rediss:// for TLS)",
                    );
                    StateBackend::Memory
                }
                None => {
                    r.error(
                        "state.url",
                        "the `redis` backend needs a url",
                        "add url = \"redis://127.0.0.1:6379\"",
                    );
                    StateBackend::Memory
                }
            }
        }
        other => {
            r.error(
                "state.backend",
                format!("unknown backend `{other}`"),
                "use memory, file or redis",
            );
            StateBackend::Memory
        }
    }
}

/// `[rollout]`: when a staged plugin version is taken back by itself.
fn rollout(raw: &RawConfig, r: &mut Report) -> super::RolloutSettings {
    let defaults = super::RolloutSettings::default();
    let max_fallback_percent = match raw.rollout.max_fallback_percent {
        None => defaults.max_fallback_percent,
        Some(p) if (0.0..=100.0).contains(&p) => p,
        Some(p) => {
            r.error(
                "rollout.max_fallback_percent",
                format!("{p} is not a percentage"),
                "give a number from 0 to 100 (default 1)",
            );
            defaults.max_fallback_percent
        }
    };
    super::RolloutSettings {
        max_fallback_percent,
        min_calls: raw.rollout.min_calls.unwrap_or(defaults.min_calls).max(1),
    }
}

/// `[audit]`: the decision log, when it names a path.
fn audit(raw: &RawConfig, r: &mut Report) -> Option<super::AuditSettings> {
    let audit = raw.audit.as_ref()?;
    let path = match audit.path.as_deref() {
        Some(path) if !path.is_empty() => path,
        _ => {
            r.error(
                "audit.path",
                "the decision log needs a path",
                "add path = \"audit.jsonl\" (relative to this file), or \"-\" for stdout",
            );
            return None;
        }
    };
    let max_mib = audit.max_mib.unwrap_or(64);
    if max_mib == 0 {
        r.error(
            "audit.max_mib",
            "a log file cannot rotate at 0 MiB",
            "give the size a file may grow to, in MiB (default 64)",
        );
    }
    Some(super::AuditSettings {
        path: path.into(),
        max_bytes: max_mib.max(1) << 20,
        keep: audit.keep.unwrap_or(5),
    })
}
