//! The long-running commands, both thin users of `cmdscope::Host`: `watch` (the host without
//! a Bot API: reloads as JSON lines, the status page) and `serve` (the host talking to
//! Telegram, with its HTTP API), until Ctrl-C or SIGTERM; SIGHUP reloads the config.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use tokio::signal::unix::{SignalKind, signal};

use cmdscope::host::http::{self, HttpOptions};
use cmdscope::plugin::Compiler;
use cmdscope::{Host, HostEvent};

use crate::CompiledCacheArgs;
use crate::sync::Connection;

/// Where the host finds its config and plugins.
#[derive(Args)]
pub(crate) struct HostArgs {
    /// The config file (watched). Required, except with `serve --follow-releases`.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Folder of `.wasm` plugins, hot-reloaded.
    #[arg(long)]
    plugins: Option<PathBuf>,
    #[command(flatten)]
    cache: CompiledCacheArgs,
}

impl HostArgs {
    fn config(&self) -> anyhow::Result<&PathBuf> {
        self.config.as_ref().ok_or_else(|| {
            anyhow::anyhow!("--config is required (or, for serve, --follow-releases)")
        })
    }

    fn builder(&self) -> cmdscope::host::HostBuilder {
        let config = self
            .config
            .clone()
            .unwrap_or_else(|| PathBuf::from("release"));
        let mut builder = Host::builder(config);
        if let Some(dir) = &self.plugins {
            builder = builder.plugins(dir);
        }
        if let Some(cache) = self.cache.dir() {
            builder = builder.compiled_cache(cache);
        }
        // A component too slow to compile is killed, not left compiling: this binary is its
        // own compile worker.
        match Compiler::this_program() {
            Ok(compiler) => builder.compiler(compiler),
            Err(e) => {
                eprintln!(
                    "warning: cannot find this program to run compile workers ({e}); compiling in process"
                );
                builder
            }
        }
    }
}

#[derive(Args)]
pub(crate) struct WatchArgs {
    #[command(flatten)]
    host: HostArgs,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9000).
    #[arg(long)]
    metrics: Option<SocketAddr>,
    /// Serve the status page (and the read-only API) at http://ADDR/.
    #[arg(long)]
    http: Option<SocketAddr>,
}

#[derive(Args)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    host: HostArgs,
    #[command(flatten)]
    connection: Connection,
    /// Where the HTTP API, the status page, /metrics and /healthz listen.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The key write endpoints require (`Authorization: Bearer KEY`). Never the bot token.
    #[arg(long, env = "CMDSCOPE_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Serve the fleet's releases from the `--state` Redis (`cmdscope release publish`)
    /// instead of --config and --plugins; switch to each newer one once it loaded in full.
    #[arg(long, conflicts_with = "plugins")]
    follow_releases: bool,
    /// Serve only releases signed for this public key (`cmdscope release keygen`).
    #[arg(long, requires = "follow_releases")]
    verify_key: Option<PathBuf>,
}

/// Events as JSON lines, flushed one by one.
fn print(event: &HostEvent) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", serde_json::to_string(event)?)?;
    out.flush()
}

/// Prints events until the host stops.
fn print_events(
    mut events: tokio::sync::broadcast::Receiver<HostEvent>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(event) => {
                    if print(&event).is_err() {
                        return;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    eprintln!("warning: {n} events dropped (output too slow)")
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    })
}

/// Ctrl-C or SIGTERM; SIGHUP reloads the config meanwhile.
async fn until_stopped(host: &Host) -> anyhow::Result<()> {
    let mut terminate = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = terminate.recv() => return Ok(()),
            _ = hangup.recv() => {
                host.reload_config().await;
            }
        }
    }
}

pub(crate) async fn watch(args: WatchArgs) -> anyhow::Result<ExitCode> {
    cmdscope::metrics::set_enabled(args.metrics.is_some() || args.http.is_some());
    if let Some(addr) = args.metrics {
        cmdscope::metrics::serve_prometheus(addr)
            .await
            .map_err(anyhow::Error::msg)?;
    }
    args.host.config()?;
    let builder = args.host.builder();
    let printer = print_events(builder.subscribe());
    let host = match builder.build().await {
        Ok(host) => host,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(ExitCode::FAILURE);
        }
    };
    if let Some(addr) = args.http {
        let (bound, _) =
            http::serve(&host, addr, HttpOptions::default(), std::future::pending()).await?;
        eprintln!("status page on http://{bound}/");
    }
    until_stopped(&host).await?;
    host.shutdown().await;
    printer.abort();
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    cmdscope::metrics::set_enabled(true);
    let token = args.connection.token()?.to_string();
    let mut builder = args
        .host
        .builder()
        .redis_prefix(cmdscope::redis::default_prefix(&token))
        .delivery(args.connection.delivery_options()?);
    if args.follow_releases {
        let state = match &args.connection.state {
            Some(url) if url.starts_with("redis://") || url.starts_with("rediss://") => url,
            _ => anyhow::bail!(
                "--follow-releases needs --state redis://...: releases live in the Redis the workers share"
            ),
        };
        let prefix = args
            .connection
            .redis_prefix
            .clone()
            .unwrap_or_else(|| cmdscope::redis::default_prefix(&token));
        let backend = cmdscope::config::StateBackend::Redis {
            url: state.clone(),
            key_prefix: Some(prefix.clone()),
        };
        let shared = cmdscope::redis::RedisShared::connect(state, &prefix)?;
        let mut follow =
            cmdscope::host::ReleaseFollow::new(cmdscope::release::ReleaseStore::new(shared));
        if let Some(path) = &args.verify_key {
            follow.verify_key = Some(cmdscope::release::PublicKey::read(path)?);
        }
        eprintln!("following the releases in {}", follow.store.describe());
        builder = builder.state(backend).follow_releases(follow);
    } else {
        let Some(loaded) = crate::load_or_print(args.host.config()?) else {
            return Ok(ExitCode::FAILURE);
        };
        builder = builder.state(args.connection.backend(&loaded.config)?);
    }
    let printer = print_events(builder.subscribe());
    let host = match builder.build().await {
        Ok(host) => host,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(ExitCode::FAILURE);
        }
    };
    // Up before the lists are applied: /healthz answers 503 until they are.
    let options = HttpOptions {
        api_key: args.api_key.clone(),
        request_timeout: None,
        metrics: true,
    };
    let (bound, server) = http::serve(&host, args.listen, options, std::future::pending()).await?;
    eprintln!(
        "cmdscope serving on http://{bound}/ (API /v1, events /v1/events, /healthz, /metrics)"
    );
    if args.api_key.is_none() {
        eprintln!("warning: no --api-key (or CMDSCOPE_API_KEY): the write endpoints answer 401");
    }
    let report = host.start(args.connection.api()?).await?;
    for failed in report.failures() {
        eprintln!("{}: {}", failed.key, failed.status);
    }
    until_stopped(&host).await?;
    eprintln!("stopping: finishing in-flight updates");
    host.shutdown().await;
    let _ = server.await;
    printer.abort();
    Ok(ExitCode::SUCCESS)
}
