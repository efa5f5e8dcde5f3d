//! The config model: parsing TOML or JSON of one shape, and validation that reports every
//! problem at once, each naming the file, the path (`profiles.admin.include[2]`), what is
//! wrong and how to fix it.
//!
//! Architecture invariant: this module does no I/O beyond reading the file it is given, and
//! knows nothing of wasmtime, HTTP or the clock. What leaves it is a [`Config`] that the rest
//! of the engine can trust: every name valid, every reference resolved, every profile flattened.

mod diagnostic;
mod raw;
mod validate;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use indexmap::IndexMap;
use serde::Serialize;

pub use diagnostic::{ConfigErrors, Diagnostic};

use crate::scope::{Lang, Scope};

/// A validated config. Built only by [`Config::load`] / [`Config::parse`], so its invariants hold:
/// command names are valid for Telegram, profiles are flattened into ordered command lists of at
/// most 100, every referenced profile exists, `fallback_language` is one of `languages`.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the config came from, for messages.
    pub source: String,
    /// The folder relative paths in the config (catalogs) are taken from: the file's folder.
    pub base_dir: std::path::PathBuf,
    pub languages: Vec<Lang>,
    pub fallback_language: Lang,
    pub i18n_key_prefix: String,
    pub default_profile: String,
    pub commands: IndexMap<String, CommandSpec>,
    pub profiles: IndexMap<String, Profile>,
    pub scopes: Vec<ScopeSpec>,
    pub menu_button: MenuButton,
    /// The resolver plugin to use, by its name; `None`: the library user supplies one.
    pub resolver: Option<String>,
    /// Translator plugins by name, asked in order; the first answer wins.
    pub translators: Vec<String>,
    /// `[plugins.<name>]` tables, values as text (strings as-is, others as JSON). The keys
    /// [`PLUGIN_LIMIT_KEYS`] are the host's (one plugin's limits), never shown to the plugin.
    pub plugin_settings: BTreeMap<String, BTreeMap<String, String>>,
    pub sandbox: SandboxLimits,
    /// Resolver output cache (`[cache]`).
    pub cache: crate::output_cache::CacheSettings,
    /// Where the applied state lives (`[state]`).
    pub state: StateBackend,
    /// How many users the host remembers for reconciliation, and for how long (`[known_users]`).
    pub known_users: KnownUsersSettings,
    /// When a staged rollout aborts by itself (`[rollout]`).
    pub rollout: RolloutSettings,
    /// The decision log (`[audit]`), when one is configured.
    pub audit: Option<AuditSettings>,
}

/// `[audit]`: where the decision log goes (see `crate::audit`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSettings {
    /// A file (relative to the config), or `-` for stdout.
    pub path: std::path::PathBuf,
    /// The file is rotated before it grows past this.
    pub max_bytes: u64,
    /// Rotated files kept (`path.1` the newest).
    pub keep: u32,
}

/// `[rollout]`: a staged plugin version is taken back by itself once more than
/// `max_fallback_percent` of its answers fell back (errors, traps, undeclared profiles),
/// counted over at least `min_calls` answers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RolloutSettings {
    pub max_fallback_percent: f64,
    pub min_calls: u64,
}

impl Default for RolloutSettings {
    fn default() -> Self {
        RolloutSettings {
            max_fallback_percent: 1.0,
            min_calls: 100,
        }
    }
}

/// `[known_users]`: the users a running host remembers (their last context), so that a new
/// plugin version or config reaches them without a message of theirs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownUsersSettings {
    /// Users beyond this many are still updated, but not remembered. 0: remember none.
    pub max: u64,
    /// A user not seen for this many days is forgotten when a reconciliation meets them.
    /// 0: never.
    pub forget_after_days: u32,
}

impl Default for KnownUsersSettings {
    fn default() -> Self {
        KnownUsersSettings {
            max: 10_000_000,
            forget_after_days: 365,
        }
    }
}

/// Keys of `[plugins.<name>]` that raise that plugin's own limits (up to `[sandbox]
/// max_memory_mib` / `max_timeout_ms`) instead of being settings the plugin reads.
pub const PLUGIN_LIMIT_KEYS: [&str; 2] = ["memory_mib", "timeout_ms"];

/// Bounds every plugin call runs within (`[sandbox]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxLimits {
    /// Wall time one call may take before it is interrupted.
    pub timeout: Duration,
    /// Linear memory one instance may hold, all its memories together.
    pub memory_bytes: usize,
    /// The most `[plugins.<name>] timeout_ms` may raise one plugin's `timeout` to.
    pub max_timeout: Duration,
    /// The most `[plugins.<name>] memory_mib` may raise one plugin's `memory_bytes` to.
    pub max_memory_bytes: usize,
    /// Table elements one instance may hold, all its tables together (8 bytes or more each).
    pub table_elements: usize,
    /// Largest plugin file read; checked before reading.
    pub max_file_bytes: u64,
    /// CPU time one component may take to compile (all compile threads together) before its
    /// load is rejected; a compile worker is also stopped after 4 times this of wall time.
    /// In process (the library's default compiler) it bounds wall time.
    pub compile_timeout: Duration,
    /// Largest answer accepted (a profile name, or one translation).
    pub max_output_bytes: usize,
    /// Consecutive crashes (trap, timeout, limit, oversized answer) before quarantine.
    pub failure_threshold: u32,
    /// How long a quarantined plugin is skipped before one probe call.
    pub cooldown: Duration,
    /// Reuse instances between calls (a trapped one never is); `false` instantiates per call.
    pub reuse_instances: bool,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        SandboxLimits {
            timeout: Duration::from_millis(20),
            memory_bytes: 16 << 20,
            max_timeout: Duration::from_millis(1000),
            max_memory_bytes: 256 << 20,
            table_elements: 1 << 20,
            max_file_bytes: 64 << 20,
            // CPU, not wall time, so a busy machine refuses no honest plugin: an 18 MB Python
            // component takes 8-17 s of CPU to compile (release and debug builds, 2 threads),
            // once (then the compiled cache serves it). A compile bomb on one thread is
            // stopped after 30 s on an idle machine, 2 minutes at most on a starved one.
            compile_timeout: Duration::from_secs(30),
            max_output_bytes: 64 << 10,
            failure_threshold: 5,
            cooldown: Duration::from_secs(30),
            reuse_instances: true,
        }
    }
}

