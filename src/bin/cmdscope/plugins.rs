//! `cmdscope plugins check`, `cmdscope plugins test` and `cmdscope resolve`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use cmdscope::ChatType;
use cmdscope::config::SandboxLimits;
use cmdscope::plugin::{CompiledCache, PluginInfo, PluginSet, Rejected, cases};
use cmdscope::resolve::{FlagValue, UserContext};

use super::{
    CompiledCacheArgs, OutputFormat, StoreArgs, engine_for, load_or_print, plugin_host,
    print_commands,
};

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
    /// Golden tests before a deploy: run a cases file (JSON lines) through PLUGIN and print
    /// every case whose answer is not the expected one, then a summary. Exit 1 on any failure.
    /// With --compare, also list every case whose answer differs from OLD's.
    Test(TestArgs),
}

#[derive(Args)]
pub(crate) struct TestArgs {
    plugin: PathBuf,
    /// Resolver cases: `{"context": {...}, "profile": "user"}` (a bare context: no
    /// expectation). Translator cases: `{"key": "shop.cart.desc", "locale": "ru", "text": "..."}`
    /// (`"text": null`: no translation expected).
    #[arg(long)]
    cases: PathBuf,
    /// Use this config's sandbox limits and plugin settings, and check that every profile
    /// the resolver may return (and returns) is defined.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The version serving now: list the cases whose answer the new one changes.
    #[arg(long, value_name = "OLD.wasm")]
    compare: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    format: OutputFormat,
    /// The cache `serve` and `watch` use: testing on the host's machine warms it.
    #[command(flatten)]
    cache: CompiledCacheArgs,
}

#[derive(Args)]
pub(crate) struct ResolveArgs {
    #[command(flatten)]
    user: UserArgs,
    #[arg(long, value_enum, default_value_t = OutputFormat::Json)]
    format: OutputFormat,
}

/// A config, its plugins and one user, as `resolve` and `explain` take them.
#[derive(clap::Args)]
pub(crate) struct UserArgs {
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
}

impl UserArgs {
    fn context(&self) -> UserContext {
        UserContext {
            user_id: self.user_id,
            chat_id: self.chat_id,
            chat_type: self.chat_type,
            language_code: self.language_code.clone(),
            flags: self.flags.iter().cloned().collect(),
            is_chat_admin: self.chat_admin,
        }
    }
}

#[derive(clap::Args)]
pub(crate) struct ExplainArgs {
    #[command(flatten)]
    user: UserArgs,
    #[command(flatten)]
    store: StoreArgs,
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
    match command {
        PluginsCommand::Check {
            dir,
            config,
            format,
        } => check(dir, config, format),
        PluginsCommand::Test(args) => test(args),
    }
}

