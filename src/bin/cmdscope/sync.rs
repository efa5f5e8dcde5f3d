//! `cmdscope sync-users` and the connection options it shares with `apply`: the Bot API
//! client, the state store and the pace.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use futures_util::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use cmdscope::config::StateBackend;
use cmdscope::deliver::{DeliveryOptions, HttpBotApi, TELEGRAM_API_URL};
use cmdscope::engine::Engine;
use cmdscope::manager::BatchSummary;
use cmdscope::redis;
use cmdscope::{CommandManager, UserContext};

/// How to reach the Bot API and where to remember what it holds.
#[derive(Args)]
pub(crate) struct Connection {
    /// Bot token (or set CMDSCOPE_BOT_TOKEN). Never printed.
    #[arg(long, env = "CMDSCOPE_BOT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Bot API server, e.g. an emulator.
    #[arg(long, default_value = TELEGRAM_API_URL)]
    pub api_url: String,
    /// Where to remember what Telegram holds: a file (created when missing), or a Redis URL
    /// (`redis://127.0.0.1:6379`) shared by all workers of the bot, which then also share the
    /// pace and take turns per chat. A second identical run sends nothing; an interrupted run
    /// resumes. Default: the config's `[state]`, else memory (state lasts one run).
    #[arg(long)]
    pub state: Option<String>,
    /// Prefix of the bot's keys in Redis (default: the config's `[state] key_prefix`, else
    /// `cmdscope:<bot id>`).
    #[arg(long)]
    pub redis_prefix: Option<String>,
    /// Bot API requests per second for the whole bot.
    #[arg(long, default_value_t = 25.0)]
    pub pace: f64,
    /// Requests that may go at once after a quiet spell.
    #[arg(long, default_value_t = 5)]
    pub burst: u32,
}

impl Connection {
    pub(crate) fn token(&self) -> anyhow::Result<&str> {
        self.token
            .as_deref()
            .ok_or_else(|| anyhow::anyhow!("--token (or CMDSCOPE_BOT_TOKEN) is required"))
    }

    pub(crate) fn delivery_options(&self) -> anyhow::Result<DeliveryOptions> {
        if self.pace.is_nan() || self.pace <= 0.0 {
            anyhow::bail!("--pace must be above 0 (requests per second)");
        }
        Ok(DeliveryOptions {
            pace: self.pace,
            burst: self.burst,
            ..DeliveryOptions::default()
        })
    }

    /// Our HTTP client for the Bot API.
    pub(crate) fn api(&self) -> anyhow::Result<Arc<HttpBotApi>> {
        Ok(Arc::new(HttpBotApi::new(self.token()?, &self.api_url)?))
    }

    /// Where the state lives: `--state` (a Redis URL or a file, relative to the working
    /// directory), else the config's `[state]`, with the Redis prefix filled in.
    pub(crate) fn backend(&self, config: &cmdscope::Config) -> anyhow::Result<StateBackend> {
        let backend = match self.state.as_deref() {
            Some(url) if url.starts_with("redis://") || url.starts_with("rediss://") => {
                StateBackend::Redis {
                    url: url.to_string(),
                    key_prefix: None,
                }
            }
            Some(path) => StateBackend::File(std::path::absolute(Path::new(path))?),
            None => config.state.clone(),
        };
        Ok(match backend {
            StateBackend::Redis { url, key_prefix } => {
                StateBackend::Redis {
                    url,
                    key_prefix: Some(self.redis_prefix.clone().or(key_prefix).unwrap_or_else(
                        || redis::default_prefix(self.token.as_deref().unwrap_or("")),
                    )),
                }
            }
            other => other,
        })
    }

    /// A manager for `engine` over our HTTP client and the chosen store (opened as the host
    /// opens it: `cmdscope::backend`).
    pub(crate) fn manager(&self, engine: Arc<Engine>) -> anyhow::Result<CommandManager> {
        let options = self.delivery_options()?;
        let opened = cmdscope::backend::open(&self.backend(engine.config())?, None, &options)?;
        Ok(opened.manager(
            Arc::new(arc_swap::ArcSwap::new(engine)),
            self.api()?,
            options,
        ))
    }
}

#[derive(Args)]
pub(crate) struct SyncUsersArgs {
    #[arg(long)]
    config: PathBuf,
    /// Folder of `.wasm` plugins (the resolver and translators the config names).
    #[arg(long)]
    plugins: Option<PathBuf>,
    /// One user context per line: {"user_id":1,"chat_id":1,"chat_type":"private",
    /// "language_code":"en","flags":{"registered":true}}
    #[arg(long)]
    users: PathBuf,
    #[command(flatten)]
    connection: Connection,
    /// Users updated at once (the pace still holds for the whole bot).
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Serve Prometheus metrics at http://ADDR/metrics while running (e.g. 127.0.0.1:9000).
    #[arg(long)]
    metrics: Option<std::net::SocketAddr>,
}

