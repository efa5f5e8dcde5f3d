//! The decision log (`[audit]`, opt-in): one JSON line per user whose profile a rule change
//! moved (a plugin version, a config, a release, a rollout), with the profile before and
//! after, who decided (the plugin's name, version and sha256), what triggered it and when.
//! To a file, rotated by size (`path.1` the newest old file, up to `keep`), or to stdout.
//!
//! The host's reconciler writes it: it knows the rules each user was last brought to, so
//! `from` is exact. A user's own context change (a message) is not a rule change and is
//! not logged.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;

use crate::config::AuditSettings;
use crate::explain::PluginRef;

/// One line.
#[derive(Debug, Clone, Serialize)]
pub struct Decision<'a> {
    /// RFC 3339, UTC.
    pub time: String,
    pub user_id: i64,
    pub chat_id: i64,
    pub from: &'a str,
    pub to: &'a str,
    /// The resolver that decided `to` (a plugin's name, or a native resolver's).
    pub resolver: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin: Option<PluginRef>,
    /// Set when `to` is the config's fallback: why the resolver's answer was not used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
    /// What changed the rules (the reconciliation's triggers).
    pub trigger: &'a serde_json::Value,
}

enum Sink {
    Stdout,
    File { file: std::fs::File, size: u64 },
}

/// Where decisions go (see the module's docs).
pub struct AuditLog {
    path: Option<PathBuf>,
    max_bytes: u64,
    keep: u32,
    sink: Mutex<Sink>,
}

impl AuditLog {
    /// Opens the log `[audit]` names (`path = "-"`: stdout).
    pub fn open(settings: &AuditSettings) -> std::io::Result<AuditLog> {
        let (path, sink) = if settings.path == Path::new("-") {
            (None, Sink::Stdout)
        } else {
            let file = append(&settings.path)?;
            let size = file.metadata()?.len();
            (Some(settings.path.clone()), Sink::File { file, size })
        };
        Ok(AuditLog {
            path,
            max_bytes: settings.max_bytes,
            keep: settings.keep,
            sink: Mutex::new(sink),
        })
    }

    /// Writes one decision; a failure is logged, never passed on (the menus matter more).
    pub fn write(&self, decision: &Decision<'_>) {
        let mut line = match serde_json::to_vec(decision) {
            Ok(line) => line,
            Err(e) => return tracing::warn!("audit: cannot encode a decision: {e}"),
        };
        line.push(b'\n');
        let mut sink = self.sink.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = self.write_line(&mut sink, &line) {
            tracing::warn!("audit: cannot write a decision: {e}");
        }
    }

    fn write_line(&self, sink: &mut Sink, line: &[u8]) -> std::io::Result<()> {
        match sink {
            Sink::Stdout => std::io::stdout().lock().write_all(line),
            Sink::File { file, size } => {
                if *size > 0 && *size + line.len() as u64 > self.max_bytes {
                    let path = self.path.as_deref().expect("a file sink has a path");
                    rotate(path, self.keep)?;
                    *file = append(path)?;
                    *size = 0;
                }
                file.write_all(line)?;
                *size += line.len() as u64;
                Ok(())
            }
        }
    }
}

fn append(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

/// `path` -> `path.1` -> ... -> `path.keep` (the oldest dropped).
fn rotate(path: &Path, keep: u32) -> std::io::Result<()> {
    let numbered = |n: u32| {
        let mut name = path.as_os_str().to_owned();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    };
    if keep == 0 {
        return std::fs::remove_file(path);
    }
    let _ = std::fs::remove_file(numbered(keep));
    for n in (1..keep).rev() {
        let from = numbered(n);
        if from.exists() {
            std::fs::rename(&from, numbered(n + 1))?;
        }
    }
    std::fs::rename(path, numbered(1))
}

/// RFC 3339 (UTC, seconds) of a time since 1970.
pub fn rfc3339(time: std::time::SystemTime) -> String {
    let secs = time
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let day = crate::explain::civil_date((secs / 86_400) as u32);
    let s = secs % 86_400;
    format!("{day}T{:02}:{:02}:{:02}Z", s / 3600, s % 3600 / 60, s % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(user_id: i64, trigger: &serde_json::Value) -> Decision<'_> {
        Decision {
            time: rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_765_151_000)),
            user_id,
            chat_id: user_id,
            from: "user",
            to: "premium",
            resolver: "tiered-resolver",
            plugin: None,
            fallback: None,
            trigger,
        }
    }

    #[test]
    fn lines_rotate_by_size_and_keep_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(&AuditSettings {
            path: path.clone(),
            max_bytes: 1_000,
            keep: 2,
        })
        .unwrap();
        let trigger = serde_json::json!(["plugin"]);
        for id in 0..40 {
            log.write(&decision(id, &trigger));
        }
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        let (now, one, two) = (
            read(&path),
            read(&dir.path().join("audit.jsonl.1")),
            read(&dir.path().join("audit.jsonl.2")),
        );
        assert!(!dir.path().join("audit.jsonl.3").exists());
        for text in [&now, &one, &two] {
            assert!(!text.is_empty() && text.len() <= 1_000, "{text}");
        }
        // The last line is the last decision, and every line is whole JSON.
        let last: serde_json::Value = serde_json::from_str(now.lines().last().unwrap()).unwrap();
        assert_eq!(last["user_id"], 39);
        assert_eq!(last["time"], "2025-12-07T23:43:20Z");
        for line in now.lines().chain(one.lines()).chain(two.lines()) {
            serde_json::from_str::<serde_json::Value>(line).unwrap();
        }
    }
}
