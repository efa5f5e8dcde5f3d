//! Why a plugin file did not load ([`LoadError`]), every message bounded: a hostile plugin
//! may declare a 10 MB name or 200,000 profiles, and its traps carry long backtraces.

use super::World;

/// Why a file was not loaded as a plugin. Every message is bounded (a hostile plugin may
/// declare a 10 MB name or 200,000 profiles): lists name a few items and count the rest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read the file: {0}")]
    Read(String),
    #[error("is {0}, not a regular file: only regular files (or symlinks to them) are loaded")]
    NotAFile(String),
    #[error(
        "is {len} bytes, over the {max}-byte limit (raise `[sandbox] max_file_mib` if it is really a plugin)"
    )]
    TooLarge { len: u64, max: u64 },
    #[error("not a valid WebAssembly component: {0}")]
    Compile(String),
    #[error("took longer than {} s to compile and was rejected (raise `[sandbox] compile_timeout_s` if it is a large but honest plugin)", .0.as_secs_f64())]
    CompileBudget(std::time::Duration),
    #[error("used more than {} s of CPU time to compile and was rejected (raise `[sandbox] compile_timeout_s` if it is a large but honest plugin)", .0.as_secs_f64())]
    CompileCpuBudget(std::time::Duration),
    #[error(
        "targets the plugin interface version {found} (`{interface}`), and this host speaks {speaks}: build the plugin against `wit/` of this cmdscope, or upgrade cmdscope"
    )]
    InterfaceVersion {
        interface: String,
        found: String,
        speaks: String,
    },
    #[error("imports {} which the sandbox never grants (plugins get no HTTP or other host access): remove what needs it (a JavaScript `fetch`, a Rust HTTP client), or build with the toolchain's option that drops unused WASI imports", some_of(.0))]
    ForbiddenImport(Vec<String>),
    #[error("exports neither a resolver (`{}`) nor a translator (`{}`); it exports: {}. Build it for the `resolver-plugin` or `translator-plugin` world of cmdscope's wit/plugin.wit (`cmdscope new-plugin` writes a project that does)", super::bindings::latest().resolver_export(), super::bindings::latest().translator_export(), if .0.is_empty() { "nothing".to_string() } else { some_of(.0) })]
    NotAPlugin(Vec<String>),
    #[error("cannot be linked: {0}")]
    Link(String),
    #[error("its `info` call failed: {0}")]
    Info(String),
    /// `info` ran out of memory or time before the plugin said its name, so its own limits
    /// could not be looked up.
    #[error(
        "its `info` call {0} before the plugin said its name (a plugin that needs more: `[plugins.<its name>] memory_mib = ...` or `timeout_ms = ...`, up to `[sandbox] max_memory_mib` / `max_timeout_ms`)"
    )]
    InfoOverLimits(String),
    /// The plugin answered `info` but cannot start within its own limits (`[sandbox]`
    /// defaults, or its `[plugins.<name>]` ones).
    #[error(
        "cannot start within its limits: {reason} (give it more: `[plugins.{name}] memory_mib = ...` or `timeout_ms = ...`, up to `[sandbox] max_memory_mib` / `max_timeout_ms`)"
    )]
    Limits { name: String, reason: String },
    #[error("may return profiles the config does not define: {} (define them, or fix the plugin)", some_of(.0))]
    UnknownProfiles(Vec<String>),
    #[error("a plugin named `{0}` is already loaded from {1}")]
    DuplicateName(String, String),
    #[error("`{0}` is already loaded as a {1}; a name keeps its world for the host's lifetime")]
    OtherWorld(String, World),
}

impl LoadError {
    /// Whether the reason lies outside the file (another file, the config): such a file is
    /// looked at again when that changes.
    pub fn is_external(&self) -> bool {
        matches!(
            self,
            LoadError::UnknownProfiles(_) | LoadError::DuplicateName(..)
        )
    }

    /// Whether the file was refused for the memory or time its limits give it, which the
    /// config's `[plugins.<name>]` settings may raise: looked at again when they change.
    pub fn is_over_limits(&self) -> bool {
        matches!(
            self,
            LoadError::Limits { .. } | LoadError::InfoOverLimits(_)
        )
    }
}

/// At most five items, each clipped, then how many more: `a`, `b` and 199998 more.
fn some_of(items: &[String]) -> String {
    const SHOWN: usize = 5;
    let shown: Vec<String> = items
        .iter()
        .take(SHOWN)
        .map(|i| format!("`{}`", clip_display(i, 100)))
        .collect();
    let mut text = shown.join(", ");
    if items.len() > SHOWN {
        text.push_str(&format!(" and {} more", items.len() - SHOWN));
    }
    text
}

/// `text` escaped for one line and cut at `max` characters (with an ellipsis).
pub(crate) fn clip_display(text: &str, max: usize) -> String {
    let mut out: String = text.escape_debug().take(max).collect();
    if text.escape_debug().nth(max).is_some() {
        out.push('…');
    }
    out
}

/// `message` cut at `max` bytes (at most 1 KiB below [`MAX_REASON`]), on a char boundary.
pub(crate) fn clip(message: &str, max: usize) -> String {
    let mut end = message.len().min(max.min(MAX_REASON));
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    message[..end].to_string()
}

/// A wasmtime error's chain of causes on one line, clipped: a trap's wasm backtrace can run
/// to thousands of frames.
pub(crate) fn root_cause(e: &wasmtime::Error) -> String {
    let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
    // Some causes print `Debug` over several lines: one line reads better in a log or event.
    let one_line = chain
        .join(": ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    clip(&one_line, MAX_REASON)
}

/// Longest reason kept from a plugin's failure.
pub(crate) const MAX_REASON: usize = 2048;