pub(crate) async fn sync_users(args: SyncUsersArgs) -> anyhow::Result<ExitCode> {
    cmdscope::metrics::set_enabled(args.metrics.is_some());
    if let Some(addr) = args.metrics {
        cmdscope::metrics::serve_prometheus(addr)
            .await
            .map_err(anyhow::Error::msg)?;
    }
    let Some(loaded) = crate::load_or_print(&args.config) else {
        return Ok(ExitCode::FAILURE);
    };
    let engine = Arc::new(crate::engine_for(loaded.config, args.plugins.as_deref())?);
    // With a lasting store, the users become known users: a `serve` on the same store brings
    // them to later rule changes without a message of theirs.
    let lasting = !matches!(
        args.connection.backend(engine.config())?,
        StateBackend::Memory
    );
    let known = engine.config().known_users;
    let manager =
        args.connection
            .manager(engine)?
            .with_known_users(cmdscope::manager::KnownUserPolicy {
                remember: lasting && known.max > 0,
                max: known.max,
            });

    // The file is read as it is processed, never whole: memory does not grow with it. One
    // quick pass first counts the lines for the progress bar.
    let open = || {
        std::fs::File::open(&args.users)
            .map(std::io::BufReader::new)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", args.users.display()))
    };
    let lines = open()?.lines().count();
    let progress = ProgressBar::new(lines as u64).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} users  {per_sec}  eta {eta}  {msg}")
            .expect("a valid template"),
    );
    let invalid = std::cell::Cell::new(0usize);
    let users = UsersFile {
        path: &args.users,
        lines: open()?.lines().enumerate(),
        invalid: &invalid,
        progress: &progress,
    };
    let before = manager.delivery_stats();
    let mut summary = BatchSummary::default();
    let mut outcomes = std::pin::pin!(manager.update_stream(users, args.concurrency));
    while let Some(outcome) = outcomes.next().await {
        if outcome.status.is_failed() {
            progress.suspend(|| eprintln!("user {}: {}", outcome.user_id, outcome.status));
        }
        summary.count(&outcome);
        progress.inc(1);
        if summary.users % 1024 == 0 {
            progress.set_message(format!(
                "{} applied, {} failed",
                summary.applied, summary.failed
            ));
        }
    }
    progress.finish_and_clear();
    let invalid = invalid.get();
    summary.count_calls(&before, &manager.delivery_stats());

    let calls = |m: &str| summary.calls.get(m).copied().unwrap_or(0);
    let line = json!({
        "users": summary.users,
        "calls": {
            "setMyCommands": calls("setMyCommands"),
            "deleteMyCommands": calls("deleteMyCommands"),
        },
        "unchanged": summary.unchanged,
        "applied": summary.applied,
        "failed": summary.failed,
        "superseded": summary.superseded,
        "invalid_lines": invalid,
        "state": manager.store().describe(),
    });
    println!("{line}");
    Ok(if summary.failed == 0 && invalid == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The users of a JSON-lines file, read line by line; a bad line is reported with its number,
/// counted and skipped.
struct UsersFile<'a, L> {
    path: &'a Path,
    lines: L,
    invalid: &'a std::cell::Cell<usize>,
    progress: &'a ProgressBar,
}

impl<L: Iterator<Item = (usize, std::io::Result<String>)>> Iterator for UsersFile<'_, L> {
    type Item = UserContext;

    fn next(&mut self) -> Option<UserContext> {
        loop {
            let (i, line) = self.lines.next()?;
            let why = match line {
                Ok(line) if line.trim().is_empty() => continue,
                Ok(line) => match parse_user(&line) {
                    Ok(ctx) => return Some(ctx),
                    Err(why) => why,
                },
                Err(e) => e.to_string(),
            };
            self.invalid.set(self.invalid.get() + 1);
            self.progress.inc(1);
            self.progress
                .suspend(|| eprintln!("{}:{}: skipped: {why}", self.path.display(), i + 1));
        }
    }
}

fn parse_user(line: &str) -> Result<UserContext, String> {
    UserContext::from_json_str(line).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_lines_are_counted_and_the_rest_kept() {
        let text = "{\"user_id\":1}\n\nnot json\n{\"user_id\":2,\"chat_type\":\"channel\"}\n{\"user_id\":3,\"chat_type\":\"group\"}\n{\"user_id\":4,\"chat_id\":-1,\"chat_type\":\"group\"}\n";
        let invalid = std::cell::Cell::new(0);
        let progress = ProgressBar::hidden();
        let users = UsersFile {
            path: Path::new("u.jsonl"),
            lines: std::io::BufRead::lines(text.as_bytes()).enumerate(),
            invalid: &invalid,
            progress: &progress,
        };
        let ids: Vec<i64> = users.map(|u| u.user_id).collect();
        assert_eq!(invalid.get(), 3);
        assert_eq!(ids, [1, 4]);
        assert!(
            parse_user("{\"user_id\":2,\"chat_type\":\"channel\"}")
                .unwrap_err()
                .starts_with("chat_type: unknown variant `channel`")
        );
    }
}
