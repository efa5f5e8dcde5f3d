//! The compiled-code cache: a component compiled once is stored as native code, keyed by the
//! sha256 of its bytes and wasmtime's compatibility hash, so a restart loads it in about a
//! millisecond instead of compiling again.
//!
//! Deserialising native code is `unsafe` (wasmtime trusts it), so the directory is created
//! private (mode 0700) and entries are written atomically (temporary file, then rename). An
//! entry that fails to deserialise counts as a miss and is rebuilt.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;
use xxhash_rust::xxh3::Xxh3;

/// Where compiled plugins are kept.
#[derive(Debug, Clone)]
pub struct CompiledCache {
    dir: PathBuf,
}

/// Whether a load was served from the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    Hit,
    Miss,
    /// No cache configured.
    Off,
}

impl CompiledCache {
    /// Opens (creating, private) a cache directory. A relative `dir` is taken from the current
    /// directory now, once.
    pub fn open(dir: &Path) -> std::io::Result<CompiledCache> {
        let dir = &std::path::absolute(dir)?;
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
            builder.mode(0o700);
            builder.create(dir)?;
            // An existing directory keeps its mode: make sure it is private too.
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
        #[cfg(not(unix))]
        builder.create(dir)?;
        Ok(CompiledCache {
            dir: dir.to_path_buf(),
        })
    }

    /// The default location: `$XDG_CACHE_HOME/cmdscope/compiled`, else `~/.cache/cmdscope/compiled`.
    pub fn default_dir() -> Option<PathBuf> {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
        Some(base.join("cmdscope").join("compiled"))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn entry(&self, engine: &Engine, sha256: &str) -> PathBuf {
        let mut h = Xxh3::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        self.dir.join(format!("{sha256}-{:016x}.cwasm", h.finish()))
    }

    /// The compiled component for `sha256`, when a valid entry exists. An entry that fails to
    /// deserialise is a miss (and is rebuilt by the next `put`).
    pub(crate) fn get(&self, engine: &Engine, sha256: &str) -> Option<Component> {
        let path = self.entry(engine, sha256);
        if !path.exists() {
            return None;
        }
        // SAFETY: the entry was written by `Component::serialize` (or a compile worker's
        // `precompile_component`) of this engine configuration (the file name carries its
        // compatibility hash) into a directory only this user can write; wasmtime also checks
        // the header and version.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => Some(component),
            Err(e) => {
                tracing::warn!(entry = %path.display(), "compiled cache entry unusable, rebuilding: {e}");
                None
            }
        }
    }

    /// Stores a compiled component (`code`: its serialised form when already at hand). A
    /// cache that cannot be written is logged and bypassed, never fatal.
    pub(crate) fn put(
        &self,
        engine: &Engine,
        sha256: &str,
        component: &Component,
        code: Option<Vec<u8>>,
    ) {
        let path = self.entry(engine, sha256);
        let written = match code {
            Some(code) => self.store(&path, &code),
            None => component
                .serialize()
                .map_err(anyhow::Error::from)
                .and_then(|code| self.store(&path, &code)),
        };
        if let Err(e) = written {
            tracing::warn!(dir = %self.dir.display(), "cannot write the compiled cache: {e}");
        }
    }

    fn store(&self, path: &Path, code: &[u8]) -> anyhow::Result<()> {
        // Unique per writer: two loads of the same bytes may race to store one entry.
        let tmp = path.with_extension(format!("tmp{}-{:x}", std::process::id(), fastrand::u64(..)));
        std::fs::write(&tmp, code)?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }
}
