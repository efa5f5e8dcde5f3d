//! `cmdscope rollout`: rule changes on a running `serve`, through its API.

use std::process::ExitCode;

use clap::Subcommand;
use serde_json::Value;

/// How to reach a running `serve`.
#[derive(clap::Args)]
pub(crate) struct Server {
    /// The server's address, as `serve --listen` gave it.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The server's API key.
    #[arg(long, env = "CMDSCOPE_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
}

#[derive(Subcommand)]
pub(crate) enum RolloutCommand {
    /// Stage a resolver version on a share of users: the candidate serves the users whose
    /// stable hash falls within PERCENT (the same users on every worker and every restart),
    /// the current version everyone else. Aborted by itself past `[rollout]`'s fallbacks.
    Start {
        /// The candidate component.
        candidate: std::path::PathBuf,
        #[arg(long)]
        percent: f64,
        #[command(flatten)]
        server: Server,
    },
    /// The rollout under way: share, and both versions' answers, fallbacks and latency.
    Status {
        #[command(flatten)]
        server: Server,
    },
    /// Make the candidate the version for everyone (written over the plugin's file).
    Promote {
        #[command(flatten)]
        server: Server,
    },
    /// Take the candidate back: the canary users are reconciled back.
    Abort {
        #[command(flatten)]
        server: Server,
    },
    /// Put a plugin's previous version back in one step: the host writes the version that
    /// served before the current one over the plugin's file (by rename) and reconciles every
    /// user it moves. Prints what was written where.
    Rollback {
        /// The plugin's name (as it reports it, e.g. `tiered-resolver`).
        name: String,
        #[command(flatten)]
        server: Server,
    },
    /// The versions of a plugin kept for a rollback (the last five that served).
    Versions {
        name: String,
        #[command(flatten)]
        server: Server,
    },
}

pub(crate) async fn run(command: RolloutCommand) -> anyhow::Result<ExitCode> {
    let client = reqwest::Client::new();
    let (request, server) = match &command {
        RolloutCommand::Start {
            candidate,
            percent,
            server,
        } => {
            let bytes = std::fs::read(candidate)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", candidate.display()))?;
            (
                client
                    .post(format!("{}/v1/rollouts?percent={percent}", base(server)))
                    .header("content-type", "application/wasm")
                    .body(bytes),
                server,
            )
        }
        RolloutCommand::Status { server } => {
            (client.get(format!("{}/v1/rollouts", base(server))), server)
        }
        RolloutCommand::Promote { server } => (
            client.post(format!("{}/v1/rollouts/current/promote", base(server))),
            server,
        ),
        RolloutCommand::Abort { server } => (
            client.post(format!("{}/v1/rollouts/current/abort", base(server))),
            server,
        ),
        RolloutCommand::Rollback { name, server } => (
            client.post(format!("{}/v1/plugins/{name}/rollback", base(server))),
            server,
        ),
        RolloutCommand::Versions { name, server } => (
            client.get(format!("{}/v1/plugins/{name}/versions", base(server))),
            server,
        ),
    };
    let request = match &server.api_key {
        Some(key) => request.bearer_auth(key),
        None => request,
    };
    let response = request
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach {}: {e}", server.url))?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let why = body["error"].as_str().unwrap_or("no reason given");
        eprintln!("error: {status}: {why}");
        for reason in body["reasons"].as_array().into_iter().flatten() {
            eprintln!("  {}", reason.as_str().unwrap_or(""));
        }
        return Ok(ExitCode::FAILURE);
    }
    match command {
        RolloutCommand::Rollback { .. } => println!(
            "{}: {} -> {} (written over {}; the host reloads it and reconciles)",
            body["plugin"].as_str().unwrap_or(""),
            body["from"].as_str().unwrap_or(""),
            body["to"].as_str().unwrap_or(""),
            body["file"].as_str().unwrap_or("")
        ),
        RolloutCommand::Versions { .. } => {
            for v in body.as_array().into_iter().flatten() {
                println!(
                    "{}\t{}\t{}",
                    v["version"].as_str().unwrap_or(""),
                    v["sha256"].as_str().unwrap_or(""),
                    v["file"].as_str().unwrap_or("")
                );
            }
        }
        RolloutCommand::Status { .. } if body.is_null() => println!("no rollout is under way"),
        RolloutCommand::Start { .. } | RolloutCommand::Status { .. } => print_status(&body),
        RolloutCommand::Promote { .. } => println!(
            "{} {}: promoted (the version for everyone)",
            body["plugin"].as_str().unwrap_or(""),
            body["version"].as_str().unwrap_or("")
        ),
        RolloutCommand::Abort { .. } => println!(
            "{} {}: aborted (the canary users go back)",
            body["plugin"].as_str().unwrap_or(""),
            body["version"].as_str().unwrap_or("")
        ),
    }
    Ok(ExitCode::SUCCESS)
}

fn print_status(body: &Value) {
    let side = |v: &Value| {
        format!(
            "{} answers, {} fallbacks, p50 {} us, p99 {} us",
            v["answers"], v["fallbacks"], v["p50_us"], v["p99_us"]
        )
    };
    println!(
        "{} {} on {}% of users (sha256 {})",
        body["plugin"].as_str().unwrap_or(""),
        body["version"].as_str().unwrap_or(""),
        body["percent"],
        body["sha256"].as_str().unwrap_or("")
    );
    println!("  candidate: {}", side(&body["candidate"]));
    if !body["current"].is_null() {
        println!("  current:   {}", side(&body["current"]));
    }
    println!(
        "  calls made by reconciliations since it started: {}",
        body["calls"]
    );
}

fn base(server: &Server) -> &str {
    server.url.trim_end_matches('/')
}