/// One command as configured.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandSpec {
    pub name: String,
    /// Inline descriptions; they win over any translator.
    pub descriptions: IndexMap<Lang, String>,
    /// Translation key; `None` means `{i18n_key_prefix}.{name}.desc`.
    pub i18n_key: Option<String>,
    pub tags: Vec<String>,
}

impl CommandSpec {
    /// The key translators are asked for.
    pub fn translation_key(&self, prefix: &str) -> String {
        match &self.i18n_key {
            Some(key) => key.clone(),
            None => format!("{prefix}.{}.desc", self.name),
        }
    }
}

/// A named command set, flattened: `extends` applied first, then `include`, minus `exclude`.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub name: String,
    /// Command names in menu order.
    pub commands: Vec<String>,
}

/// One configured scope: where a profile's menu is set, in which languages.
#[derive(Debug, Clone, PartialEq)]
pub struct ScopeSpec {
    pub scope: Scope,
    pub profile: String,
    /// Languages that get a dedicated list; the plan adds one list without a language.
    pub languages: Vec<Lang>,
}

/// Where the applied state lives (`[state] backend = ...`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum StateBackend {
    /// For this process's lifetime (the default).
    #[default]
    Memory,
    /// A redb file (`path`, relative to the config file).
    File(std::path::PathBuf),
    /// A Redis server shared by the bot's workers; keys start with `key_prefix`
    /// (default `cmdscope:<bot id>`).
    Redis {
        url: String,
        key_prefix: Option<String>,
    },
}

/// The bot's default menu button.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MenuButton {
    Commands,
    Default,
}

impl MenuButton {
    /// The Bot API `type` of the button.
    pub fn name(self) -> &'static str {
        match self {
            MenuButton::Commands => "commands",
            MenuButton::Default => "default",
        }
    }
}

/// The file formats a config may be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Toml,
    Json,
}

impl Format {
    /// `.json` is JSON; everything else is TOML.
    pub fn from_path(path: &Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some(ext) if ext.eq_ignore_ascii_case("json") => Format::Json,
            _ => Format::Toml,
        }
    }
}

/// A config and the warnings met while loading it (aliases, untranslated languages, ...).
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<Diagnostic>,
}

impl Config {
    /// Reads and validates a config file; the format follows the extension.
    pub fn load(path: &Path) -> Result<Loaded, ConfigErrors> {
        let source = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| {
            ConfigErrors::single(Diagnostic::error(
                &source,
                "",
                format!("cannot read the file: {e}"),
                "check the path and its permissions",
            ))
        })?;
        Config::from_bytes(path, &bytes)
    }

    /// Validates the bytes of the config file at `path` (read by the caller, so what it
    /// hashes is what is built); paths in it are taken relative to the file's folder.
    pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Loaded, ConfigErrors> {
        let source = path.display().to_string();
        let text = std::str::from_utf8(bytes).map_err(|e| {
            ConfigErrors::single(Diagnostic::error(
                &source,
                "",
                format!("the file is not UTF-8: {e}"),
                "save it as UTF-8",
            ))
        })?;
        let mut loaded = Config::parse(text, Format::from_path(path), &source)?;
        // Absolute now, once: paths in the config stay the same files if the working
        // directory changes later.
        let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        loaded.config.base_dir = absolute.parent().map(Path::to_path_buf).unwrap_or_default();
        if let StateBackend::File(state) = &mut loaded.config.state {
            *state = loaded.config.base_dir.join(&*state);
        }
        if let Some(audit) = &mut loaded.config.audit
            && audit.path != Path::new("-")
        {
            audit.path = loaded.config.base_dir.join(&audit.path);
        }
        Ok(loaded)
    }

    /// Parses and validates config text. `source` names it in messages.
    pub fn parse(text: &str, format: Format, source: &str) -> Result<Loaded, ConfigErrors> {
        let raw = raw::parse(text, format, source)?;
        validate::validate(raw, source)
    }

    pub fn profile(&self, name: &str) -> Option<&Profile> {
        self.profiles.get(name)
    }

    /// The language a menu is built in for a user: theirs when configured, else the fallback.
    pub fn menu_language(&self, user_language: Option<Lang>) -> Lang {
        match user_language {
            Some(lang) if self.languages.contains(&lang) => lang,
            _ => self.fallback_language,
        }
    }
}
