//! The `cmdscope` command-line tool. Only this binary knows output formats (tables, JSON);
//! the library returns typed values.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};

use cmdscope::BotCommand;
use cmdscope::config::{Config, Loaded};
use cmdscope::emulator::Emulator;
use cmdscope::engine::Engine;
use cmdscope::manager::{ListOutcome, SetupReport, Status};
use cmdscope::plan::Plan;
use cmdscope::plugin::{PluginHost, PluginSet};

mod demo;
mod impact;
mod new_plugin;
mod plugins;
mod release;
mod rollout;
mod run;
mod sync;

#[derive(Parser)]
#[command(
    name = "cmdscope",
    version,
    about = "Keeps Telegram bot command menus right for every user"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a config: exit 0 when valid, else print one error per line and exit 1.
    Check {
        #[arg(long)]
        config: PathBuf,
    },
    /// Show the lists `apply` would set.
    Plan {
        #[arg(long)]
        config: PathBuf,
        /// Folder of `.wasm` plugins (for the translators the config names).
        #[arg(long)]
        plugins: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
    },
    /// Set every configured list and the menu button through the Bot API.
    Apply {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        plugins: Option<PathBuf>,
        #[command(flatten)]
        connection: sync::Connection,
        /// Print the plan without calling the Bot API.
        #[arg(long)]
        dry_run: bool,
    },
    /// Bring many users' menus up to date from a JSON-lines file, sending only what Telegram
    /// lacks; prints a JSON summary line.
    SyncUsers(sync::SyncUsersArgs),
    /// Run the host without a Bot API: hot-reload the plugins and the config, printing one JSON
    /// object per line for each event (initial loads included), until Ctrl-C / SIGTERM.
    Watch(run::WatchArgs),
    /// Run the host: apply the config, keep every known user's menu right through plugin and
    /// config changes, and serve the JSON API, events, status page and /metrics, until Ctrl-C /
    /// SIGTERM (graceful); SIGHUP reloads the config.
    Serve(run::ServeArgs),
    /// The fleet's releases in the shared store: publish, list, rollback, keygen.
    Release {
        #[command(subcommand)]
        command: release::ReleaseCommand,
    },
    /// Resolve one user's profile and menu through the configured plugins.
    Resolve(plugins::ResolveArgs),
    /// Why a user sees their menu: the profile and the plugin version that decided it, the
    /// menu, Telegram's precedence chain for them with what the store says is set at each
    /// step, and the user's record (JSON, as GET /v1/explain answers).
    Explain(plugins::ExplainArgs),
    /// What a new plugin version or config would do before it serves: every known user in
    /// the store resolved both ways, the menus that change, the transitions between profiles
    /// (with sample users), the candidate's fallbacks and the calls the swap would make. No Bot
    /// API call. Exit 1 when the candidate fails to load or validate.
    Impact(impact::ImpactArgs),
    /// Rule changes on a running `serve`: stage a resolver version on a share of users
    /// (start, status, promote, abort), roll a plugin back in one step, list the versions
    /// kept for it.
    Rollout {
        #[command(subcommand)]
        command: rollout::RolloutCommand,
    },
    /// Inspect and test plugin files.
    Plugins {
        #[command(subcommand)]
        command: plugins::PluginsCommand,
    },
    /// Write a new plugin project (Rust, Python or JavaScript; resolver or translator): the
    /// WIT, the build command, natively tested logic, golden cases and a README.
    NewPlugin(new_plugin::NewPluginArgs),
    /// The main job on an embedded default: an in-process emulator, the example config and
    /// plugins, sample users.
    Demo,
    /// Run the Bot API emulator on loopback until Ctrl-C.
    Emulator {
        #[arg(long, default_value = "127.0.0.1:8081")]
        listen: SocketAddr,
        /// Accept only this bot token.
        #[arg(long)]
        token: Option<String>,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum OutputFormat {
    Json,
    Table,
}

fn main() -> ExitCode {
    // Started again as a compile worker (see `plugin_host`): compile, answer and exit.
    cmdscope::plugin::run_compile_worker_if_requested();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colours only for a terminal: a log file or a pipe gets plain `key=value` text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CMDSCOPE_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let cli = Cli::parse();
    // Series cost a little on every update: recorded only by the commands that serve them
    // (`serve`, `watch --http/--metrics`, `sync-users --metrics`), which turn them back on.
    cmdscope::metrics::set_enabled(false);
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    match runtime.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Check { config } => Ok(check(&config)),
        Command::Plan {
            config,
            plugins,
            format,
        } => {
            let Some(loaded) = load_or_print(&config) else {
                return Ok(ExitCode::FAILURE);
            };
            let engine = engine_for(loaded.config, plugins.as_deref())?;
            print_plan(&engine.plan(), format)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Apply {
            config,
            plugins,
            connection,
            dry_run,
        } => {
            let Some(loaded) = load_or_print(&config) else {
                return Ok(ExitCode::FAILURE);
            };
            let engine = Arc::new(engine_for(loaded.config, plugins.as_deref())?);
            if dry_run {
                print_plan(&engine.plan(), OutputFormat::Table)?;
                println!("dry run: no Bot API call made");
                return Ok(ExitCode::SUCCESS);
            }
            let manager = connection.manager(engine)?;
            let report = manager.setup_all().await;
            print_report(&report);
            Ok(if report.is_complete() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Watch(args) => run::watch(args).await,
        Command::Serve(args) => run::serve(args).await,
        Command::SyncUsers(args) => sync::sync_users(args).await,
        Command::Release { command } => release::run(command).await,
        Command::Resolve(args) => plugins::resolve(args).await,
        Command::Explain(args) => plugins::explain(args).await,
        Command::Impact(args) => impact::run(args).await,
        Command::Rollout { command } => rollout::run(command).await,
        Command::Plugins { command } => plugins::run(command),
        Command::NewPlugin(args) => new_plugin::run(args),
        Command::Demo => demo::run().await,
        Command::Emulator { listen, token } => {
            let mut emulator = Emulator::new();
            if let Some(t) = &token {
                emulator = emulator.require_token(t);
            }
            let listener = tokio::net::TcpListener::bind(listen).await?;
            println!(
                "Bot API emulator listening on http://{}/ (Ctrl-C to stop)",
                listener.local_addr()?
            );
            emulator
                .serve(listener, async {
                    let _ = tokio::signal::ctrl_c().await;
                })
                .await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// An engine for `config`, with the resolver and translators it names: plugins from `plugins`
/// (loaded once), catalogs from files. Without a plugin folder, named plugins are skipped
/// (said once).
pub(crate) fn engine_for(config: Config, plugins: Option<&Path>) -> anyhow::Result<Engine> {
    let set = match plugins {
        None => None,
        Some(dir) => {
            let host = plugin_host(&config.sandbox)?;
            Some(
                PluginSet::load(&host, dir, &config)
                    .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", dir.display()))?,
            )
        }
    };
    let lookup = set
        .as_ref()
        .map(|s| s as &dyn cmdscope::sources::PluginLookup);
    let source = config.source.clone();
    let (engine, skipped) =
        cmdscope::sources::engine(config, lookup, None).map_err(anyhow::Error::msg)?;
    if !skipped.is_empty() {
        eprintln!(
            "warning: {source} names {} but no --plugins folder was given: using default_profile and the other translators",
            skipped.join(", ")
        );
    }
    Ok(engine)
}

/// Where compiled plugins are kept between runs, shared by every command that loads plugins.
#[derive(clap::Args)]
pub(crate) struct CompiledCacheArgs {
    /// Where compiled plugins are cached (default: $XDG_CACHE_HOME/cmdscope/compiled).
    #[arg(long)]
    compiled_cache: Option<PathBuf>,
    /// Compile every plugin, without the cache.
    #[arg(long, conflicts_with = "compiled_cache")]
    no_compiled_cache: bool,
}

impl CompiledCacheArgs {
    pub(crate) fn dir(&self) -> Option<PathBuf> {
        if self.no_compiled_cache {
            return None;
        }
        self.compiled_cache
            .clone()
            .or_else(cmdscope::plugin::CompiledCache::default_dir)
    }
}

/// The store a host uses, as the commands that read it (`explain`, `impact`) name it.
#[derive(clap::Args)]
pub(crate) struct StoreArgs {
    /// The store the host uses (a redb file, or `redis://...`). Default: the config's
    /// `[state]`.
    #[arg(long)]
    state: Option<String>,
    /// The bot's key prefix in Redis (default: the config's, else from --token).
    #[arg(long)]
    redis_prefix: Option<String>,
    /// Bot token, only to derive the default Redis prefix (or CMDSCOPE_BOT_TOKEN).
    #[arg(long, env = "CMDSCOPE_BOT_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

impl StoreArgs {
    pub(crate) fn open(&self, config: &Config) -> anyhow::Result<cmdscope::backend::Opened> {
        let backend = match self.state.as_deref() {
            Some(url) if url.starts_with("redis://") || url.starts_with("rediss://") => {
                cmdscope::config::StateBackend::Redis {
                    url: url.to_string(),
                    key_prefix: self.redis_prefix.clone(),
                }
            }
            Some(path) => cmdscope::config::StateBackend::File(std::path::absolute(path)?),
            None => config.state.clone(),
        };
        let default_prefix = self.token.as_deref().map(cmdscope::redis::default_prefix);
        let opened = cmdscope::backend::open(
            &backend,
            default_prefix.as_deref(),
            &cmdscope::deliver::DeliveryOptions::default(),
        );
        match (&backend, opened) {
            (cmdscope::config::StateBackend::File(path), Err(e))
                if format!("{e:#}").contains("already open") =>
            {
                anyhow::bail!(
                    "{} is open in a running host (a redb store has one process): ask that host (`--url`, or its HTTP API), or stop it first",
                    path.display()
                )
            }
            (_, opened) => opened,
        }
    }
}

/// The plugin host the CLI uses: compiles run in a child process (this binary as a compile
/// worker), so a component that takes too long is killed, not left compiling.
pub(crate) fn plugin_host(limits: &cmdscope::config::SandboxLimits) -> anyhow::Result<PluginHost> {
    let host = PluginHost::new(limits.clone())?;
    Ok(match cmdscope::plugin::Compiler::this_program() {
        Ok(compiler) => host.with_compiler(compiler),
        Err(e) => {
            eprintln!(
                "warning: cannot find this program to run compile workers ({e}); compiling in process"
            );
            host
        }
    })
}

fn check(path: &Path) -> ExitCode {
    match Config::load(path) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                println!("warning: {w}");
            }
            let c = &loaded.config;
            let languages: Vec<&str> = c.languages.iter().map(|l| l.as_str()).collect();
            println!(
                "{}: ok ({} commands, {} profiles, {} scopes, languages {})",
                c.source,
                c.commands.len(),
                c.profiles.len(),
                c.scopes.len(),
                languages.join(", ")
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in errors.iter() {
                println!("error: {e}");
            }
            ExitCode::FAILURE
        }
    }
}

/// Loads a config, printing warnings; prints errors and returns `None` when it is invalid.
pub(crate) fn load_or_print(path: &Path) -> Option<Loaded> {
    match Config::load(path) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                eprintln!("warning: {w}");
            }
            Some(loaded)
        }
        Err(errors) => {
            for e in errors.iter() {
                eprintln!("error: {e}");
            }
            None
        }
    }
}

fn print_plan(plan: &Plan, format: OutputFormat) -> anyhow::Result<()> {
    match format {
        OutputFormat::Json => println!("{}", serde_json::to_string(&plan.to_json())?),
        OutputFormat::Table => {
            for list in &plan.lists {
                println!("{}  (profile {})", list.key, list.profile);
                print_commands(&list.commands, "  ");
            }
            println!("menu button: {:?}", plan.menu_button);
        }
    }
    Ok(())
}

pub(crate) fn print_commands(commands: &[BotCommand], indent: &str) {
    let width = commands.iter().map(|c| c.command.len()).max().unwrap_or(0) + 1;
    for c in commands {
        println!("{indent}/{:<width$}  {}", c.command, c.description);
    }
    if commands.is_empty() {
        println!("{indent}(no commands)");
    }
}

fn status_word(status: &Status) -> String {
    status.to_string()
}

fn print_report(report: &SetupReport) {
    for ListOutcome { key, status } in &report.lists {
        println!("{key}: {}", status_word(status));
    }
    println!("menu button: {}", status_word(&report.menu_button));
    let count = |want: fn(&Status) -> bool| report.lists.iter().filter(|l| want(&l.status)).count();
    println!(
        "{} lists: {} set, {} unchanged, {} failed; menu button {}",
        report.lists.len(),
        count(|s| *s == Status::Set),
        count(|s| *s == Status::Unchanged),
        count(Status::is_failed),
        if report.menu_button.is_failed() {
            "failed".to_string()
        } else {
            status_word(&report.menu_button)
        }
    );
}
