//! Caching of resolver and translator outputs, exact by construction.
//!
//! An answer is filed under the resolver's *identity* (a plugin's sha256 and settings) and the
//! whole user context (hashed to a 64-bit key; each hit is checked against both). Plugins get no I/O, a fixed clock and seeded randomness, so a plugin's
//! answer is a pure function of exactly that: a cached answer is the answer the plugin would
//! give. A resolver that cannot promise purity (`identity() == None`, e.g. a closure reading a
//! database) is never cached. If a later version grants plugins a capability (a clock, say),
//! such a plugin must report no identity, or be cached only for the TTL.
//!
//! - Concurrent misses for one key make one call (single flight); errors are never cached.
//! - A hot swap changes the identity, so old answers can never be served again; `invalidate_stale`
//!   (run by the reload hook) also frees them, and only them.
//! - Bounded by capacity and TTL (moka); hits, misses and evictions are counted.

use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use moka::sync::Cache;

use crate::resolve::{ResolveError, Resolver, Translator, UserContext};
use crate::scope::Lang;

/// Bounds of an output cache (`[cache]` in the config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSettings {
    /// Entries at most; 0 disables caching.
    pub capacity: u64,
    /// How long an answer may be served; `None`: until evicted or invalidated.
    pub ttl: Option<Duration>,
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings {
            capacity: 100_000,
            ttl: Some(Duration::from_secs(3600)),
        }
    }
}

/// Counters of one cache, for library users and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Answers served from the cache (including callers that waited on another's miss).
    pub hits: u64,
    /// Calls made to the resolver to fill the cache.
    pub misses: u64,
    /// Calls made past the cache because the resolver is not cacheable, or answered from another
    /// version than the one looked up (a hot swap in between).
    pub bypassed: u64,
    /// Entries removed for capacity or TTL.
    pub evictions: u64,
    pub entries: u64,
}

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    bypassed: AtomicU64,
    evictions: AtomicU64,
}

impl Counters {
    fn snapshot<K, V, S>(&self, cache: &Cache<K, V, S>) -> CacheStats
    where
        K: std::hash::Hash + Eq + Send + Sync + 'static,
        V: Clone + Send + Sync + 'static,
        S: BuildHasher + Clone + Send + Sync + 'static,
    {
        cache.run_pending_tasks();
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            bypassed: self.bypassed.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
            entries: cache.entry_count(),
        }
    }
}

/// A moka cache bounded by `settings` (capacity, TTL) that counts evictions into `counters`;
/// closures may invalidate entries (per user, per stale version).
fn bounded<K, V, S>(settings: &CacheSettings, counters: &Arc<Counters>, hasher: S) -> Cache<K, V, S>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher + Clone + Send + Sync + 'static,
{
    let evictions = counters.clone();
    let mut builder = Cache::builder()
        .max_capacity(settings.capacity)
        .support_invalidation_closures()
        .eviction_listener(move |_key, _value, cause| {
            if cause.was_evicted() {
                evictions.evictions.fetch_add(1, Ordering::Relaxed);
            }
        });
    if let Some(ttl) = settings.ttl {
        builder = builder.time_to_live(ttl);
    }
    builder.build_with_hasher(hasher)
}

/// One cached answer, with what it was computed from (checked on every hit, so a key
/// collision can never serve a wrong answer).
struct Entry {
    identity: Arc<str>,
    ctx: UserContext,
    profile: Arc<str>,
}

/// A [`Resolver`] with an output cache in front.
pub struct CachedResolver {
    inner: Arc<dyn Resolver>,
    cache: Cache<u64, Arc<Entry>>,
    /// Seeded per cache, so nobody can aim for collisions (which would only cost a call anyway:
    /// every hit is re-checked against the full context).
    hasher: foldhash::fast::RandomState,
    counters: Arc<Counters>,
}

/// Why the fill closure produced nothing to cache.
#[derive(Debug, Clone)]
enum NotCached {
    /// The resolver failed: errors are never cached.
    Failed(ResolveError),
    /// Another version answered (a swap between lookup and call): not filed, but returned.
    OtherVersion(String),
}

