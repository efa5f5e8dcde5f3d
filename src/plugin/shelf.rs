//! The last good versions of each plugin of one folder, kept beside the compiled cache so a
//! rollback is one step: `<cache>/versions/<folder hash>/` holds each version's bytes by
//! sha256 (`<sha256>.wasm`) and, per plugin name, the versions that served, oldest first
//! (`<name>.json`, at most [`KEEP`]). Versions no history names any more are deleted.
//!
//! A rollback takes the version that served before the current one and writes it back into
//! the folder by rename, so the folder always holds what serves and the bytes pass every
//! check a deployed file passes.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Versions kept per plugin name.
pub const KEEP: usize = 5;

/// One version that served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shelved {
    pub sha256: String,
    pub version: String,
    /// The folder's file it served from.
    pub file: String,
    /// When it started serving (seconds since 1970).
    pub served_at: u64,
}

/// See the module's docs.
#[derive(Debug, Clone)]
pub struct Shelf {
    dir: PathBuf,
}

impl Shelf {
    /// The shelf of plugin folder `folder` (absolute) in the compiled cache `cache_dir`.
    pub fn open(cache_dir: &Path, folder: &Path) -> std::io::Result<Shelf> {
        let hash = xxhash_rust::xxh3::xxh3_64(folder.as_os_str().as_encoded_bytes());
        let dir = cache_dir.join("versions").join(format!("{hash:016x}"));
        std::fs::create_dir_all(&dir)?;
        Ok(Shelf { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Keeps a loaded version's bytes (on the load's own thread: the reload thread only
    /// records which version serves).
    pub fn keep(&self, sha256: &str, bytes: &[u8]) -> std::io::Result<()> {
        let blob = self.blob(sha256);
        if blob.exists() {
            return Ok(());
        }
        write_by_rename(&blob, bytes)
    }

    /// Records that `entry` serves `name` now: the history trimmed to [`KEEP`], and bytes no
    /// history names deleted (unless just kept: a version may be waiting to be admitted).
    pub fn served(&self, name: &str, entry: Shelved) -> std::io::Result<()> {
        let mut history = self.history(name);
        history.retain(|e| e.sha256 != entry.sha256);
        history.push(entry);
        let trimmed = history.len().saturating_sub(KEEP);
        history.drain(..trimmed);
        let text = serde_json::to_vec_pretty(&history).map_err(std::io::Error::other)?;
        write_by_rename(&self.history_file(name), &text)?;
        self.drop_unnamed(std::time::Duration::from_secs(3600));
        Ok(())
    }

    /// The versions that served `name`, oldest first (the last one serves now).
    pub fn history(&self, name: &str) -> Vec<Shelved> {
        std::fs::read(self.history_file(name))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    /// The version that served `name` before `serving` (a sha256), if one is kept.
    pub fn previous(&self, name: &str, serving: &str) -> Option<Shelved> {
        self.history(name)
            .into_iter()
            .rev()
            .find(|e| e.sha256 != serving)
    }

    /// A kept version's bytes, checked against their sha256.
    pub fn bytes(&self, sha256: &str) -> std::io::Result<Vec<u8>> {
        let bytes = std::fs::read(self.blob(sha256))?;
        let got = crate::plugin::hex(&Sha256::digest(&bytes));
        if got != sha256 {
            return Err(std::io::Error::other(format!(
                "the kept copy of {sha256} has changed (its sha256 is {got})"
            )));
        }
        Ok(bytes)
    }

    fn blob(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}.wasm"))
    }

    fn history_file(&self, name: &str) -> PathBuf {
        // Plugin names are checked at load (letters, digits, `-`, `_`), never a path.
        self.dir.join(format!("{name}.json"))
    }

    /// Deletes the kept bytes no history names, older than `grace`.
    fn drop_unnamed(&self, grace: std::time::Duration) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let mut named = std::collections::HashSet::new();
        let mut blobs = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            match path.extension().and_then(|e| e.to_str()) {
                Some("json") => {
                    if let Some(name) = path.file_stem().and_then(|s| s.to_str()) {
                        named.extend(self.history(name).into_iter().map(|e| e.sha256));
                    }
                }
                Some("wasm") => blobs.push(path),
                _ => {}
            }
        }
        for blob in blobs {
            let sha = blob.file_stem().and_then(|s| s.to_str()).unwrap_or("");
            let young = std::fs::metadata(&blob)
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().is_ok_and(|age| age < grace));
            if !named.contains(sha) && !young {
                let _ = std::fs::remove_file(&blob);
            }
        }
    }
}

/// Writes `bytes` to `path` through a hidden file beside it and a rename: a reader (or a
/// folder watcher) sees the old file or the new one, never half of one.
pub fn write_by_rename(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.incoming", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(bytes: &[u8], version: &str) -> Shelved {
        Shelved {
            sha256: crate::plugin::hex(&Sha256::digest(bytes)),
            version: version.into(),
            file: "tiered.wasm".into(),
            served_at: 0,
        }
    }

    #[test]
    fn keeps_the_last_five_and_goes_back_one() {
        let cache = tempfile::tempdir().unwrap();
        let shelf = Shelf::open(cache.path(), Path::new("/srv/bot/plugins")).unwrap();
        let versions: Vec<Vec<u8>> = (0..7).map(|i| vec![i; 10]).collect();
        for (i, bytes) in versions.iter().enumerate() {
            let e = entry(bytes, &format!("{i}"));
            shelf.keep(&e.sha256, bytes).unwrap();
            shelf.served("tiered", e).unwrap();
        }
        let history = shelf.history("tiered");
        let kept: Vec<&str> = history.iter().map(|e| e.version.as_str()).collect();
        assert_eq!(kept, ["2", "3", "4", "5", "6"]);
        let serving = &history[4].sha256;
        let previous = shelf.previous("tiered", serving).unwrap();
        assert_eq!(previous.version, "5");
        assert_eq!(shelf.bytes(&previous.sha256).unwrap(), versions[5]);
        // Without the grace, the two oldest versions' bytes go; the kept ones stay.
        shelf.drop_unnamed(std::time::Duration::ZERO);
        let blobs = std::fs::read_dir(shelf.dir())
            .unwrap()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "wasm"))
            .count();
        assert_eq!(blobs, KEEP);
        // Serving an older version again moves it to the end: a second rollback undoes the first.
        shelf.served("tiered", entry(&versions[5], "5")).unwrap();
        let previous = shelf.previous("tiered", &history[3].sha256).unwrap();
        assert_eq!(previous.version, "6");
    }

    #[test]
    fn a_changed_copy_is_refused() {
        let cache = tempfile::tempdir().unwrap();
        let shelf = Shelf::open(cache.path(), Path::new("/srv/bot/plugins")).unwrap();
        let bytes = b"version one".to_vec();
        let e = entry(&bytes, "1");
        shelf.keep(&e.sha256, &bytes).unwrap();
        shelf.served("tiered", e.clone()).unwrap();
        std::fs::write(shelf.dir().join(format!("{}.wasm", e.sha256)), b"tampered").unwrap();
        let err = shelf.bytes(&e.sha256).unwrap_err();
        assert!(err.to_string().contains("has changed"), "{err}");
    }
}
