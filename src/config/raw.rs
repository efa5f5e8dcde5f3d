//! The config as written: a serde model that accepts anything well-typed, plus the unknown keys
//! met on the way. Meaning is checked in `validate`.

use indexmap::IndexMap;
use serde::Deserialize;

use super::diagnostic::{Diagnostic, key_segment, suggest};
use super::{ConfigErrors, Format, MenuButton};
use crate::scope::ChatRef;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawConfig {
    pub languages: Option<Vec<String>>,
    pub fallback_language: Option<String>,
    pub i18n_key_prefix: Option<String>,
    pub default_profile: Option<String>,
    pub commands: IndexMap<String, RawCommand>,
    pub profiles: IndexMap<String, RawProfile>,
    pub scopes: Vec<RawScope>,
    pub menu_button: Option<MenuButton>,
    /// The resolver plugin's name.
    pub resolver: Option<String>,
    /// Translator plugins' names, asked in order.
    pub translators: Vec<String>,
    /// Per-plugin settings: `[plugins.<name>]`.
    pub plugins: IndexMap<String, IndexMap<String, serde_json::Value>>,
    pub sandbox: RawSandbox,
    pub cache: RawCache,
    pub state: RawState,
    pub known_users: RawKnownUsers,
    pub rollout: RawRollout,
    pub audit: Option<RawAudit>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawAudit {
    pub path: Option<String>,
    pub max_mib: Option<u64>,
    pub keep: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawRollout {
    pub max_fallback_percent: Option<f64>,
    pub min_calls: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawKnownUsers {
    pub max: Option<u64>,
    pub forget_after_days: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawState {
    pub backend: Option<String>,
    pub path: Option<String>,
    pub url: Option<String>,
    pub key_prefix: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawCache {
    pub capacity: Option<u64>,
    pub ttl_s: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawSandbox {
    pub timeout_ms: Option<u64>,
    pub memory_mib: Option<u64>,
    pub max_timeout_ms: Option<u64>,
    pub max_memory_mib: Option<u64>,
    pub table_elements: Option<u64>,
    pub max_file_mib: Option<u64>,
    pub compile_timeout_s: Option<u64>,
    pub max_output_kib: Option<u64>,
    pub failure_threshold: Option<u32>,
    pub cooldown_s: Option<u64>,
    pub reuse_instances: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawCommand {
    pub descriptions: IndexMap<String, String>,
    pub i18n_key: Option<String>,
    pub tags: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawProfile {
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub extends: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct RawScope {
    pub scope: String,
    #[serde(default)]
    pub chat_id: Option<ChatRef>,
    #[serde(default)]
    pub user_id: Option<i64>,
    pub profile: String,
    #[serde(default)]
    pub languages: Option<Vec<String>>,
}

/// Keys each table accepts, for typo hints.
const TOP_KEYS: &[&str] = &[
    "languages",
    "fallback_language",
    "i18n_key_prefix",
    "default_profile",
    "commands",
    "profiles",
    "scopes",
    "menu_button",
    "resolver",
    "translators",
    "plugins",
    "sandbox",
    "cache",
    "state",
    "known_users",
    "rollout",
    "audit",
];
const AUDIT_KEYS: &[&str] = &["path", "max_mib", "keep"];
const ROLLOUT_KEYS: &[&str] = &["max_fallback_percent", "min_calls"];
const KNOWN_USERS_KEYS: &[&str] = &["max", "forget_after_days"];
const STATE_KEYS: &[&str] = &["backend", "path", "url", "key_prefix"];
const CACHE_KEYS: &[&str] = &["capacity", "ttl_s"];
const SANDBOX_KEYS: &[&str] = &[
    "timeout_ms",
    "memory_mib",
    "max_timeout_ms",
    "max_memory_mib",
    "table_elements",
    "max_file_mib",
    "compile_timeout_s",
    "max_output_kib",
    "failure_threshold",
    "cooldown_s",
    "reuse_instances",
];
const COMMAND_KEYS: &[&str] = &["descriptions", "i18n_key", "tags"];
const PROFILE_KEYS: &[&str] = &["include", "exclude", "extends"];
const SCOPE_KEYS: &[&str] = &["scope", "chat_id", "user_id", "profile", "languages"];

/// One step of a path as serde reports it.
#[derive(Debug, Clone)]
enum Segment {
    Key(String),
    Index(usize),
}

fn render(segments: &[Segment]) -> String {
    let mut out = String::new();
    for seg in segments {
        match seg {
            Segment::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(&key_segment(k));
            }
            Segment::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

fn ignored_segments(path: &serde_ignored::Path<'_>, out: &mut Vec<Segment>) {
    use serde_ignored::Path;
    match path {
        Path::Root => {}
        Path::Seq { parent, index } => {
            ignored_segments(parent, out);
            out.push(Segment::Index(*index));
        }
        Path::Map { parent, key } => {
            ignored_segments(parent, out);
            out.push(Segment::Key(key.clone()));
        }
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => ignored_segments(parent, out),
    }
}

fn error_segments(path: &serde_path_to_error::Path) -> Vec<Segment> {
    use serde_path_to_error::Segment as S;
    path.iter()
        .filter_map(|s| match s {
            S::Seq { index } => Some(Segment::Index(*index)),
            S::Map { key } => Some(Segment::Key(key.clone())),
            S::Enum { variant } => Some(Segment::Key(variant.clone())),
            S::Unknown => None,
        })
        .collect()
}

/// The diagnostic for an unknown key, with the closest known key as the fix when there is one.
fn unknown_key(file: &str, segments: &[Segment]) -> Diagnostic {
    let Some(Segment::Key(key)) = segments.last() else {
        return Diagnostic::error(file, render(segments), "unexpected value", "remove it");
    };
    let known: &[&str] = match segments {
        [_] => TOP_KEYS,
        [Segment::Key(t), _, _] if t == "commands" => COMMAND_KEYS,
        [Segment::Key(t), _, _] if t == "profiles" => PROFILE_KEYS,
        [Segment::Key(t), Segment::Index(_), _] if t == "scopes" => SCOPE_KEYS,
        [Segment::Key(t), _] if t == "sandbox" => SANDBOX_KEYS,
        [Segment::Key(t), _] if t == "cache" => CACHE_KEYS,
        [Segment::Key(t), _] if t == "state" => STATE_KEYS,
        [Segment::Key(t), _] if t == "known_users" => KNOWN_USERS_KEYS,
        [Segment::Key(t), _] if t == "rollout" => ROLLOUT_KEYS,
        [Segment::Key(t), _] if t == "audit" => AUDIT_KEYS,
        _ => &[],
    };
    let fix = match suggest(key, known.iter().copied()) {
        Some(good) => format!("did you mean `{good}`?"),
        None if known.is_empty() => "remove it".to_string(),
        None => format!("remove it; known keys here: {}", known.join(", ")),
    };
    Diagnostic::error(file, render(segments), format!("unknown key `{key}`"), fix)
}

/// Deserialises the raw model, collecting unknown keys as errors instead of stopping at them.
/// A syntax or type error stops parsing: nothing after it can be trusted.
pub(super) fn parse(
    text: &str,
    format: Format,
    file: &str,
) -> Result<(RawConfig, Vec<Diagnostic>), ConfigErrors> {
    let mut unknown: Vec<Diagnostic> = Vec::new();
    let mut on_ignored = |path: serde_ignored::Path<'_>| {
        let mut segs = Vec::new();
        ignored_segments(&path, &mut segs);
        unknown.push(unknown_key(file, &segs));
    };
    let fatal = |path: String, message: String, fix: &str| {
        ConfigErrors::single(Diagnostic::error(file, path, message, fix))
    };

    let result = match format {
        Format::Toml => {
            let de = toml::Deserializer::parse(text).map_err(|e| {
                fatal(
                    String::new(),
                    one_line(&e.to_string()),
                    "fix the TOML syntax at that line",
                )
            })?;
            serde_path_to_error::deserialize(serde_ignored::Deserializer::new(de, &mut on_ignored))
                .map_err(|e| {
                    (
                        render(&error_segments(e.path())),
                        one_line(&e.inner().to_string()),
                    )
                })
        }
        Format::Json => {
            let mut de = serde_json::Deserializer::from_str(text);
            serde_path_to_error::deserialize(serde_ignored::Deserializer::new(
                &mut de,
                &mut on_ignored,
            ))
            .map_err(|e| {
                (
                    render(&error_segments(e.path())),
                    one_line(&e.inner().to_string()),
                )
            })
        }
    };
    match result {
        Ok(raw) => Ok((raw, unknown)),
        Err((path, message)) => Err(fatal(
            path,
            message,
            "give the value the type shown in the config reference",
        )),
    }
}

/// TOML errors span several lines (a snippet with a caret); keep messages one per line.
fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.chars().all(|c| c == '|' || c == '^' || c.is_whitespace()))
        .collect::<Vec<_>>()
        .join("; ")
}