impl CachedResolver {
    pub fn new(inner: Arc<dyn Resolver>, settings: &CacheSettings) -> CachedResolver {
        let counters = Arc::new(Counters::default());
        CachedResolver {
            inner,
            // The key is already a hash; the map's own hasher barely matters.
            cache: bounded(settings, &counters, std::hash::RandomState::new()),
            hasher: foldhash::fast::RandomState::default(),
            counters,
        }
    }

    /// foldhash, not xxh3: the context hashes as a dozen small writes, where xxh3's streaming
    /// state cost ~175 ns and foldhash a fraction of it (`cargo bench --bench resolve`).
    fn key(&self, identity: &str, ctx: &UserContext) -> u64 {
        self.hasher.hash_one((identity, ctx))
    }

    /// Forgets every answer for this user (e.g. after their flags changed in your database).
    pub fn invalidate_user(&self, user_id: i64) {
        // Cannot fail: the cache is built with invalidation closures enabled.
        let _ = self
            .cache
            .invalidate_entries_if(move |_, e| e.ctx.user_id == user_id);
    }

    pub fn invalidate_all(&self) {
        self.cache.invalidate_all();
    }

    /// Drops the answers of every version but the current one: what a reload replaced.
    pub fn invalidate_stale(&self) {
        let current = self.inner.identity();
        let _ = self
            .cache
            .invalidate_entries_if(move |_, e| Some(&e.identity) != current.as_ref());
    }

    pub fn stats(&self) -> CacheStats {
        self.counters.snapshot(&self.cache)
    }

    pub fn inner(&self) -> &Arc<dyn Resolver> {
        &self.inner
    }

    /// The cached answer, if there is one, without ever calling the resolver: lets async
    /// callers answer hits on the spot and move only misses to a blocking thread.
    pub fn cached(&self, ctx: &UserContext) -> Option<String> {
        let identity = self.inner.identity()?;
        let e = self.cache.get(&self.key(&identity, ctx))?;
        if e.identity != identity || e.ctx != *ctx {
            return None;
        }
        self.counters.hits.fetch_add(1, Ordering::Relaxed);
        crate::metrics::cache_lookup(self.inner.name(), "hit", 1);
        Some(e.profile.to_string())
    }

    fn bypass(&self, ctx: &UserContext) -> Result<String, ResolveError> {
        self.counters.bypassed.fetch_add(1, Ordering::Relaxed);
        crate::metrics::cache_lookup(self.inner.name(), "bypass", 1);
        self.inner.resolve(ctx)
    }
}

impl Resolver for CachedResolver {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn resolve(&self, ctx: &UserContext) -> Result<String, ResolveError> {
        let Some(identity) = self.inner.identity() else {
            return self.bypass(ctx);
        };
        if let Some(profile) = self.cached(ctx) {
            return Ok(profile);
        }
        let key = self.key(&identity, ctx);
        let mut filled_here = false;
        let result = self.cache.try_get_with(key, || {
            filled_here = true;
            self.counters.misses.fetch_add(1, Ordering::Relaxed);
            crate::metrics::cache_lookup(self.inner.name(), "miss", 1);
            match self.inner.resolve_identified(ctx) {
                (Some(answered), Ok(profile)) if answered == identity => Ok(Arc::new(Entry {
                    identity: identity.clone(),
                    ctx: ctx.clone(),
                    profile: Arc::from(profile),
                })),
                (_, Ok(profile)) => Err(NotCached::OtherVersion(profile)),
                (_, Err(e)) => Err(NotCached::Failed(e)),
            }
        });
        match result {
            // The collision guard: an entry for another context under the same key.
            Ok(e) if e.ctx != *ctx || e.identity != identity => self.bypass(ctx),
            Ok(e) => {
                if !filled_here {
                    self.counters.hits.fetch_add(1, Ordering::Relaxed);
                    crate::metrics::cache_lookup(self.inner.name(), "hit", 1);
                }
                Ok(e.profile.to_string())
            }
            Err(not_cached) => match &*not_cached {
                NotCached::Failed(e) => Err(e.clone()),
                NotCached::OtherVersion(profile) => Ok(profile.clone()),
            },
        }
    }

