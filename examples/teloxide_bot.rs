//! A shop bot on teloxide whose command menus cmdscope keeps right, through plugin and config
//! changes, with no restart.
//!
//! ```sh
//! cargo run --example teloxide_bot -- --config examples/shop.toml --plugins plugins-dir \
//!     --token "$BOT_TOKEN" [--api-url http://127.0.0.1:8081/] [--state bot.state]
//! ```
//!
//! Users write `/register`, `/buy`, `/upgrade`, `/ban`; the bot keeps their flags in a small
//! in-memory table and updates the sender's menu through the host on each message. A command
//! the user does not have is answered with the one they meant (`Host::suggest`: from their
//! own menu, in their language). Drop a new
//! `tiered-resolver` version into the plugin folder and every known user's menu follows it,
//! without a message of theirs.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use clap::Parser;
use teloxide::dispatching::UpdateFilterExt;
use teloxide::prelude::*;
use teloxide::types::Update;

use cmdscope::deliver::TeloxideApi;
use cmdscope::{Host, UserContext};

#[derive(Parser)]
struct Args {
    #[arg(long)]
    config: PathBuf,
    #[arg(long)]
    plugins: PathBuf,
    #[arg(long, env = "CMDSCOPE_BOT_TOKEN", hide_env_values = true)]
    token: String,
    /// A Bot API server other than Telegram's (the emulator).
    #[arg(long)]
    api_url: Option<url::Url>,
    /// Where applied state and known users live (default: the config's `[state]`).
    #[arg(long)]
    state: Option<PathBuf>,
}

/// What the bot knows about each user: the flags its resolver plugin decides with.
#[derive(Default, Clone)]
struct Account {
    registered: bool,
    premium: bool,
    banned: bool,
    orders: i64,
}

type Accounts = Arc<Mutex<HashMap<i64, Account>>>;

fn context(msg: &Message, account: &Account) -> Option<UserContext> {
    let user = msg.from.as_ref()?;
    let mut ctx = if msg.chat.is_private() {
        UserContext::private(user.id.0 as i64)
    } else {
        UserContext::in_group(user.id.0 as i64, msg.chat.id.0)
    };
    if let Some(lang) = &user.language_code {
        ctx = ctx.language(lang);
    }
    Some(
        ctx.flag("registered", account.registered)
            .flag("premium", account.premium)
            .flag("banned", account.banned)
            .flag("orders", account.orders),
    )
}

async fn on_message(bot: Bot, msg: Message, host: Host, accounts: Accounts) -> ResponseResult<()> {
    let Some(user) = msg.from.as_ref() else {
        return Ok(());
    };
    let id = user.id.0 as i64;
    let command = msg
        .text()
        .unwrap_or("")
        .split_whitespace()
        .next()
        .unwrap_or("");
    let account = {
        let mut accounts = accounts.lock().unwrap_or_else(|p| p.into_inner());
        let account = accounts.entry(id).or_default();
        match command {
            "/register" => account.registered = true,
            "/buy" if account.registered => account.orders += 1,
            "/upgrade" if account.registered => account.premium = true,
            "/ban" => account.banned = true,
            _ => {}
        }
        account.clone()
    };
    let Some(ctx) = context(&msg, &account) else {
        return Ok(());
    };
    // The sender's menu follows their new state; a call only when it changes.
    let outcome = host.update_user(&ctx).await;
    let actions = ["/register", "/buy", "/upgrade", "/ban"];
    let reply = match host.suggest(&ctx, command).await {
        // A command of their menu, or one of the bot's own actions.
        Some(found) if found.exact => None,
        _ if actions.contains(&command) || !command.starts_with('/') => None,
        Some(meant) => Some(format!(
            "Unknown command {command}. Did you mean /{} ({})?",
            meant.command, meant.description
        )),
        None => Some(format!("Unknown command {command}.")),
    };
    let text = reply.unwrap_or_else(|| {
        format!(
            "{command}: your menu is `{}` ({})",
            outcome.resolution.profile, outcome.status
        )
    });
    bot.send_message(msg.chat.id, text).await?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Plugins compile in a child process of this program: it must answer as a compile worker.
    cmdscope::plugin::run_compile_worker_if_requested();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CMDSCOPE_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let args = Args::parse();
    let mut bot = Bot::new(&args.token);
    if let Some(url) = args.api_url {
        bot = bot.set_api_url(url);
    }

    let mut builder = Host::builder(&args.config)
        .plugins(&args.plugins)
        .compiler(cmdscope::plugin::Compiler::this_program()?);
    if let Some(state) = &args.state {
        builder = builder.state(cmdscope::config::StateBackend::File(state.clone()));
    }
    let host = builder.build().await?;
    let report = host.start(Arc::new(TeloxideApi::new(bot.clone()))).await?;
    println!(
        "ready: {} configured lists, {} failed",
        report.lists.len(),
        report.failures().count()
    );

    let accounts: Accounts = Arc::default();
    let handler = Update::filter_message().endpoint(on_message);
    let mut dispatcher = Dispatcher::builder(bot, handler)
        .dependencies(dptree::deps![host.clone(), accounts])
        .build();
    let stop = dispatcher.shutdown_token();
    tokio::spawn(async move {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).unwrap();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
        if let Ok(done) = stop.shutdown() {
            done.await;
        }
    });
    dispatcher.dispatch().await;
    host.shutdown().await;
    println!("stopped");
    Ok(())
}
