//! [`HostBuilder`]: a host from a config file and a plugin folder (or the fleet's releases),
//! its store opened, its plugins loaded and watched, before any Bot API call.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Mutex, OnceLock};

use arc_swap::ArcSwap;
use tokio::sync::{broadcast, mpsc, watch};

use super::{Host, HostEvent, Inner, Recent, ReconcileOptions, config_watch, fleet};
#[cfg(feature = "redis")]
use super::{ReleaseFollow, follow};
use crate::config::{Config, StateBackend};
use crate::deliver::DeliveryOptions;
use crate::plugin::{CompiledCache, Compiler, LivePlugins, PluginHost, ReloadEvent, WatchOptions};
use crate::resolve::Resolver;
use crate::state::StateStore;

/// Builds a [`Host`] from a config file (and a plugin folder).
pub struct HostBuilder {
    config_path: PathBuf,
    /// Created with the builder, so events of the initial loads reach early subscribers.
    events: broadcast::Sender<HostEvent>,
    recent: Arc<Mutex<Recent>>,
    plugins: Option<PathBuf>,
    compiled_cache: Option<PathBuf>,
    compiler: Compiler,
    store: Option<Arc<dyn StateStore>>,
    state: Option<StateBackend>,
    redis_prefix: Option<String>,
    delivery: DeliveryOptions,
    resolver: Option<Arc<dyn Resolver>>,
    watch: WatchOptions,
    watch_config: bool,
    reconcile: ReconcileOptions,
    #[cfg(feature = "redis")]
    releases: Option<ReleaseFollow>,
}

impl HostBuilder {
    pub(super) fn new(config: &Path) -> HostBuilder {
        HostBuilder {
            config_path: config.to_path_buf(),
            events: broadcast::channel(1024).0,
            recent: Arc::default(),
            plugins: None,
            compiled_cache: None,
            compiler: Compiler::default(),
            store: None,
            state: None,
            redis_prefix: None,
            delivery: DeliveryOptions::default(),
            resolver: None,
            watch: WatchOptions::default(),
            watch_config: true,
            reconcile: ReconcileOptions::default(),
            #[cfg(feature = "redis")]
            releases: None,
        }
    }

    /// Serve the fleet's releases from the shared store instead of a config file and a plugin
    /// folder (`serve --follow-releases`): `build` waits for a release that loads, and the
    /// host switches to every newer one once it loaded in full.
    #[cfg(feature = "redis")]
    pub fn follow_releases(mut self, follow: ReleaseFollow) -> Self {
        self.releases = Some(follow);
        self
    }

    /// The folder of `.wasm` plugins the config names, hot-reloaded.
    pub fn plugins(mut self, dir: impl AsRef<Path>) -> Self {
        self.plugins = Some(dir.as_ref().to_path_buf());
        self
    }

    /// Where compiled plugins are kept across restarts (default: none).
    pub fn compiled_cache(mut self, dir: impl AsRef<Path>) -> Self {
        self.compiled_cache = Some(dir.as_ref().to_path_buf());
        self
    }

    /// How plugins are compiled (default: in process; see [`Compiler`]).
    pub fn compiler(mut self, compiler: Compiler) -> Self {
        self.compiler = compiler;
        self
    }

    /// The applied state and known users, instead of the config's `[state]`.
    pub fn store(mut self, store: Arc<dyn StateStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Where the applied state and known users live, instead of the config's `[state]` (a
    /// Redis backend also shares the pace and per-list turns between the bot's workers).
    pub fn state(mut self, backend: StateBackend) -> Self {
        self.state = Some(backend);
        self
    }

    /// The prefix of this bot's keys in Redis, when `[state]` is Redis and names none
    /// (`cmdscope::redis::default_prefix(token)` is the CLI's).
    pub fn redis_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.redis_prefix = Some(prefix.into());
        self
    }

    /// Pace, retries and breaker of the bot's Bot API calls.
    pub fn delivery(mut self, options: DeliveryOptions) -> Self {
        self.delivery = options;
        self
    }