    fn may_block(&self) -> bool {
        self.inner.may_block()
    }

    fn identity(&self) -> Option<Arc<str>> {
        self.inner.identity()
    }
}

/// A translator's answer for one (version, language, key).
#[derive(Clone, PartialEq, Eq, Hash)]
struct TranslationKey {
    identity: Arc<str>,
    language: Lang,
    key: Box<str>,
}

/// A [`Translator`] with an output cache in front, keyed by (identity, language, key): when
/// menus are rebuilt (a config or another translator changed), only what this translator
/// never answered crosses the sandbox, in one batch. Same exactness rules as
/// [`CachedResolver`]: uncacheable translators and failed calls are passed through.
pub struct CachedTranslator {
    inner: Arc<dyn Translator>,
    cache: Cache<TranslationKey, Option<Arc<str>>, foldhash::fast::RandomState>,
    counters: Arc<Counters>,
}

impl CachedTranslator {
    pub fn new(inner: Arc<dyn Translator>, settings: &CacheSettings) -> CachedTranslator {
        let counters = Arc::new(Counters::default());
        CachedTranslator {
            inner,
            cache: bounded(settings, &counters, foldhash::fast::RandomState::default()),
            counters,
        }
    }

    /// Drops the answers of every version but the current one.
    pub fn invalidate_stale(&self) {
        let current = self.inner.identity();
        let _ = self
            .cache
            .invalidate_entries_if(move |k, _| Some(&k.identity) != current.as_ref());
    }

    pub fn invalidate_all(&self) {
        self.cache.invalidate_all();
    }

    /// `misses` counts keys asked of the translator, `hits` keys answered from the cache.
    pub fn stats(&self) -> CacheStats {
        self.counters.snapshot(&self.cache)
    }
}

impl Translator for CachedTranslator {
    fn translate(&self, key: &str, language: Lang) -> Option<String> {
        self.translate_batch(&[key], language).pop().flatten()
    }

    fn translate_batch(&self, keys: &[&str], language: Lang) -> Vec<Option<String>> {
        self.try_translate_batch(keys, language)
            .unwrap_or_else(|| vec![None; keys.len()])
    }

    fn try_translate_batch(&self, keys: &[&str], language: Lang) -> Option<Vec<Option<String>>> {
        let Some(identity) = self.inner.identity() else {
            self.counters
                .bypassed
                .fetch_add(keys.len() as u64, Ordering::Relaxed);
            return self.inner.try_translate_batch(keys, language);
        };
        let cache_key = |key: &str| TranslationKey {
            identity: identity.clone(),
            language,
            key: key.into(),
        };
        let mut out: Vec<Option<String>> = Vec::with_capacity(keys.len());
        let mut missing: Vec<usize> = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            match self.cache.get(&cache_key(key)) {
                Some(text) => out.push(text.map(|t| t.to_string())),
                None => {
                    out.push(None);
                    missing.push(i);
                }
            }
        }
        let hits = (keys.len() - missing.len()) as u64;
        self.counters.hits.fetch_add(hits, Ordering::Relaxed);
        crate::metrics::cache_lookup("translators", "hit", hits);
        if missing.is_empty() {
            return Some(out);
        }
        self.counters
            .misses
            .fetch_add(missing.len() as u64, Ordering::Relaxed);
        crate::metrics::cache_lookup("translators", "miss", missing.len() as u64);
        let asked: Vec<&str> = missing.iter().map(|&i| keys[i]).collect();
        // A failed call is not "no translation": nothing is cached and the caller is told.
        let answers = self.inner.try_translate_batch(&asked, language)?;
        for (i, text) in missing.into_iter().zip(answers) {
            self.cache
                .insert(cache_key(keys[i]), text.as_deref().map(Arc::from));
            out[i] = text;
        }
        Some(out)
    }

    fn identity(&self) -> Option<Arc<str>> {
        self.inner.identity()
    }
}
