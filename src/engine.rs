//! The engine: config, menus, plan and resolver together, everything that needs no Bot API.
//! `CommandManager` adds delivery and applied state on top; the CLI's `plan` and `resolve`
//! use the engine alone.

use std::sync::Arc;

use crate::config::Config;
use crate::deliver::BotApi;
use crate::manager::CommandManager;
use crate::menu::{Menu, MenuNote, MenuTable};
use crate::output_cache::{CacheStats, CachedResolver};
use crate::plan::Plan;
use crate::resolve::{
    NoTranslator, ResolveError, Resolver, StaticResolver, Translator, UserContext,
};

/// Which profile a user got, from where, and why not the resolver's answer if it failed.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolution {
    pub profile: String,
    /// The resolver's name.
    pub source: String,
    /// Set when the resolver failed and `default_profile` was used instead.
    pub error: Option<ResolveError>,
}

/// Builds an [`Engine`] (and from it a [`CommandManager`]).
pub struct EngineBuilder {
    config: Config,
    resolver: Arc<dyn Resolver>,
    translator: Arc<dyn Translator>,
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

    /// Builds every menu once (logging missing translations) and the plan.
    pub fn engine(self) -> Engine {
        let menus = MenuTable::build(&self.config, self.translator.as_ref());
        for warning in menus.warnings() {
            tracing::warn!(config = %self.config.source, "{warning}");
        }
        let plan = Plan::build(&self.config, &menus);
        // Cache the resolver's answers when it can promise they are pure (plugins can).
        let cache =
            (self.config.cache.capacity > 0 && self.resolver.identity().is_some()).then(|| {
                Arc::new(CachedResolver::new(
                    self.resolver.clone(),
                    &self.config.cache,
                ))
            });
        let resolver = match &cache {
            Some(c) => c.clone() as Arc<dyn Resolver>,
            None => self.resolver,
        };
        Engine {
            config: self.config,
            menus,
            plan,
            resolver,
            cache,
        }
    }

    /// The engine with a Bot API to deliver through.
    pub fn build(self, api: Arc<dyn BotApi>) -> CommandManager {
        CommandManager::new(Arc::new(self.engine()), api)
    }
}

/// Config, every profile's menu in every language, the plan of configured lists, and the
/// resolver. Immutable once built.
pub struct Engine {
    config: Config,
    menus: MenuTable,
    plan: Plan,
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
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
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
    pub fn notes(&self) -> &[MenuNote] {
        self.menus.notes()
    }

    /// The user's profile. A resolver error or unknown profile falls back to `default_profile`
    /// and is reported in the resolution (and logged).
    pub fn resolve(&self, ctx: &UserContext) -> Resolution {
        self.resolution(ctx, self.resolver.resolve(ctx))
    }

    /// `resolve`, off the async worker threads when the resolver may block (a sandboxed
    /// plugin may run up to its deadline). Cache hits are answered on the spot.
    pub async fn resolve_async(&self, ctx: &UserContext) -> Resolution {
        if let Some(profile) = self.cache.as_ref().and_then(|c| c.cached(ctx)) {
            return self.resolution(ctx, Ok(profile));
        }
        if !self.resolver.may_block() {
            return self.resolve(ctx);
        }
        let resolver = self.resolver.clone();
        let owned = ctx.clone();
        let result = tokio::task::spawn_blocking(move || resolver.resolve(&owned))
            .await
            .unwrap_or_else(|e| Err(ResolveError::Failed(format!("resolver task failed: {e}"))));
        self.resolution(ctx, result)
    }

    fn resolution(&self, ctx: &UserContext, result: Result<String, ResolveError>) -> Resolution {
        let source = self.resolver.name().to_string();
        let error = match result {
            Ok(profile) if self.config.profiles.contains_key(&profile) => {
                return Resolution {
                    profile,
                    source,
                    error: None,
                };
            }
            Ok(unknown) => ResolveError::UnknownProfile(unknown),
            Err(e) => e,
        };
        tracing::warn!(resolver = %source, user_id = ctx.user_id, "{error}; using default profile `{}`", self.config.default_profile);
        Resolution {
            profile: self.config.default_profile.clone(),
            source,
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
        let lang = self.config.menu_language(ctx.lang());
        self.menus
            .get(profile, lang)
            .expect("every profile is built in every configured language")
            .clone()
    }
}
