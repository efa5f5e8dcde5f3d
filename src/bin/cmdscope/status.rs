//! The status page of `cmdscope watch --http ADDR`: loaded plugins, recent reload events, cache
//! hit rates and a preview of the menu a user context would see. Server-rendered HTML (no
//! script), so it works in any browser and in `chromium --dump-dom`.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Query, State};
use axum::response::{Html, IntoResponse, Json};
use axum::routing::get;
use serde::Deserialize;
use serde_json::json;

use cmdscope::engine::Engine;
use cmdscope::plugin::{LivePlugins, ReloadEvent, ReloadKind};
use cmdscope::resolve::{FlagValue, UserContext};

/// Reload events kept for the page.
const RECENT: usize = 50;

/// What the page shows besides the live plugins and the engine.
#[derive(Default)]
pub(crate) struct Seen {
    recent: VecDeque<ReloadEvent>,
    /// Per file: the last rejection's reason, cleared when a version of it loads.
    last_error: BTreeMap<String, String>,
    /// Per plugin name: the folder generation when its serving version loaded.
    generation: BTreeMap<String, u64>,
}

impl Seen {
    pub(crate) fn record(&mut self, event: &ReloadEvent) {
        match event.event {
            ReloadKind::Rejected => {
                let why = event.error.clone().unwrap_or_default();
                self.last_error.insert(event.file.clone(), why);
            }
            ReloadKind::Loaded | ReloadKind::Reloaded => {
                self.last_error.remove(&event.file);
                if let Some(name) = &event.plugin {
                    self.generation.insert(name.clone(), event.generation);
                }
            }
            ReloadKind::Removed => {}
        }
        if self.recent.len() == RECENT {
            self.recent.pop_back();
        }
        self.recent.push_front(event.clone());
    }
}

#[derive(Clone)]
struct Page {
    live: Arc<LivePlugins>,
    engine: Arc<Engine>,
    seen: Arc<Mutex<Seen>>,
}

/// `/?user_id=5&language_code=es&flags=registered,premium&chat_id=..&chat_type=..`
#[derive(Deserialize)]
struct PreviewQuery {
    user_id: Option<i64>,
    chat_id: Option<i64>,
    chat_type: Option<String>,
    language_code: Option<String>,
    /// Comma-separated: `name` (true) or `name=value`.
    flags: Option<String>,
}

pub(crate) async fn serve(
    addr: SocketAddr,
    live: Arc<LivePlugins>,
    engine: Arc<Engine>,
    seen: Arc<Mutex<Seen>>,
) -> anyhow::Result<SocketAddr> {
    let app = Router::new()
        .route("/", get(page))
        .route("/status.json", get(status_json))
        .with_state(Page { live, engine, seen });
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("status page stopped: {e}");
        }
    });
    Ok(bound)
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn context(q: &PreviewQuery) -> Option<Result<UserContext, String>> {
    let user_id = q.user_id?;
    let mut ctx = UserContext::private(user_id);
    if let Some(kind) = q.chat_type.as_deref().filter(|k| !k.is_empty()) {
        match cmdscope::ChatType::parse(kind) {
            Some(t) => ctx.chat_type = t,
            None => return Some(Err(format!("unknown chat type `{kind}`"))),
        }
    }
    ctx.chat_id = q.chat_id;
    ctx.language_code = q.language_code.clone().filter(|l| !l.is_empty());
    for flag in q.flags.as_deref().unwrap_or("").split(',').map(str::trim) {
        if flag.is_empty() {
            continue;
        }
        let (name, value) = match flag.split_once('=') {
            Some((n, v)) => (n, FlagValue::parse_cli(v)),
            None => (flag, FlagValue::Bool(true)),
        };
        ctx.flags.insert(name.to_string(), value);
    }
    Some(Ok(ctx))
}

