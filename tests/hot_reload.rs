//! Hot reload on a real folder: files written, renamed and deleted while resolvers are called.
//! Tests wait for reload events, never for a fixed time.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use cmdscope::config::{Config, Format};
use cmdscope::plugin::{
    CacheOutcome, CompiledCache, LivePlugins, Plugin, PluginHost, PluginSettings, ReloadEvent,
    ReloadKind, SandboxLimits, WatchHandle, WatchOptions,
};
use cmdscope::{Resolver, UserContext};
use tokio::sync::broadcast::Receiver;

use common::{guest_admin_config, plugin_bytes};

struct Folder {
    dir: tempfile::TempDir,
    live: Arc<LivePlugins>,
    events: Receiver<ReloadEvent>,
    _watch: WatchHandle,
}

impl Folder {
    /// A plugins folder holding `resolver.wasm` = swap-guest, watched.
    async fn new() -> Folder {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("resolver.wasm"), plugin_bytes("swap-guest")).unwrap();
        let config = Arc::new(
            Config::parse(&guest_admin_config("swappable"), Format::Toml, "hot.toml")
                .unwrap()
                .config,
        );
        let host = PluginHost::new(SandboxLimits::default()).unwrap();
        let live = LivePlugins::new(host, dir.path(), config).unwrap();
        let mut events = live.subscribe();
        live.rescan();
        let first = events.try_recv().expect("the initial load is an event");
        assert_eq!(
            (first.event, first.file.as_str(), first.generation),
            (ReloadKind::Loaded, "resolver.wasm", 1)
        );
        let watch = live
            .watch(WatchOptions {
                debounce: Duration::from_millis(50),
                rescan: Duration::from_millis(500),
            })
            .unwrap();
        Folder {
            dir,
            live,
            events,
            _watch: watch,
        }
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    fn resolver(&self) -> impl Resolver + use<> {
        self.live
            .resolver("swappable")
            .expect("swappable is loaded")
    }

    /// Writes `bytes` next to `file` and renames it into place, as deploy tools do.
    fn rename_in(&self, file: &str, bytes: &[u8]) {
        let tmp = self.path(&format!(".{file}.partial"));
        std::fs::write(&tmp, bytes).unwrap();
        std::fs::rename(&tmp, self.path(file)).unwrap();
    }

    /// The next event matching `want`, skipping others; panics after 20 s.
    async fn wait_for(&mut self, want: impl Fn(&ReloadEvent) -> bool) -> ReloadEvent {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Ok(event)) if want(&event) => return event,
                Ok(Ok(_)) => continue,
                Ok(Err(e)) => panic!("event stream: {e}"),
                Err(_) => panic!("no matching reload event within 20 s"),
            }
        }
    }
}

fn reloaded(file: &'static str) -> impl Fn(&ReloadEvent) -> bool {
    move |e| e.event == ReloadKind::Reloaded && e.file == file
}