    /// The resolver to use when the config names no resolver plugin (a bot's native rules).
    pub fn resolver(mut self, resolver: Arc<dyn Resolver>) -> Self {
        self.resolver = Some(resolver);
        self
    }

    /// How the plugin folder is watched (debounce, rescan period).
    pub fn watch_options(mut self, options: WatchOptions) -> Self {
        self.watch = options;
        self
    }

    /// Whether the config file and its catalog folders are watched (default: yes).
    pub fn watch_config(mut self, watch: bool) -> Self {
        self.watch_config = watch;
        self
    }

    pub fn reconcile_options(mut self, options: ReconcileOptions) -> Self {
        self.reconcile = options;
        self
    }

    /// Events from now on, the initial plugin loads of `build` included.
    pub fn subscribe(&self) -> broadcast::Receiver<HostEvent> {
        self.events.subscribe()
    }

    /// Loads the config (every error listed), the plugin folder (each file loaded or
    /// rejected) and the state store, and starts watching. No Bot API call is made before
    /// [`Host::start`].
    pub async fn build(self) -> anyhow::Result<Host> {
        #[cfg(feature = "redis")]
        let first_release = match &self.releases {
            Some(follow) => Some(
                follow::first(follow, self.compiled_cache.clone(), self.compiler.clone()).await,
            ),
            None => None,
        };
        #[cfg(not(feature = "redis"))]
        let first_release: Option<std::convert::Infallible> = None;
        let config_path = std::path::absolute(&self.config_path)?;
        let config = match &first_release {
            #[cfg(feature = "redis")]
            Some(ready) => ready.loaded.config.clone(),
            #[cfg(not(feature = "redis"))]
            Some(never) => match *never {},
            None => {
                let loaded = Config::load(&config_path).map_err(|errors| {
                    let lines: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
                    anyhow::anyhow!("{}", lines.join("\n"))
                })?;
                for warning in &loaded.warnings {
                    tracing::warn!("{warning}");
                }
                loaded.config
            }
        };
        let events = self.events.clone();
        let (kick, kicks) = mpsc::unbounded_channel();
        // The status page's memory, fed from the first event on.
        let recorder = {
            let mut rx = self.events.subscribe();
            let recent = self.recent.clone();
            tokio::spawn(async move {
                loop {
                    match rx.recv().await {
                        Ok(event) => recent
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .record(&event),
                        Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => return,
                    }
                }
            })
        };

        let plugin_folder = if first_release.is_some() {
            None
        } else {
            self.plugins.as_ref()
        };
        let (live, plugin_events) = match plugin_folder {
            None => (None, None),
            Some(dir) => {
                let (live, events) = self.load_plugins(dir, &config).await?;
                (Some(live), Some(events))
            }
        };
        let backend = match self.store.clone() {
            Some(store) => crate::backend::Opened {
                store,
                shared: None,
            },
            None => {
                let named = self.state.clone().unwrap_or_else(|| config.state.clone());
                crate::backend::open(&named, self.redis_prefix.as_deref(), &self.delivery)
                    .map_err(|e| anyhow::anyhow!("{}: {e:#}", config.source))?
            }
        };
        let audit = match &config.audit {
            Some(settings) => Some(Arc::new(crate::audit::AuditLog::open(settings).map_err(
                |e| {
                    anyhow::anyhow!(
                        "{}: audit.path: cannot open {}: {e}",
                        config.source,
                        settings.path.display()
                    )
                },
            )?)),
            None => None,
        };
        // A rollout under way serves from the first engine on (no canary user moved back
        // and forth by a restart).
        let restored = match &live {
            Some(live) => super::rollout::restore(backend.store.as_ref(), live, &config).await,
            None => None,
        };
        let mut following = Default::default();
        let (engine, skipped) = match first_release {
            #[cfg(feature = "redis")]
            Some(ready) => {
                following = fleet::Following {
                    serving: Some(ready.release),
                    refused: None,
                };
                (ready.loaded.engine, Vec::new())
            }
            #[cfg(not(feature = "redis"))]
            Some(never) => match never {},
            None => {
                let staged = live.as_deref().map(|live| super::rollout::Staged {
                    live: live as &dyn crate::sources::PluginLookup,
                    active: restored.clone(),
                });
                crate::sources::engine(
                    config.clone(),
                    staged
                        .as_ref()
                        .map(|s| s as &dyn crate::sources::PluginLookup),
                    self.resolver.clone(),
                )
                .map_err(anyhow::Error::msg)?
            }
        };
        if !skipped.is_empty() {
            tracing::warn!(
                "{} names {} but no plugin folder was given",
                config.source,
                skipped.join(", ")
            );
        }
        #[cfg(feature = "redis")]
        let follows = self.releases.is_some();
        #[cfg(not(feature = "redis"))]
        let follows = false;
        let inputs = config_watch::inputs(&config_path, &config);
        if let Some(release) = &following.serving {
            backend.serve_release(release.number);
        }
        let inner = Arc::new(Inner {
            membership: Arc::new(fleet::Membership::new(following)),
            #[cfg(feature = "redis")]
            follow: self
                .releases
                .clone()
                .map(|f| (f, self.compiled_cache.clone(), self.compiler.clone())),
            config_path,
            live: live.clone(),
            engine: Arc::new(ArcSwap::from_pointee(engine)),
            config_bytes: Mutex::new(inputs),
            config_waiting: Mutex::new(None),
            reloading: Mutex::new(()),
            resolver: self.resolver,
            events,
            kick,
            kicks: Mutex::new(Some(kicks)),
            backend,
            delivery: self.delivery,
            reconcile: self.reconcile,
            running: OnceLock::new(),
            ready: Arc::new(watch::channel(false).0),
            closing: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            drained: tokio::sync::Notify::new(),
            tasks: Mutex::new(Vec::new()),
            helpers: Mutex::new(Vec::new()),
            stop: watch::channel(false).0,
            plugin_watch: Mutex::new(None),
            config_watch: Mutex::new(None),
            recent: self.recent.clone(),
            impact_running: tokio::sync::Mutex::new(()),
            rollout: arc_swap::ArcSwapOption::new(restored),
            audit,
        });
        inner
            .helpers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(recorder);
        if let (Some(live), Some(plugin_events)) = (&live, plugin_events) {
            Inner::follow_plugins(&inner, live, plugin_events);
            let handle = live.watch(self.watch)?;
            *inner.plugin_watch.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle);
        }
        if self.watch_config && !follows {
            let watcher = config_watch::start(&inner)?;
            *inner.config_watch.lock().unwrap_or_else(|p| p.into_inner()) = Some(watcher);
        }
        Ok(Host { inner })
    }

    /// The plugin folder, loaded; its events from before the first load on.
    async fn load_plugins(
        &self,
        dir: &Path,
        config: &Config,
    ) -> anyhow::Result<(Arc<LivePlugins>, broadcast::Receiver<ReloadEvent>)> {
        let mut host =
            PluginHost::new(config.sandbox.clone())?.with_compiler(self.compiler.clone());
        if let Some(cache_dir) = &self.compiled_cache {
            match CompiledCache::open(cache_dir) {
                Ok(cache) => host = host.with_compiled_cache(cache),
                Err(e) => tracing::warn!(
                    dir = %cache_dir.display(),
                    "compiled cache unusable ({e}); compiling every plugin"
                ),
            }
        }
        let live = LivePlugins::new(host, dir, Arc::new(config.clone()))
            .map_err(|e| anyhow::anyhow!("cannot read the plugin folder {}: {e}", dir.display()))?;
        let events = live.subscribe();
        let loader = live.clone();
        tokio::task::spawn_blocking(move || loader.rescan()).await?;
        Ok((live, events))
    }
}
