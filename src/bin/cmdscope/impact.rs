//! `cmdscope impact`: what a candidate plugin version or config would do to the known users
//! of the store a host uses, before it serves (see `cmdscope::impact`).

use std::path::PathBuf;
use std::process::ExitCode;

use cmdscope::explain::PluginRef;
use cmdscope::impact::{Change, Options};
use cmdscope::plugin::{Plugin, PluginSet};

use super::{OutputFormat, StoreArgs, load_or_print, plugin_host};

#[derive(clap::Args)]
pub(crate) struct ImpactArgs {
    /// The config serving now.
    #[arg(long, required_unless_present = "url")]
    config: Option<PathBuf>,
    /// The plugin folder serving now.
    #[arg(long, required_unless_present = "url")]
    plugins: Option<PathBuf>,
    /// Ask a running `serve` instead (POST /v1/impact): its own config, plugins and store
    /// (a redb store is open in the running host; Redis can be read from here too).
    #[arg(long, conflicts_with_all = ["config", "plugins", "state"])]
    url: Option<String>,
    /// The server's API key, with --url.
    #[arg(
        long,
        env = "CMDSCOPE_API_KEY",
        hide_env_values = true,
        requires = "url"
    )]
    api_key: Option<String>,
    #[command(flatten)]
    store: StoreArgs,
    /// A new version of a plugin (a `.wasm` component), put in place of the one of its name.
    #[arg(long, required_unless_present = "candidate_config")]
    candidate: Option<PathBuf>,
    /// A new config, served with the plugins (and --candidate, when given).
    #[arg(long)]
    candidate_config: Option<PathBuf>,
    /// The bot's pace, requests per second (the host's default: 25).
    #[arg(long, default_value_t = Options::default().pace)]
    pace: f64,
    /// List every user whose menu changes or who needs a call (JSON only).
    #[arg(long)]
    list_users: bool,
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    format: OutputFormat,
}

pub(crate) async fn run(args: ImpactArgs) -> anyhow::Result<ExitCode> {
    if let Some(url) = &args.url {
        return remote(url, &args).await;
    }
    let (Some(config_path), Some(plugins)) = (&args.config, &args.plugins) else {
        anyhow::bail!("--config and --plugins are required without --url");
    };
    let Some(loaded) = load_or_print(config_path) else {
        return Ok(ExitCode::FAILURE);
    };
    let config = loaded.config;
    let new_config = match &args.candidate_config {
        Some(path) => match load_or_print(path) {
            Some(loaded) => Some(loaded.config),
            None => {
                eprintln!("error: the candidate config {} is invalid", path.display());
                return Ok(ExitCode::FAILURE);
            }
        },
        None => None,
    };
    let host = plugin_host(&config.sandbox)?;
    let set = PluginSet::load(&host, plugins, &config)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", plugins.display()))?;
    for rejected in &set.rejected {
        eprintln!("warning: {}: {}", rejected.file, rejected.error);
    }
    let lookup = &set as &dyn cmdscope::sources::PluginLookup;
    let (now, _) = cmdscope::sources::engine(config.clone(), Some(lookup), None)
        .map_err(anyhow::Error::msg)?;

    let target_config = new_config.clone().unwrap_or_else(|| config.clone());
    let mut changes = Vec::new();
    let candidate: Option<Plugin> = match &args.candidate {
        None => None,
        Some(path) => {
            let bytes = std::fs::read(path)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
            let file = path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            match host.load_untrusted(&bytes, &file, &target_config.plugin_settings) {
                Ok(plugin) => {
                    let info = plugin.info();
                    changes.push(Change::Plugin {
                        candidate: PluginRef::of(plugin.info()),
                        replaces: set
                            .loaded
                            .iter()
                            .find(|p| p.info().name == info.name)
                            .map(|p| PluginRef::of(p.info())),
                    });
                    Some(plugin)
                }
                Err(e) => {
                    eprintln!("error: the candidate {} does not load: {e}", path.display());
                    return Ok(ExitCode::FAILURE);
                }
            }
        }
    };
    if let Some(path) = &args.candidate_config {
        changes.push(Change::Config {
            source: path.display().to_string(),
        });
    }
    let after = match cmdscope::impact::candidate_engine(
        target_config,
        Some(lookup),
        &set.loaded,
        candidate.as_ref(),
        None,
    ) {
        Ok(engine) => engine,
        Err(refused) => {
            for problem in &refused.0 {
                eprintln!("error: the candidate cannot serve: {problem}");
            }
            return Ok(ExitCode::FAILURE);
        }
    };
    if args.pace.is_nan() || args.pace <= 0.0 {
        anyhow::bail!("--pace must be above 0 (requests per second)");
    }
    let opened = args.store.open(&config)?;
    let options = Options {
        pace: args.pace,
        list_users: args.list_users,
        ..Options::default()
    };
    let report =
        cmdscope::impact::impact(&now, &after, opened.store.as_ref(), changes, &options).await?;
    print(&report, args.format)?;
    Ok(ExitCode::SUCCESS)
}

fn print(report: &cmdscope::impact::Impact, format: OutputFormat) -> anyhow::Result<()> {
    match format {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(report)?),
        OutputFormat::Table => print!("{}", cmdscope::impact::table(report)),
    }
    Ok(())
}

/// `--url`: the running host makes the report (its config, plugins, store and pace).
async fn remote(url: &str, args: &ImpactArgs) -> anyhow::Result<ExitCode> {
    let (body, content_type) = match (&args.candidate, &args.candidate_config) {
        (Some(wasm), None) => (std::fs::read(wasm), "application/wasm"),
        (None, Some(config)) => {
            let json = config.extension().is_some_and(|e| e == "json");
            (
                std::fs::read(config),
                if json {
                    "application/json"
                } else {
                    "application/toml"
                },
            )
        }
        _ => anyhow::bail!("with --url, give one of --candidate and --candidate-config"),
    };
    let path = args
        .candidate
        .as_ref()
        .or(args.candidate_config.as_ref())
        .expect("one was given");
    let body = body.map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let mut request = reqwest::Client::new()
        .post(format!(
            "{}/v1/impact?users={}",
            url.trim_end_matches('/'),
            args.list_users
        ))
        .header("content-type", content_type)
        .body(body);
    if let Some(key) = &args.api_key {
        request = request.bearer_auth(key);
    }
    let response = request
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach {url}: {e}"))?;
    let status = response.status();
    let text = response.text().await?;
    if !status.is_success() {
        let answer: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        eprintln!(
            "error: {status}: {}",
            answer["error"].as_str().unwrap_or(&text)
        );
        for reason in answer["reasons"].as_array().into_iter().flatten() {
            eprintln!("  {}", reason.as_str().unwrap_or(""));
        }
        return Ok(ExitCode::FAILURE);
    }
    let report: cmdscope::impact::Impact = serde_json::from_str(&text)?;
    print(&report, args.format)?;
    Ok(ExitCode::SUCCESS)
}
