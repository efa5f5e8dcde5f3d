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
//! - Bounded by capacity (quick_cache: sharded, S3-FIFO, no background work) and TTL (checked
//!   on each hit); hits, misses and evictions are counted.
//! - A hit costs what it must: the identity's hash is kept (not recomputed from its 64 hex
//!   characters), the context is hashed once, the profile comes back shared (`Arc<str>`).
//! - Bulk paths (`resolve_batch`) read the cache but do not fill it: a pass over every user
//!   would evict what live traffic reads for entries nobody reads again.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::resolve::{ResolveError, Resolver, Translator, UserContext};
use crate::scope::Lang;

type FastHash = foldhash::fast::RandomState;

/// Milliseconds on the coarse monotonic clock (a few milliseconds' resolution, a few
/// nanoseconds to read, against ~25 for the precise one): TTLs are minutes to hours, and a
/// hit must not pay for a precise clock.
fn coarse_now_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    #[cfg(target_os = "linux")]
    let clock = libc::CLOCK_MONOTONIC_COARSE;
    #[cfg(not(target_os = "linux"))]
    let clock = libc::CLOCK_MONOTONIC;
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

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
    evictions: Arc<AtomicU64>,
}

impl Counters {
    fn snapshot(&self, entries: usize) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            bypassed: self.bypassed.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
            entries: entries as u64,
        }
    }
}

/// Counts what the cache evicts for room.
#[derive(Clone, Default)]
struct CountEvictions(Arc<AtomicU64>);

impl<K, V> quick_cache::Lifecycle<K, V> for CountEvictions {
    type RequestState = ();

    fn on_evict(&self, _: &mut Self::RequestState, _: K, _: V) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// A bounded cache of `capacity` entries (at least one) that counts evictions.
type Bounded<K, V> =
    quick_cache::sync::Cache<K, V, quick_cache::UnitWeighter, FastHash, CountEvictions>;

fn bounded<K, V>(settings: &CacheSettings, counters: &Counters) -> Bounded<K, V>
where
    K: Eq + std::hash::Hash,
    V: Clone,
{
    let capacity = settings.capacity.max(1) as usize;
    quick_cache::sync::Cache::with(
        capacity,
        capacity as u64,
        quick_cache::UnitWeighter,
        FastHash::default(),
        CountEvictions(counters.evictions.clone()),
    )
}

/// One cached answer, with what it was computed from (checked on every hit, so a key
/// collision can never serve a wrong answer), and when it stops being served.
struct Entry {
    identity: Arc<str>,
    ctx: UserContext,
    profile: Arc<str>,
    /// On the coarse clock ([`coarse_now_ms`]).
    expires_ms: Option<u64>,
}

impl Entry {
    fn expired(&self) -> bool {
        self.expires_ms.is_some_and(|at| at <= coarse_now_ms())
    }
}

/// A [`Resolver`] with an output cache in front.
pub struct CachedResolver {
    inner: Arc<dyn Resolver>,
    cache: Bounded<u64, Arc<Entry>>,
    ttl: Option<Duration>,
    /// Seeded per cache, so nobody can aim for collisions (which would only cost a call anyway:
    /// every hit is re-checked against the full context).
    hasher: FastHash,
    counters: Counters,
    lookups: crate::metrics::Series<crate::metrics::CacheLookups>,
}

impl CachedResolver {
    pub fn new(inner: Arc<dyn Resolver>, settings: &CacheSettings) -> CachedResolver {
        let counters = Counters::default();
        CachedResolver {
            lookups: crate::metrics::cache_lookups(inner.name()),
            inner,
            cache: bounded(settings, &counters),
            ttl: settings.ttl,
            hasher: FastHash::default(),
            counters,
        }
    }

    /// foldhash over the identity and the context: the context hashes as a dozen small
    /// writes, where xxh3's streaming state cost ~175 ns (`cargo bench --bench resolve`). Of
    /// the identity only its length and first 16 bytes are hashed (a plugin's is a sha256 in
    /// hex: 64 bits of it tell versions apart); identities sharing those would share keys, and
    /// the check of the whole identity on every hit turns that into a miss, never a wrong
    /// answer.
    fn key(&self, identity: &str, ctx: &UserContext) -> u64 {
        let head = &identity.as_bytes()[..identity.len().min(16)];
        std::hash::BuildHasher::hash_one(&self.hasher, (identity.len(), head, ctx))
    }

    /// Forgets every answer for this user (e.g. after their flags changed in your database).
    pub fn invalidate_user(&self, user_id: i64) {
        self.cache.retain(|_, e| e.ctx.user_id != user_id);
    }

    pub fn invalidate_all(&self) {
        self.cache.clear();
    }

    /// Drops the answers of every version but the current one: what a reload replaced.
    pub fn invalidate_stale(&self) {
        let current = self.inner.identity();
        self.cache
            .retain(|_, e| Some(&e.identity) == current.as_ref());
    }

    pub fn stats(&self) -> CacheStats {
        self.counters.snapshot(self.cache.len())
    }

    pub fn inner(&self) -> &Arc<dyn Resolver> {
        &self.inner
    }

    /// The cached answer, if there is one, without ever calling the resolver: lets async
    /// callers answer hits on the spot and move only misses to a blocking thread. The profile
    /// comes back shared: a hit allocates nothing.
    pub fn cached(&self, ctx: &UserContext) -> Option<Arc<str>> {
        let identity = self.inner.identity()?;
        self.cached_as(&identity, ctx)
    }