async fn page(State(p): State<Page>, Query(q): Query<PreviewQuery>) -> impl IntoResponse {
    // First, while no lock is held: it may call the resolver plugin.
    let preview = preview(&p, &q).await;
    let mut html = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>cmdscope status</title>\
         <style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}\
         td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}code{font-size:90%}</style>\
         </head><body><h1>cmdscope status</h1>",
    );
    let seen = p.seen.lock().unwrap_or_else(|e| e.into_inner());
    let _ = write!(
        html,
        "<p>Folder <code>{}</code>, generation <span id=\"generation\">{}</span>.</p>",
        escape(&p.live.dir().display().to_string()),
        p.live.generation()
    );

    html.push_str("<h2>Plugins</h2><table id=\"plugins\"><tr><th>name</th><th>world</th><th>version</th><th>sha256</th><th>generation</th><th>file</th><th>last error</th></tr>");
    let current = p.live.current();
    for (name, plugin) in &current {
        let info = plugin.info();
        let _ = write!(
            html,
            "<tr class=\"plugin\" data-name=\"{n}\"><td>{n}</td><td>{}</td><td>{}</td><td><code title=\"{sha}\">{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            info.world,
            escape(&info.version),
            &info.sha256[..12.min(info.sha256.len())],
            seen.generation
                .get(name)
                .map(|g| g.to_string())
                .unwrap_or_default(),
            escape(&info.file),
            escape(
                seen.last_error
                    .get(&info.file)
                    .map(String::as_str)
                    .unwrap_or("")
            ),
            n = escape(name),
            sha = escape(&info.sha256),
        );
    }
    html.push_str("</table>");
    let rejected: Vec<_> = seen
        .last_error
        .iter()
        .filter(|(file, _)| !current.iter().any(|(_, pl)| &pl.info().file == *file))
        .collect();
    if !rejected.is_empty() {
        html.push_str("<h3>Rejected files</h3><ul id=\"rejected\">");
        for (file, why) in rejected {
            let _ = write!(
                html,
                "<li><code>{}</code>: {}</li>",
                escape(file),
                escape(why)
            );
        }
        html.push_str("</ul>");
    }

    html.push_str("<h2>Caches</h2><table id=\"caches\"><tr><th>cache</th><th>hits</th><th>misses (plugin calls)</th><th>hit rate</th><th>entries</th></tr>");
    let mut caches: Vec<(String, cmdscope::output_cache::CacheStats)> = Vec::new();
    if let Some(stats) = p.engine.cache_stats() {
        caches.push(("resolver".into(), stats));
    }
    for (i, stats) in p.engine.translation_cache_stats().into_iter().enumerate() {
        caches.push((format!("translator {}", i + 1), stats));
    }
    for (name, s) in caches {
        let total = s.hits + s.misses;
        let rate = if total == 0 {
            0.0
        } else {
            s.hits as f64 * 100.0 / total as f64
        };
        let _ = write!(
            html,
            "<tr><td>{name}</td><td>{}</td><td>{}</td><td>{rate:.1}%</td><td>{}</td></tr>",
            s.hits, s.misses, s.entries
        );
    }
    html.push_str("</table>");

    html.push_str(&preview);

    html.push_str("<h2>Recent reload events</h2><table id=\"events\"><tr><th>event</th><th>plugin</th><th>file</th><th>generation</th><th>ms</th><th>error</th></tr>");
    for e in &seen.recent {
        let _ = write!(
            html,
            "<tr><td>{:?}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{}</td></tr>",
            e.event,
            escape(e.plugin.as_deref().unwrap_or("")),
            escape(&e.file),
            e.generation,
            e.ms,
            escape(e.error.as_deref().unwrap_or(""))
        );
    }
    html.push_str("</table></body></html>");
    Html(html)
}

/// The preview form and, for a given user, their profile and menu.
async fn preview(p: &Page, q: &PreviewQuery) -> String {
    let mut html = String::new();
    html.push_str("<h2>Preview</h2><form method=\"get\">user_id <input name=\"user_id\" value=\"");
    let _ = write!(
        html,
        "{}",
        q.user_id.map(|u| u.to_string()).unwrap_or_default()
    );
    let _ = write!(
        html,
        "\"> language_code <input name=\"language_code\" value=\"{}\"> flags <input name=\"flags\" value=\"{}\" placeholder=\"registered,premium\"> <button>preview</button></form>",
        escape(q.language_code.as_deref().unwrap_or("")),
        escape(q.flags.as_deref().unwrap_or(""))
    );
    match context(q) {
        None => {}
        Some(Err(why)) => {
            let _ = write!(html, "<p id=\"preview-error\">{}</p>", escape(&why));
        }
        Some(Ok(ctx)) => {
            let engine = p.engine.clone();
            let owned = ctx.clone();
            let (resolution, menu) = tokio::task::spawn_blocking(move || engine.menu_for(&owned))
                .await
                .expect("preview task");
            let _ = write!(
                html,
                "<div id=\"preview\"><p>Profile <b id=\"profile\">{}</b> (from {}){}</p><ul id=\"commands\">",
                escape(&resolution.profile),
                escape(&resolution.source),
                resolution
                    .error
                    .map(|e| format!(", resolver failed: {}", escape(&e.to_string())))
                    .unwrap_or_default()
            );
            for c in menu.iter() {
                let _ = write!(
                    html,
                    "<li><code>/{}</code> {}</li>",
                    escape(&c.command),
                    escape(&c.description)
                );
            }
            html.push_str("</ul></div>");
        }
    }

    html
}

async fn status_json(State(p): State<Page>) -> impl IntoResponse {
    let plugins: Vec<_> = p
        .live
        .current()
        .into_iter()
        .map(|(name, plugin)| {
            let info = plugin.info();
            json!({"name": name, "world": info.world.to_string(), "version": info.version, "sha256": info.sha256, "file": info.file})
        })
        .collect();
    let seen = p.seen.lock().unwrap_or_else(|e| e.into_inner());
    Json(json!({
        "generation": p.live.generation(),
        "plugins": plugins,
        "recent_events": seen.recent.iter().collect::<Vec<_>>(),
        "resolver_cache": p.engine.cache_stats().map(|s| json!({"hits": s.hits, "misses": s.misses, "entries": s.entries})),
    }))
}
