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
    /// Opens (creating, private) a cache directory.
    pub fn open(dir: &Path) -> std::io::Result<CompiledCache> {
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

    /// The component for `bytes`: from the cache when a valid entry exists, else compiled and
    /// stored. A cache that cannot be written is logged and bypassed, never fatal.
    pub(crate) fn load(
        &self,
        engine: &Engine,
        bytes: &[u8],
        sha256: &str,
    ) -> wasmtime::Result<(Component, CacheOutcome)> {
        let path = self.entry(engine, sha256);
        if path.exists() {
            // SAFETY: the entry was written by `Component::serialize` of this engine
            // configuration (the file name carries its compatibility hash) into a directory
            // only this user can write; wasmtime also checks the header and version.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => return Ok((component, CacheOutcome::Hit)),
                Err(e) => {
                    tracing::warn!(entry = %path.display(), "compiled cache entry unusable, rebuilding: {e}")
                }
            }
        }
        let component = Component::new(engine, bytes)?;
        if let Err(e) = self.store(&path, &component) {
            tracing::warn!(dir = %self.dir.display(), "cannot write the compiled cache: {e}");
        }
        Ok((component, CacheOutcome::Miss))
    }

    fn store(&self, path: &Path, component: &Component) -> anyhow::Result<()> {
        let code = component.serialize()?;
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, code)?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }
}
