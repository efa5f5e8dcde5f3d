//! `cmdscope release`: publish, list and roll back the fleet's releases in the shared store,
//! and make the fleet's signing key. Workers follow with `serve --follow-releases`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::json;

use cmdscope::plugin::Compiler;
use cmdscope::release::{self, Release, ReleaseStore, SecretKey};

use crate::CompiledCacheArgs;

#[derive(Subcommand)]
pub(crate) enum ReleaseCommand {
    /// Check a config and every plugin of a folder exactly as `serve` loads them, then write
    /// them to the store as one release, current at once for every following worker. Prints
    /// one JSON line; refuses (exit 1, nothing written) with every reason.
    Publish(PublishArgs),
    /// Every release: number, time, publisher, plugins, and which workers run it.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Publish an earlier release's content again, as a new number (default: the latest
    /// release before the current one whose content differs from it).
    Rollback {
        #[command(flatten)]
        store: StoreArgs,
        /// The release to go back to.
        #[arg(long)]
        to: Option<u64>,
    },
    /// Make the fleet's signing key: NAME.key (secret, for `publish --sign-key`) and NAME.pub
    /// (for every worker's `serve --verify-key`).
    Keygen {
        /// Path and base name of the two files.
        #[arg(long, default_value = "cmdscope-release")]
        out: PathBuf,
    },
}