    /// [`cached`](Self::cached) for a page of users: the version serving is looked up once,
    /// not once per user (a reconciliation asks for every known user).
    pub fn cached_many(&self, ctxs: &[UserContext]) -> Vec<Option<Arc<str>>> {
        match self.inner.identity() {
            Some(identity) => ctxs
                .iter()
                .map(|ctx| self.cached_as(&identity, ctx))
                .collect(),
            None => vec![None; ctxs.len()],
        }
    }

    fn cached_as(&self, identity: &Arc<str>, ctx: &UserContext) -> Option<Arc<str>> {
        let e = self.cache.get(&self.key(identity, ctx))?;
        if !Arc::ptr_eq(&e.identity, identity) && e.identity != *identity {
            return None;
        }
        if e.ctx != *ctx || e.expired() {
            return None;
        }
        self.counters.hits.fetch_add(1, Ordering::Relaxed);
        self.lookups.with(|l| l.hit.increment(1));
        Some(e.profile.clone())
    }

    fn bypass(&self, ctx: &UserContext) -> Result<String, ResolveError> {
        self.counters.bypassed.fetch_add(1, Ordering::Relaxed);
        self.lookups.with(|l| l.bypass.increment(1));
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
            return Ok(profile.to_string());
        }
        let key = self.key(&identity, ctx);
        // Concurrent misses for one key: one call, the others wait for its answer.
        use quick_cache::sync::GuardResult;
        let guard = match self.cache.get_value_or_guard(&key, None) {
            GuardResult::Value(e) if e.ctx == *ctx && e.identity == identity && !e.expired() => {
                self.counters.hits.fetch_add(1, Ordering::Relaxed);
                self.lookups.with(|l| l.hit.increment(1));
                return Ok(e.profile.to_string());
            }
            GuardResult::Value(e) if e.ctx == *ctx && e.identity == identity => {
                // Expired: dropped, and filled again below.
                self.cache.remove(&key);
                match self.cache.get_value_or_guard(&key, None) {
                    GuardResult::Guard(guard) => guard,
                    _ => return self.bypass(ctx),
                }
            }
            // Another context under this key (a collision): not ours to fill.
            GuardResult::Value(_) | GuardResult::Timeout => return self.bypass(ctx),
            GuardResult::Guard(guard) => guard,
        };
        self.counters.misses.fetch_add(1, Ordering::Relaxed);
        self.lookups.with(|l| l.miss.increment(1));
        match self.inner.resolve_identified(ctx) {
            (Some(answered), Ok(profile)) if answered == identity => {
                let _ = guard.insert(Arc::new(Entry {
                    identity,
                    ctx: ctx.clone(),
                    profile: Arc::from(profile.as_str()),
                    expires_ms: self.ttl.map(|ttl| coarse_now_ms() + ttl.as_millis() as u64),
                }));
                Ok(profile)
            }
            // Another version answered (a swap between lookup and call): returned, not filed.
            // Errors are never cached. Dropping the guard lets a waiter try itself.
            (_, answer) => answer,
        }
    }

    /// Bulk: cached answers are used, but what is missing is asked in one batch and not
    /// filed. A page of a bulk pass visits each user once; filling the cache with those
    /// answers would evict the ones live traffic reads, for entries nobody reads again.
    fn resolve_batch(&self, ctxs: &[&UserContext]) -> Vec<Result<String, ResolveError>> {
        let mut answers: Vec<Option<Result<String, ResolveError>>> = ctxs
            .iter()
            .map(|ctx| self.cached(ctx).map(|p| Ok(p.to_string())))
            .collect();
        let missing: Vec<&UserContext> = ctxs
            .iter()
            .zip(&answers)
            .filter(|(_, a)| a.is_none())
            .map(|(ctx, _)| *ctx)
            .collect();
        if !missing.is_empty() {
            self.counters
                .bypassed
                .fetch_add(missing.len() as u64, Ordering::Relaxed);
            self.lookups
                .with(|l| l.bypass.increment(missing.len() as u64));
            let mut fresh = self.inner.resolve_batch(&missing).into_iter();
            for answer in answers.iter_mut().filter(|a| a.is_none()) {
                *answer = fresh.next();
            }
        }
        answers
            .into_iter()
            .map(|a| a.unwrap_or_else(|| Err(ResolveError::Failed("no answer".into()))))
            .collect()
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
    cache: Bounded<TranslationKey, Option<Arc<str>>>,
    counters: Counters,
}

impl CachedTranslator {
    pub fn new(inner: Arc<dyn Translator>, settings: &CacheSettings) -> CachedTranslator {
        let counters = Counters::default();
        CachedTranslator {
            inner,
            cache: bounded(settings, &counters),
            counters,
        }
    }

    /// Drops the answers of every version but the current one.
    pub fn invalidate_stale(&self) {
        let current = self.inner.identity();
        self.cache
            .retain(|k, _| Some(&k.identity) == current.as_ref());
    }

    pub fn invalidate_all(&self) {
        self.cache.clear();
    }

    /// `misses` counts keys asked of the translator, `hits` keys answered from the cache.
    pub fn stats(&self) -> CacheStats {
        self.counters.snapshot(self.cache.len())
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