fn user() -> UserContext {
    UserContext::private(1)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_renamed_file_is_serving_without_a_restart() {
    let mut f = Folder::new().await;
    let r = f.resolver();
    assert_eq!(r.resolve(&user()).unwrap(), "guest");
    let start_generation = f.live.generation();
    f.rename_in("resolver.wasm", &plugin_bytes("swap-admin"));
    let event = f.wait_for(reloaded("resolver.wasm")).await;
    assert_eq!(event.plugin.as_deref(), Some("swappable"));
    assert_eq!(event.generation, start_generation + 1);
    assert_eq!(event.sha256.as_ref().unwrap().len(), 64);
    assert!(event.error.is_none());
    // The same handle now calls the new version.
    assert_eq!(r.resolve(&user()).unwrap(), "admin");
    let json = serde_json::to_value(&event).unwrap();
    assert_eq!(json["event"], "reloaded");
    assert_eq!(json["plugin"], "swappable");
    assert!(json.get("error").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_written_slowly_in_chunks_is_never_served_half_written() {
    let mut f = Folder::new().await;
    let r = f.resolver();
    let bytes = plugin_bytes("swap-admin");
    let path = f.path("resolver.wasm");
    let complete = Arc::new(AtomicBool::new(false));
    let writer = {
        let (bytes, complete) = (bytes.clone(), complete.clone());
        std::thread::spawn(move || {
            use std::io::Write;
            let mut file = std::fs::File::create(&path).unwrap();
            let chunks: Vec<&[u8]> = bytes.chunks(bytes.len() / 4 + 1).collect();
            for (i, chunk) in chunks.iter().enumerate() {
                if i > 0 {
                    std::thread::sleep(Duration::from_millis(300));
                }
                file.write_all(chunk).unwrap();
                file.flush().unwrap();
            }
            complete.store(true, Ordering::SeqCst);
        })
    };
    // While it is incomplete, every call is answered by the last good version.
    while !writer.is_finished() {
        let was_complete = complete.load(Ordering::SeqCst);
        let answer = r.resolve(&user()).unwrap();
        assert!(
            answer == "guest" || was_complete,
            "served `{answer}` from a half-written file"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    writer.join().unwrap();
    f.wait_for(reloaded("resolver.wasm")).await;
    assert_eq!(r.resolve(&user()).unwrap(), "admin");
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_is_rejected_and_the_last_good_version_keeps_serving() {
    let mut f = Folder::new().await;
    let r = f.resolver();
    f.rename_in(
        "resolver.wasm",
        b"\0asm\x0d\0\x01\0 definitely not a component",
    );
    let event = f.wait_for(|e| e.event == ReloadKind::Rejected).await;
    assert_eq!(event.file, "resolver.wasm");
    assert_eq!(
        event.plugin.as_deref(),
        Some("swappable"),
        "names the version that keeps serving"
    );
    assert!(
        event
            .error
            .unwrap()
            .starts_with("not a valid WebAssembly component")
    );
    assert_eq!(r.resolve(&user()).unwrap(), "guest");
    f.rename_in("resolver.wasm", &plugin_bytes("swap-admin"));
    f.wait_for(reloaded("resolver.wasm")).await;
    assert_eq!(r.resolve(&user()).unwrap(), "admin");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_importing_http_is_rejected() {
    let mut f = Folder::new().await;
    f.rename_in("resolver.wasm", &plugin_bytes("http-importer"));
    let event = f.wait_for(|e| e.event == ReloadKind::Rejected).await;
    assert!(
        event.error.as_deref().unwrap().contains("`wasi:http/"),
        "{event:?}"
    );
    assert_eq!(f.resolver().resolve(&user()).unwrap(), "guest");
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_the_file_keeps_the_last_good_version_until_replaced() {
    let mut f = Folder::new().await;
    let r = f.resolver();
    std::fs::remove_file(f.path("resolver.wasm")).unwrap();
    let event = f.wait_for(|e| e.event == ReloadKind::Removed).await;
    assert_eq!(
        (event.file.as_str(), event.plugin.as_deref()),
        ("resolver.wasm", Some("swappable"))
    );
    assert_eq!(r.resolve(&user()).unwrap(), "guest");
    // A new file with the same plugin name replaces it.
    f.rename_in("resolver-v2.wasm", &plugin_bytes("swap-admin"));
    f.wait_for(reloaded("resolver-v2.wasm")).await;
    assert_eq!(r.resolve(&user()).unwrap(), "admin");
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_rapid_writes_end_on_the_last_one() {
    let mut f = Folder::new().await;
    let guest = plugin_bytes("swap-guest");
    let admin = plugin_bytes("swap-admin");
    let r = f.resolver();
    for i in 0..50 {
        f.rename_in("resolver.wasm", if i % 2 == 0 { &guest } else { &admin });
        // Calls keep being answered throughout.
        assert!(matches!(
            r.resolve(&user()).as_deref(),
            Ok("guest" | "admin")
        ));
    }
    // The last write (i = 49) is the admin version: wait until it serves.
    while r.resolve(&user()).unwrap() != "admin" {
        f.wait_for(reloaded("resolver.wasm")).await;
    }
    // Whatever the watcher still delivers, the final state stays the last write.
    f.live.rescan();
    assert_eq!(r.resolve(&user()).unwrap(), "admin");
    while let Ok(e) = f.events.try_recv() {
        assert_ne!(
            e.event,
            ReloadKind::Rejected,
            "an atomic rename is never seen half-written: {e:?}"
        );
    }
    assert!(f.live.generation() <= 51, "at most one swap per write");
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_during_twenty_swaps_never_fail() {
    let mut f = Folder::new().await;
    let stop = Arc::new(AtomicBool::new(false));
    let answers = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
    let callers: Vec<_> = (0..8)
        .map(|_| {
            let r = f.resolver();
            let (stop, answers) = (stop.clone(), answers.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match r.resolve(&user()).as_deref() {
                        Ok("guest") => answers[0].fetch_add(1, Ordering::Relaxed),
                        Ok("admin") => answers[1].fetch_add(1, Ordering::Relaxed),
                        other => panic!("a call during a swap answered {other:?}"),
                    };
                }
            })
        })
        .collect();
    let guest = plugin_bytes("swap-guest");
    let admin = plugin_bytes("swap-admin");
    for i in 0..20 {
        f.rename_in("resolver.wasm", if i % 2 == 0 { &admin } else { &guest });
        f.wait_for(reloaded("resolver.wasm")).await;
    }
    stop.store(true, Ordering::Relaxed);
    for c in callers {
        c.join().expect("no caller panicked");
    }
    assert!(answers[0].load(Ordering::Relaxed) > 0 && answers[1].load(Ordering::Relaxed) > 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_bytes_never_reload() {
    let mut f = Folder::new().await;
    let generation = f.live.generation();
    f.rename_in("resolver.wasm", &plugin_bytes("swap-guest"));
    // A marker change after it: the first event to arrive must be the marker's.
    f.rename_in("other.wasm", b"not a plugin");
    let event = f.wait_for(|_| true).await;
    assert_eq!(event.file, "other.wasm", "identical bytes caused {event:?}");
    assert_eq!(f.live.generation(), generation);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_refused_for_a_profile_the_config_lacks_loads_once_the_config_has_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("resolver.wasm"), plugin_bytes("swap-admin")).unwrap();
    // swap-admin may return `admin`; this config only has `guest`.
    let only_guest = r#"
default_profile = "guest"
resolver = "swappable"
[commands.start]
[profiles.guest]
include = ["start"]
[[scopes]]
scope = "default"
profile = "guest"
"#;
    let parse = |text: &str| Arc::new(Config::parse(text, Format::Toml, "c.toml").unwrap().config);
    let host = PluginHost::new(SandboxLimits::default()).unwrap();
    let live = LivePlugins::new(host, dir.path(), parse(only_guest)).unwrap();
    let mut events = live.subscribe();
    live.rescan();
    let refused = events.try_recv().unwrap();
    assert_eq!(refused.event, ReloadKind::Rejected);
    assert!(
        refused
            .error
            .unwrap()
            .contains("may return profiles the config does not define: `admin`")
    );
    assert!(live.resolver("swappable").is_none());
    // The reason goes away with the config: the file loads, without being touched.
    live.set_config(parse(&guest_admin_config("swappable")));
    let loaded = events.try_recv().unwrap();
    assert_eq!(
        (loaded.event, loaded.file.as_str()),
        (ReloadKind::Loaded, "resolver.wasm")
    );
    assert_eq!(
        live.resolver("swappable")
            .unwrap()
            .resolve(&user())
            .unwrap(),
        "admin"
    );
}

fn load_with(cache: &CompiledCache, bytes: &[u8]) -> CacheOutcome {
    // A new host each time: a new engine, as after a restart.
    let host = PluginHost::new(SandboxLimits::default())
        .unwrap()
        .with_compiled_cache(cache.clone());
    let plugin = host
        .load_bytes(bytes, "resolver.wasm", &PluginSettings::new())
        .unwrap();
    let Plugin::Resolver(r) = &plugin else {
        panic!()
    };
    assert_eq!(r.resolve(&user()).unwrap(), "guest");
    plugin.info().compiled
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

#[test]
fn the_compiled_cache_serves_a_restart_and_rebuilds_bad_entries() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("compiled");
    let cache = CompiledCache::open(&dir).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
    }
    let bytes = plugin_bytes("swap-guest");
    assert_eq!(load_with(&cache, &bytes), CacheOutcome::Miss);
    assert_eq!(load_with(&cache, &bytes), CacheOutcome::Hit);
    let files = entries(&dir);
    assert_eq!(
        files.len(),
        1,
        "one entry, no temporary files left: {files:?}"
    );
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with(
            &cmdscope::plugin::PluginHost::new(SandboxLimits::default())
                .unwrap()
                .load_bytes(&bytes, "x.wasm", &PluginSettings::new())
                .unwrap()
                .info()
                .sha256
        )
    );
    // A corrupt entry is a miss, and is rebuilt.
    std::fs::write(&files[0], b"corrupt").unwrap();
    assert_eq!(load_with(&cache, &bytes), CacheOutcome::Miss);
    assert_eq!(load_with(&cache, &bytes), CacheOutcome::Hit);
    // Other bytes, other entry.
    assert_eq!(load_with_admin(&cache), CacheOutcome::Miss);
    assert_eq!(entries(&dir).len(), 2);
}

fn load_with_admin(cache: &CompiledCache) -> CacheOutcome {
    let host = PluginHost::new(SandboxLimits::default())
        .unwrap()
        .with_compiled_cache(cache.clone());
    host.load_bytes(
        &plugin_bytes("swap-admin"),
        "a.wasm",
        &PluginSettings::new(),
    )
    .unwrap()
    .info()
    .compiled
}

/// The plugin calls made while `f` runs, by WIT function (`resolve`, `resolve-batch`), as the
/// host's `plugin_call` spans record them.
fn crossings(f: impl FnOnce()) -> std::collections::BTreeMap<String, usize> {
    use std::sync::Mutex;
    use tracing_subscriber::layer::SubscriberExt;

    #[derive(Clone, Default)]
    struct Calls(Arc<Mutex<std::collections::BTreeMap<String, usize>>>);
    struct Function(Option<String>);
    impl tracing::field::Visit for Function {
        fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
            if field.name() == "function" {
                self.0 = Some(value.to_string());
            }
        }
        fn record_debug(&mut self, _: &tracing::field::Field, _: &dyn std::fmt::Debug) {}
    }
    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Calls {
        fn on_new_span(
            &self,
            attrs: &tracing::span::Attributes<'_>,
            _: &tracing::span::Id,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            if attrs.metadata().name() != "plugin_call" {
                return;
            }
            let mut function = Function(None);
            attrs.record(&mut function);
            *self
                .0
                .lock()
                .unwrap()
                .entry(function.0.unwrap_or_default())
                .or_default() += 1;
        }
    }
    let calls = Calls::default();
    let subscriber = tracing_subscriber::registry().with(calls.clone());
    tracing::subscriber::with_default(subscriber, f);
    calls.0.lock().unwrap().clone()
}

#[tokio::test]
async fn a_hot_resolver_answers_a_page_in_one_crossing_per_batch() {
    let folder = Folder::new().await;
    let resolver = folder.resolver();
    let users: Vec<UserContext> = (1..=300)
        .map(|id| UserContext::private(id).flag("admin", id % 3 == 0))
        .collect();
    let refs: Vec<&UserContext> = users.iter().collect();
    let mut answers = Vec::new();
    let calls = crossings(|| answers = resolver.resolve_batch(&refs));
    assert_eq!(answers.len(), 300);
    for (user, answer) in users.iter().zip(&answers) {
        assert_eq!(
            answer.as_deref().unwrap(),
            resolver.resolve(user).unwrap(),
            "user {}",
            user.user_id
        );
    }
    // 300 users in pages of 128: three crossings, none user by user.
    assert_eq!(calls.get("resolve-batch"), Some(&3), "{calls:?}");
    assert_eq!(calls.get("resolve"), None, "{calls:?}");
}