/// Which store, and which bot's keys in it.
#[derive(Args)]
pub(crate) struct StoreArgs {
    /// The Redis the bot's workers share (`redis://127.0.0.1:6379/`).
    #[arg(long)]
    state: String,
    /// The bot's key prefix (as `serve` uses it: default `cmdscope:<bot id>` from --token).
    #[arg(long)]
    redis_prefix: Option<String>,
    /// Bot token, only to derive the default prefix (or set CMDSCOPE_BOT_TOKEN). Never printed.
    #[arg(long, env = "CMDSCOPE_BOT_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

impl StoreArgs {
    fn open(&self) -> anyhow::Result<(ReleaseStore, cmdscope::redis::RedisStore)> {
        if !self.state.starts_with("redis://") && !self.state.starts_with("rediss://") {
            anyhow::bail!("--state must be the Redis URL the workers share (releases live there)");
        }
        let prefix = match (&self.redis_prefix, &self.token) {
            (Some(prefix), _) => prefix.clone(),
            (None, Some(token)) => cmdscope::redis::default_prefix(token),
            (None, None) => anyhow::bail!(
                "name the bot's keys: --redis-prefix P, or --token (serve derives its prefix from it)"
            ),
        };
        let shared = cmdscope::redis::RedisShared::connect(&self.state, &prefix)?;
        Ok((
            ReleaseStore::new(shared.clone()),
            cmdscope::redis::RedisStore::new(shared),
        ))
    }
}

#[derive(Args)]
pub(crate) struct PublishArgs {
    #[arg(long)]
    config: PathBuf,
    /// The folder of `.wasm` plugins to release (every file in it).
    #[arg(long)]
    plugins: PathBuf,
    #[command(flatten)]
    store: StoreArgs,
    /// Sign the release with the fleet's secret key (`release keygen`).
    #[arg(long)]
    sign_key: Option<PathBuf>,
    #[command(flatten)]
    cache: CompiledCacheArgs,
}

pub(crate) async fn run(command: ReleaseCommand) -> anyhow::Result<ExitCode> {
    match command {
        ReleaseCommand::Publish(args) => publish(args).await,
        ReleaseCommand::List { store } => list(store).await,
        ReleaseCommand::Rollback { store, to } => rollback(store, to).await,
        ReleaseCommand::Keygen { out } => {
            let key = SecretKey::generate()?;
            let (secret, public) = key.write_pair(&out)?;
            println!(
                "{}",
                json!({"secret": secret, "public": public, "key_id": key.public().id()})
            );
            eprintln!(
                "publish with --sign-key {}; start every worker with --verify-key {}",
                secret.display(),
                public.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn compiler() -> Compiler {
    Compiler::this_program().unwrap_or_default()
}

async fn publish(args: PublishArgs) -> anyhow::Result<ExitCode> {
    let (store, _) = args.store.open()?;
    let sign_key = args.sign_key.as_deref().map(SecretKey::read).transpose()?;
    let text = std::fs::read_to_string(&args.config)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", args.config.display()))?;
    let config_file = file_name(&args.config);
    // Read as the folder's watcher reads it, within the config's file limit.
    let limits = cmdscope::config::Config::load(&args.config)
        .map(|l| l.config.sandbox)
        .unwrap_or_default();
    let reader = cmdscope::plugin::PluginHost::new(limits)?;
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for (file, read) in reader.read_dir(&args.plugins).map_err(|e| {
        anyhow::anyhow!(
            "cannot read the plugin folder {}: {e}",
            args.plugins.display()
        )
    })? {
        match read {
            Ok(bytes) => files.push((file, bytes)),
            Err(e) => errors.push(format!("{file}: {e}")),
        }
    }
    let draft = Release::draft(&config_file, text, &files);
    let cache = args.cache.dir();
    let checked = {
        let files = files.clone();
        let draft = draft.clone();
        tokio::task::spawn_blocking(move || {
            release::check(&draft, &files, cache.as_deref(), &compiler())
        })
        .await?
    };
    let loaded = match checked {
        Ok(loaded) if errors.is_empty() => loaded,
        Ok(_) => return refuse(&errors),
        Err(more) => {
            errors.extend(more);
            return refuse(&errors);
        }
    };
    let mut release = draft.named_from(&loaded.plugins);
    if let Some(key) = &sign_key {
        release.signature = Some(key.sign(&release.manifest()));
    }
    let number = store.publish(&release, &files).await?;
    println!(
        "{}",
        json!({
            "release": number,
            "config": release.config_file,
            "plugins": release.plugins,
            "signed": release.signature.is_some(),
            "by": release.by,
            "store": store.describe(),
        })
    );
    Ok(ExitCode::SUCCESS)
}

fn refuse(errors: &[String]) -> anyhow::Result<ExitCode> {
    eprintln!("release refused, nothing written:");
    for e in errors {
        eprintln!("  {e}");
    }
    Ok(ExitCode::FAILURE)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| "cmdscope.toml".into())
}

async fn list(args: StoreArgs) -> anyhow::Result<ExitCode> {
    let (store, state) = args.open()?;
    let releases = store.list().await?;
    let current = store.current().await?;
    let workers = fleet(&state).await;
    for r in &releases {
        let running: Vec<&str> = workers
            .iter()
            .filter(|w| w.release == Some(r.number))
            .map(|w| w.id.as_str())
            .collect();
        let refused: Vec<String> = workers
            .iter()
            .filter_map(|w| match &w.refused {
                Some(x) if x.release == r.number => Some(format!("{}: {}", w.id, x.reason)),
                _ => None,
            })
            .collect();
        println!(
            "{}",
            json!({
                "release": r.number,
                "current": current == Some(r.number),
                "published_at_ms": r.published_at_ms,
                "by": r.by,
                "signed": r.signature.is_some(),
                "rollback_of": r.rollback_of,
                "plugins": r.plugins,
                "workers": running,
                "refused_by": refused,
            })
        );
    }
    if releases.is_empty() {
        eprintln!("no release in {}", store.describe());
    }
    Ok(ExitCode::SUCCESS)
}

/// The workers alive now, read without joining the registry.
async fn fleet(state: &cmdscope::redis::RedisStore) -> Vec<cmdscope::state::Worker> {
    use cmdscope::state::{KnownUsers, Worker};
    // Checking in as an observer that expires at once lists the others, then leaves.
    let observer = Worker {
        id: format!("release-list-{}", std::process::id()),
        generation: 0,
        release: None,
        refused: None,
    };
    let all = state
        .check_in(&observer, std::time::Duration::from_millis(1))
        .await
        .unwrap_or_default();
    let _ = state.check_out(&observer.id).await;
    all.into_iter().filter(|w| w.id != observer.id).collect()
}

async fn rollback(args: StoreArgs, to: Option<u64>) -> anyhow::Result<ExitCode> {
    let (store, _) = args.open()?;
    let current = store
        .current()
        .await?
        .ok_or_else(|| anyhow::anyhow!("no release to roll back from"))?;
    let target = match to {
        Some(n) => n,
        None => {
            // The latest earlier release whose content differs from what serves now (an
            // unsigned or repeated publish of the same content is no way back).
            let releases = store.list().await?;
            let serving = releases
                .iter()
                .find(|r| r.number == current)
                .map(|r| r.manifest())
                .unwrap_or_default();
            releases
                .iter()
                .rev()
                .find(|r| r.number < current && r.manifest() != serving)
                .map(|r| r.number)
                .ok_or_else(|| {
                    anyhow::anyhow!("no release before {current} has other content to go back to")
                })?
        }
    };
    let earlier = store
        .get(target)
        .await?
        .ok_or_else(|| anyhow::anyhow!("release {target} is not in the store"))?;
    let files = store.files(&earlier).await?;
    let mut again = earlier.clone();
    again.number = 0;
    again.published_at_ms = release::now();
    again.rollback_of = Some(target);
    let number = store.publish(&again, &files).await?;
    println!(
        "{}",
        json!({"release": number, "rollback_of": target, "from": current, "plugins": again.plugins})
    );
    Ok(ExitCode::SUCCESS)
}
