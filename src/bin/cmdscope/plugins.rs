//! `cmdscope plugins check` and `cmdscope resolve`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use cmdscope::ChatType;
use cmdscope::config::SandboxLimits;
use cmdscope::plugin::{PluginInfo, PluginSet, Rejected};
use cmdscope::resolve::{FlagValue, UserContext};

use super::{OutputFormat, engine_for, load_or_print, plugin_host, print_commands};

#[derive(Subcommand)]
pub(crate) enum PluginsCommand {
    /// Load every `*.wasm` in DIR and print, per file, its name, world, version and profiles or
    /// locales, or why it was rejected. Exit 1 if any file was rejected.
    Check {
        dir: PathBuf,
        /// Also check resolvers' profiles against this config (and use its sandbox limits).
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
    },
}

#[derive(Args)]
pub(crate) struct ResolveArgs {
    #[arg(long)]
    config: PathBuf,
    #[arg(long)]
    plugins: PathBuf,
    #[arg(long)]
    user_id: i64,
    #[arg(long)]
    chat_id: Option<i64>,
    #[arg(long, default_value = "private", value_parser = parse_chat_type)]
    chat_type: ChatType,
    #[arg(long)]
    language_code: Option<String>,
    /// A flag as name=value: `true`/`false` are booleans, integers are integers, the rest text.
    #[arg(long = "flag", value_parser = parse_flag)]
    flags: Vec<(String, FlagValue)>,
    /// The user administers the group chat.
    #[arg(long)]
    chat_admin: bool,
    #[arg(long, value_enum, default_value_t = OutputFormat::Json)]
    format: OutputFormat,
}

fn parse_chat_type(s: &str) -> Result<ChatType, String> {
    ChatType::parse(s)
        .ok_or_else(|| format!("unknown chat type `{s}`: use private, group or supergroup"))
}

fn parse_flag(s: &str) -> Result<(String, FlagValue), String> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not name=value"))?;
    if name.is_empty() {
        return Err(format!("`{s}` has an empty flag name"));
    }
    Ok((name.to_string(), FlagValue::parse_cli(value)))
}

pub(crate) fn run(command: PluginsCommand) -> anyhow::Result<ExitCode> {
    let PluginsCommand::Check {
        dir,
        config,
        format,
    } = command;
    let (set, limits) = match &config {
        Some(path) => {
            let Some(loaded) = load_or_print(path) else {
                return Ok(ExitCode::FAILURE);
            };
            let host = plugin_host(&loaded.config.sandbox)?;
            (
                PluginSet::load(&host, &dir, &loaded.config)?,
                loaded.config.sandbox,
            )
        }
        None => {
            let host = plugin_host(&SandboxLimits::default())?;
            let mut set = PluginSet::default();
            for (path, result) in host.load_dir(&dir, &Default::default())? {
                match result {
                    Ok(p) => set.loaded.push(p),
                    Err(error) => set.rejected.push(Rejected {
                        file: path
                            .file_name()
                            .map(|f| f.to_string_lossy().into_owned())
                            .unwrap_or_default(),
                        error,
                    }),
                }
            }
            (set, SandboxLimits::default())
        }
    };
    let mut rows: Vec<(String, Value)> = set
        .loaded
        .iter()
        .map(|p| (p.info().file.clone(), info_json(p.info())))
        .chain(set.rejected.iter().map(|r| {
            (
                r.file.clone(),
                json!({"file": r.file, "status": "rejected", "error": r.error.to_string()}),
            )
        }))
        .collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    match format {
        OutputFormat::Json => {
            let plugins: Vec<Value> = rows.into_iter().map(|(_, v)| v).collect();
            println!(
                "{}",
                json!({"plugins": plugins, "timeout_ms": limits.timeout.as_millis() as u64})
            );
        }
        OutputFormat::Table => {
            for (file, row) in &rows {
                if row["status"] == "ok" {
                    let list = |k: &str| {
                        row[k].as_array().map(|a| {
                            a.iter()
                                .filter_map(Value::as_str)
                                .collect::<Vec<_>>()
                                .join(", ")
                        })
                    };
                    let what = match row["world"].as_str() {
                        Some("resolver") => {
                            format!("profiles: {}", list("profiles").unwrap_or_default())
                        }
                        _ => format!("locales: {}", list("locales").unwrap_or_default()),
                    };
                    println!(
                        "{file}: ok  {} {} {}  {what}  sha256 {}",
                        row["name"].as_str().unwrap_or(""),
                        row["world"].as_str().unwrap_or(""),
                        row["version"].as_str().unwrap_or(""),
                        &row["sha256"].as_str().unwrap_or("")[..12]
                    );
                } else {
                    println!("{file}: rejected: {}", row["error"].as_str().unwrap_or(""));
                }
            }
            if rows.is_empty() {
                println!("no *.wasm files in {}", dir.display());
            }
        }
    }
    Ok(if set.rejected.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn info_json(info: &PluginInfo) -> Value {
    let mut v = json!({
        "file": info.file, "status": "ok", "name": info.name, "world": info.world.to_string(),
        "version": info.version, "interface": info.interface, "sha256": info.sha256,
    });
    match info.world {
        cmdscope::plugin::World::Resolver => v["profiles"] = json!(info.profiles),
        cmdscope::plugin::World::Translator => v["locales"] = json!(info.locales),
    }
    v
}

pub(crate) async fn resolve(args: ResolveArgs) -> anyhow::Result<ExitCode> {
    let Some(loaded) = load_or_print(&args.config) else {
        return Ok(ExitCode::FAILURE);
    };
    if loaded.config.resolver.is_none() {
        anyhow::bail!(
            "{} names no `resolver` plugin: add resolver = \"<plugin name>\"",
            loaded.config.source
        );
    }
    let engine = engine_for(loaded.config, Some(&args.plugins))?;
    let ctx = UserContext {
        user_id: args.user_id,
        chat_id: args.chat_id,
        chat_type: args.chat_type,
        language_code: args.language_code,
        flags: args.flags.into_iter().collect(),
        is_chat_admin: args.chat_admin,
    };
    let resolution = engine.resolve_async(&ctx).await;
    let menu = engine.menu_of(&resolution.profile, &ctx);
    match args.format {
        OutputFormat::Json => {
            let mut out = json!({"profile": resolution.profile, "source": resolution.source, "commands": &menu[..]});
            if let Some(e) = &resolution.error {
                out["error"] = json!(e.to_string());
            }
            println!("{out}");
        }
        OutputFormat::Table => {
            println!(
                "profile {} (from {})",
                resolution.profile, resolution.source
            );
            if let Some(e) = &resolution.error {
                println!("resolver failed, default profile used: {e}");
            }
            print_commands(&menu, "  ");
        }
    }
    Ok(ExitCode::SUCCESS)
}
