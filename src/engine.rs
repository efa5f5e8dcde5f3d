//! The engine: config, menus, plan and resolver together, everything that needs no Bot API.
//! It knows nothing of delivery or plugins: `manager` adds delivery and applied state on top,
//! the host wires plugin swaps to [`Engine::on_plugin_swap`]; the CLI's `plan` and `resolve`
//! use the engine alone.

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::config::Config;
use crate::menu::{Menu, MenuNote, MenuTable};
use crate::output_cache::{CacheStats, CachedResolver, CachedTranslator};
use crate::plan::Plan;
use crate::resolve::{
    Name, NoTranslator, ResolveError, Resolver, StaticResolver, Translator, UserContext,
};

/// Users resolved one by one through the output cache (and filed in it) rather than in one
/// unfiled batch: live traffic, not a bulk page.
const FILED: usize = 8;

/// Which profile a user got, from where, and why not the resolver's answer if it failed.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolution {
    /// One of the config's profiles, shared with every other resolution of it.
    pub profile: Name,
    /// The resolver's name.
    pub source: Name,
    /// Set when the resolver failed and `default_profile` was used instead.
    pub error: Option<ResolveError>,
}

/// Builds an [`Engine`] (`manager` adds `build(api)`, a `CommandManager` over it).
pub struct EngineBuilder {
    config: Config,
    resolver: Arc<dyn Resolver>,
    translator: Arc<dyn Translator>,
    translation_caches: Vec<Arc<CachedTranslator>>,
}

impl EngineBuilder {
    pub fn resolver(mut self, resolver: Arc<dyn Resolver>) -> Self {
        self.resolver = resolver;
        self
    }

    pub fn translator(mut self, translator: Arc<dyn Translator>) -> Self {
        self.translator = translator;
        self
    }

    /// The output caches inside the translator (from `sources::assemble`), so a reload can
    /// drop what the replaced version answered.
    pub fn translation_caches(mut self, caches: Vec<Arc<CachedTranslator>>) -> Self {
        self.translation_caches = caches;
        self
    }

    /// Builds every menu once (logging missing translations) and the plan.
    pub fn engine(self) -> Engine {
        let built = Built::new(&self.config, self.translator.as_ref());
        // Cache the resolver's answers when it can promise they are pure (plugins can) and a
        // call costs more than a lookup: a native rule (77 ns) beats a cache hit (~400 ns),
        // and an empty cache still costs memory.
        let worth_caching = self.resolver.identity().is_some() && self.resolver.may_block();
        let cache = (self.config.cache.capacity > 0 && worth_caching).then(|| {
            Arc::new(CachedResolver::new(
                self.resolver.clone(),
                &self.config.cache,
            ))
        });
        let resolver = match &cache {
            Some(c) => c.clone() as Arc<dyn Resolver>,
            None => self.resolver,
        };
        let profiles = self
            .config
            .profiles
            .keys()
            .map(|p| Name::from(p.as_str()))
            .collect();
        let source = Name::from(resolver.name());
        Engine {
            profiles,
            resolutions: crate::metrics::resolutions(&source),
            source,
            config: self.config,
            built: ArcSwap::from_pointee(built),
            translator: self.translator,
            translation_caches: self.translation_caches,
            resolver,
            cache,
        }
    }
}

/// Every profile's menu in every language and the plan built from them: replaced as one when a
/// translator changes, so a reader never sees menus of one build with the plan of another.
pub(crate) struct Built {
    pub(crate) menus: MenuTable,
    pub(crate) plan: Arc<Plan>,
    /// What every user's menu is made of, as one hash: the menus, the plan, and the config's
    /// choices of language and default profile.
    content: u64,
}

impl Built {
    fn new(config: &Config, translator: &dyn Translator) -> Built {
        let started = std::time::Instant::now();
        let menus = MenuTable::build(config, translator);
        for warning in menus.warnings() {
            tracing::warn!(config = %config.source, "{warning}");
        }
        let plan = Arc::new(Plan::build(config, &menus));
        let content = content_hash(config, &menus, &plan);
        crate::metrics::menu_build(started.elapsed());
        Built {
            menus,
            plan,
            content,
        }
    }