fn check(dir: PathBuf, config: Option<PathBuf>, format: OutputFormat) -> anyhow::Result<ExitCode> {
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
    let ResolveArgs { user: args, format } = args;
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
    let ctx = args.context();
    let resolution = engine.resolve_async(&ctx).await;
    let menu = engine.menu_of(&resolution.profile, &ctx);
    match format {
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

fn test(args: TestArgs) -> anyhow::Result<ExitCode> {
    let config = match &args.config {
        Some(path) => match load_or_print(path) {
            Some(loaded) => Some(loaded.config),
            None => return Ok(ExitCode::FAILURE),
        },
        None => None,
    };
    let limits = config
        .as_ref()
        .map(|c| c.sandbox.clone())
        .unwrap_or_default();
    let settings = config
        .as_ref()
        .map(|c| c.plugin_settings.clone())
        .unwrap_or_default();
    let mut host = plugin_host(&limits)?;
    // Python and JavaScript components take seconds to compile: keep what was compiled.
    if let Some(dir) = args.cache.dir() {
        match CompiledCache::open(&dir) {
            Ok(cache) => host = host.with_compiled_cache(cache),
            Err(e) => eprintln!(
                "warning: compiled cache {} unusable ({e}); compiling without it",
                dir.display()
            ),
        }
    }
    let load = |path: &PathBuf| {
        host.load_file(path, &settings)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    };
    let plugin = load(&args.plugin)?;
    if let Some(config) = &config {
        plugin
            .check_profiles(config)
            .map_err(|e| anyhow::anyhow!("{}: {e}", args.plugin.display()))?;
    }
    let old = args.compare.as_ref().map(load).transpose()?;
    if let Some(old) = &old
        && old.info().world != plugin.info().world
    {
        anyhow::bail!(
            "{} is a {} and {} a {}: compare two versions of one plugin",
            args.plugin.display(),
            plugin.info().world,
            args.compare.as_ref().unwrap().display(),
            old.info().world
        );
    }
    let text = std::fs::read_to_string(&args.cases)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", args.cases.display()))?;
    let (parsed, bad) = cases::parse(&text);
    let defined = |p: &str| config.as_ref().is_none_or(|c| c.profiles.contains_key(p));
    let report = cases::run(&plugin, &parsed, old.as_ref(), Some(&defined));
    let file = args.cases.display();
    let info = plugin.info();
    match args.format {
        OutputFormat::Json => {
            let subject = |s: &str| serde_json::from_str::<Value>(s).unwrap_or(json!(s));
            let answer = |a: &cases::Answer| match a {
                cases::Answer::Profile(p) => json!({"profile": p}),
                cases::Answer::Text(t) => json!({"text": t}),
                cases::Answer::Error(e) => json!({"error": e}),
            };
            println!(
                "{}",
                json!({
                    "plugin": info_json(info),
                    "cases": report.cases,
                    "passed": report.passed,
                    "unchecked": report.unchecked,
                    "failed": report.failures.iter().map(|f| json!({
                        "line": f.line,
                        "case": subject(&f.subject),
                        "expected": f.expected.as_ref().map(answer),
                        "got": answer(&f.got),
                    })).collect::<Vec<_>>(),
                    "bad_lines": bad.iter().map(|b| json!({"line": b.line, "error": b.error})).collect::<Vec<_>>(),
                    "changed": report.changes.iter().map(|c| json!({
                        "line": c.line,
                        "case": subject(&c.subject),
                        "old": answer(&c.old),
                        "new": answer(&c.new),
                    })).collect::<Vec<_>>(),
                })
            );
        }
        OutputFormat::Table => {
            for b in &bad {
                println!("{file}:{}: not a case: {}", b.line, b.error);
            }
            for f in &report.failures {
                match &f.expected {
                    Some(want) => println!(
                        "{file}:{}: FAIL {}: expected {want}, got {}",
                        f.line, f.subject, f.got
                    ),
                    None => println!("{file}:{}: FAIL {}: {}", f.line, f.subject, f.got),
                }
            }
            for c in &report.changes {
                println!(
                    "{file}:{}: CHANGES {}: {} -> {}",
                    c.line, c.subject, c.old, c.new
                );
            }
            let mut summary = format!(
                "{} ({} {}): {} cases, {} passed, {} failed",
                args.plugin.display(),
                info.name,
                info.version,
                report.cases,
                report.passed,
                report.failures.len() + bad.len()
            );
            if report.unchecked > 0 {
                summary.push_str(&format!(", {} without expectation", report.unchecked));
            }
            if let Some(old) = &args.compare {
                summary.push_str(&format!(
                    "; {} answers change from {}",
                    report.changes.len(),
                    old.display()
                ));
            }
            println!("{summary}");
        }
    }
    Ok(if report.ok() && bad.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `cmdscope explain`: why a user sees their menu, from the config, its plugins and the store
/// the host uses (one JSON object, as `GET /v1/explain` answers).
pub(crate) async fn explain(args: ExplainArgs) -> anyhow::Result<ExitCode> {
    let user = &args.user;
    let Some(loaded) = load_or_print(&user.config) else {
        return Ok(ExitCode::FAILURE);
    };
    let config = loaded.config;
    let host = crate::plugin_host(&config.sandbox)?;
    let set = PluginSet::load(&host, &user.plugins, &config)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", user.plugins.display()))?;
    let lookup = &set as &dyn cmdscope::sources::PluginLookup;
    let (engine, _) = cmdscope::sources::engine(config.clone(), Some(lookup), None)
        .map_err(anyhow::Error::msg)?;
    let opened = args.store.open(&config)?;
    let plugin = |name: &str| {
        let plugin = set.loaded.iter().find(|p| p.info().name == name)?;
        Some(cmdscope::explain::PluginRef {
            name: plugin.info().name.clone(),
            version: plugin.info().version.clone(),
            sha256: plugin.info().sha256.clone(),
        })
    };
    let explained =
        cmdscope::explain::read(&engine, opened.store.as_ref(), plugin, &user.context()).await?;
    println!("{}", serde_json::to_string_pretty(&explained)?);
    Ok(ExitCode::SUCCESS)
}