    /// A profile's menu in the user's language (or the fallback language).
    pub(crate) fn menu_of(&self, config: &Config, profile: &str, ctx: &UserContext) -> Menu {
        let lang = config.menu_language(ctx.lang());
        self.menus
            .get(profile, lang)
            .expect("every profile is built in every configured language")
            .clone()
    }
}

/// The hash behind [`Engine::generation`]: everything but the resolver.
fn content_hash(config: &Config, menus: &MenuTable, plan: &Plan) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    let mut put = |bytes: &[u8]| {
        h.update(&(bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    put(config.default_profile.as_bytes());
    put(config.fallback_language.as_str().as_bytes());
    for lang in &config.languages {
        put(lang.as_str().as_bytes());
    }
    for profile in config.profiles.keys() {
        put(profile.as_bytes());
        for &lang in &config.languages {
            let menu = menus.get(profile, lang).expect("built in every language");
            put(&crate::menu::Fingerprint::of(menu).0.to_le_bytes());
        }
    }
    for list in &plan.lists {
        put(list.key.storage_key().as_bytes());
        put(&crate::menu::Fingerprint::of(&list.commands).0.to_le_bytes());
    }
    put(plan.menu_button.name().as_bytes());
    h.digest()
}

/// Which rules decided a menu: equal generations give every user the same menu. A known user
/// records the generation they were brought to; after a change, those behind are reconciled.
pub type Generation = u64;

/// Config, every profile's menu in every language, the plan of configured lists, and the
/// resolver. The config and resolver are fixed; menus and plan are rebuilt when a translator
/// is hot-swapped ([`Engine::rebuild_menus`], [`Engine::on_plugin_swap`]).
pub struct Engine {
    /// The config's profile names, each allocated once: a resolution is a lookup.
    profiles: std::collections::HashSet<Name, foldhash::fast::RandomState>,
    /// The resolver's name.
    source: Name,
    resolutions: crate::metrics::Series<crate::metrics::Resolutions>,
    config: Config,
    built: ArcSwap<Built>,
    translator: Arc<dyn Translator>,
    translation_caches: Vec<Arc<CachedTranslator>>,
    /// The resolver, behind the output cache when there is one.
    resolver: Arc<dyn Resolver>,
    cache: Option<Arc<CachedResolver>>,
}

impl Engine {
    /// Starts a builder. Without a resolver everyone gets `default_profile`; without a
    /// translator descriptions come from the config alone.
    pub fn builder(config: Config) -> EngineBuilder {
        let default = config.default_profile.clone();
        EngineBuilder {
            config,
            resolver: Arc::new(StaticResolver(default)),
            translator: Arc::new(NoTranslator),
            translation_caches: Vec::new(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The configured lists, as of the latest menu build.
    pub fn plan(&self) -> Arc<Plan> {
        self.built.load().plan.clone()
    }

    /// Menus and plan of one build, read together.
    pub(crate) fn built(&self) -> Arc<Built> {
        self.built.load_full()
    }

    /// Rebuilds every menu and the plan with the translators as they are now (after a
    /// translator plugin was swapped), dropping what replaced translator versions had
    /// answered; unchanged translators answer from their output cache.
    pub fn rebuild_menus(&self) {
        for cache in &self.translation_caches {
            cache.invalidate_stale();
        }
        self.built
            .store(Arc::new(Built::new(&self.config, self.translator.as_ref())));
    }

    /// Plugin `name` was swapped for a new version: the replaced resolver's cached answers are
    /// dropped, and a translator's swap rebuilds the menus. Run it before the swap is announced.
    pub fn on_plugin_swap(&self, name: &str) {
        if let Some(cache) = &self.cache {
            cache.invalidate_stale();
        }
        if self.config.translators.iter().any(|t| t == name) {
            self.rebuild_menus();
        }
    }

    /// The rules deciding menus now: the menus and plan of the latest build, and the
    /// resolver's identity (a plugin's sha256 and settings; a native resolver's name).
    pub fn generation(&self) -> Generation {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        h.update(&self.built.load().content.to_le_bytes());
        match self.resolver.identity() {
            Some(identity) => h.update(identity.as_bytes()),
            None => {
                h.update(b"native:");
                h.update(self.resolver.name().as_bytes());
            }
        }
        h.digest()
    }

    /// The translator output caches' counters, one per cached plugin translator.
    pub fn translation_cache_stats(&self) -> Vec<CacheStats> {
        self.translation_caches.iter().map(|c| c.stats()).collect()
    }

    /// The resolver output cache, when the resolver is cacheable and `[cache] capacity > 0`.
    pub fn output_cache(&self) -> Option<&Arc<CachedResolver>> {
        self.cache.as_ref()
    }

    /// Forgets cached answers for one user (their state changed outside the context).
    pub fn invalidate_user(&self, user_id: i64) {
        if let Some(c) = &self.cache {
            c.invalidate_user(user_id);
        }
    }

    /// Forgets every cached answer.
    pub fn invalidate_all(&self) {
        if let Some(c) = &self.cache {
            c.invalidate_all();
        }
    }

    pub fn cache_stats(&self) -> Option<CacheStats> {
        self.cache.as_ref().map(|c| c.stats())
    }

    /// Missing or shortened translations met while building the menus.
    pub fn notes(&self) -> Vec<MenuNote> {
        self.built.load().menus.notes().to_vec()
    }

    /// The user's profile. A resolver error or unknown profile falls back to `default_profile`
    /// and is reported in the resolution (and logged).
    pub fn resolve(&self, ctx: &UserContext) -> Resolution {
        // A hit is counted, not timed: the latency histogram is of resolver calls.
        if let Some(profile) = self.cache.as_ref().and_then(|c| c.cached(ctx)) {
            return self.resolution(ctx, Ok(&profile), None);
        }
        let started = crate::metrics::start();
        let answer = self.resolver.resolve(ctx);
        self.resolution(ctx, answer.as_deref().map_err(Clone::clone), started)
    }

    /// `resolve`, off the async worker threads when the resolver may block (a sandboxed
    /// plugin may run up to its deadline). Cache hits are answered on the spot.
    pub async fn resolve_async(&self, ctx: &UserContext) -> Resolution {
        if let Some(profile) = self.cache.as_ref().and_then(|c| c.cached(ctx)) {
            return self.resolution(ctx, Ok(&profile), None);
        }
        let started = crate::metrics::start();
        if !self.resolver.may_block() {
            return self.resolve(ctx);
        }
        let resolver = self.resolver.clone();
        let owned = ctx.clone();
        let result = tokio::task::spawn_blocking(move || resolver.resolve(&owned))
            .await
            .unwrap_or_else(|e| Err(ResolveError::Failed(format!("resolver task failed: {e}"))));
        self.resolution(ctx, result.as_deref().map_err(Clone::clone), started)
    }

    /// `resolve_async` for many users: cached answers on the spot (no hand-off at all when
    /// every user is a hit, the common case of a bot posting its users' messages), the rest
    /// in one trip off the async threads. Resolutions come back in input order.
    pub async fn resolve_many(&self, ctxs: &[UserContext]) -> Vec<Resolution> {
        let mut answers: Vec<Option<Result<String, ResolveError>>> = match &self.cache {
            Some(cache) => cache
                .cached_many(ctxs)
                .into_iter()
                .map(|hit| hit.map(|p| Ok(p.to_string())))
                .collect(),
            None => vec![None; ctxs.len()],
        };
        let missing: Vec<&UserContext> = ctxs
            .iter()
            .zip(&answers)
            .filter(|(_, a)| a.is_none())
            .map(|(ctx, _)| ctx)
            .collect();
        let started = crate::metrics::start();
        if !missing.is_empty() {
            let mut fresh = self.resolve_missing(&missing).await.into_iter();
            for answer in answers.iter_mut().filter(|a| a.is_none()) {
                *answer = fresh.next();
            }
        }
        // Each resolution is timed at its share of the calls.
        let each = started.filter(|_| !missing.is_empty()).map(|started| {
            let share = started.elapsed() / (missing.len() as u32);
            std::time::Instant::now()
                .checked_sub(share)
                .unwrap_or(started)
        });
        ctxs.iter()
            .zip(answers)
            .map(|(ctx, answer)| {
                let answer = answer.unwrap_or_else(|| {
                    Err(ResolveError::Failed(
                        "the resolver gave too few answers".into(),
                    ))
                });
                self.resolution(ctx, answer.as_deref().map_err(Clone::clone), each)
            })
            .collect()
    }

    /// The resolver's answers for users the cache does not hold. A few users (live traffic)
    /// are asked one by one through the cache, which files their answers, so the next message
    /// of each is a hit; a bulk page is one `resolve_batch`, not filed (it would evict what
    /// live traffic reads, for entries nobody reads again). A resolver that may block (a
    /// plugin runs up to its deadline) is called with tokio moving this worker's other tasks
    /// to another thread (`block_in_place`), or on the blocking pool: never on an async
    /// worker that other tasks wait for.
    async fn resolve_missing(&self, missing: &[&UserContext]) -> Vec<Result<String, ResolveError>> {
        let call = |users: &[&UserContext]| {
            if users.len() <= FILED {
                users.iter().map(|ctx| self.resolver.resolve(ctx)).collect()
            } else {
                self.resolver.resolve_batch(users)
            }
        };
        if !self.resolver.may_block() {
            return call(missing);
        }
        let multi_thread = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        if multi_thread {
            // No copy of the page, no hand-off per call; the deadline bounds the time it takes.
            return tokio::task::block_in_place(|| call(missing));
        }
        let resolver = self.resolver.clone();
        let owned: Vec<UserContext> = missing.iter().map(|c| (*c).clone()).collect();
        tokio::task::spawn_blocking(move || {
            let refs: Vec<&UserContext> = owned.iter().collect();
            if refs.len() <= FILED {
                refs.iter().map(|ctx| resolver.resolve(ctx)).collect()
            } else {
                resolver.resolve_batch(&refs)
            }
        })
        .await
        .unwrap_or_else(|e| {
            let why = ResolveError::Failed(format!("resolver task failed: {e}"));
            vec![Err(why); missing.len()]
        })
    }

    /// The answer checked against the config: a profile it defines (the shared name), else
    /// `default_profile` with the reason.
    fn resolution(
        &self,
        ctx: &UserContext,
        result: Result<&str, ResolveError>,
        started: Option<std::time::Instant>,
    ) -> Resolution {
        // One check of the answer against the config; the metric's outcome follows from it.
        let checked = match result {
            Ok(profile) => match self.profiles.get(profile) {
                Some(name) => Ok(name.clone()),
                None => Err(ResolveError::UnknownProfile(profile.to_string())),
            },
            Err(e) => Err(e),
        };
        let outcome = match &checked {
            Ok(_) => "ok",
            Err(ResolveError::UnknownProfile(_)) => "unknown_profile",
            Err(_) => "error",
        };
        self.resolutions.with(|r| r.record(outcome, started));
        let error = match checked {
            Ok(profile) => {
                return Resolution {
                    profile,
                    source: self.source.clone(),
                    error: None,
                };
            }
            Err(e) => e,
        };
        tracing::warn!(resolver = %self.source, user_id = ctx.user_id, "{error}; using default profile `{}`", self.config.default_profile);
        Resolution {
            profile: self
                .profiles
                .get(self.config.default_profile.as_str())
                .expect("validated: the default profile is defined")
                .clone(),
            source: self.source.clone(),
            error: Some(error),
        }
    }

    /// The menu this user should see, in their language (or the fallback language).
    pub fn menu_for(&self, ctx: &UserContext) -> (Resolution, Menu) {
        let resolution = self.resolve(ctx);
        let menu = self.menu_of(&resolution.profile, ctx);
        (resolution, menu)
    }

    /// A profile's menu in the user's language (or the fallback language).
    pub fn menu_of(&self, profile: &str, ctx: &UserContext) -> Menu {
        self.built.load().menu_of(&self.config, profile, ctx)
    }

    /// The command of this user's own menu (their profile, their language) they meant by
    /// `text`, or the one they typed (see [`crate::suggest`]). A text that names no command
    /// costs no resolver call.
    pub async fn suggest(
        &self,
        ctx: &UserContext,
        text: &str,
    ) -> Option<crate::suggest::Suggestion> {
        crate::suggest::command_name(text)?;
        let resolution = self.resolve_async(ctx).await;
        crate::suggest::suggest(&self.menu_of(&resolution.profile, ctx), text)
    }
}
