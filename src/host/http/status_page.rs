//! The status page (`GET /`) and its JSON (`GET /status.json`): what serves, the fleet, the
//! last events and rejections, cache hit rates, and a menu preview. Server-rendered HTML, no
//! script, so it works in any browser and in `chromium --dump-dom`.

use std::fmt::Write as _;

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::response::{Html, IntoResponse};
use serde_json::{Value, json};

use super::query::ContextQuery;
use super::{App, Host, HostEvent};
use crate::resolve::ContextError;

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

/// The status page: server-rendered HTML (no script), so it works in any browser and in
/// `chromium --dump-dom`.
pub(super) async fn page(State(app): State<App>, RawQuery(raw): RawQuery) -> impl IntoResponse {
    let q = ContextQuery::parse(raw.as_deref());
    // First, while no lock is held: it may call the resolver plugin.
    let preview = preview_html(&app.host, &q).await;
    let host = &app.host;
    let engine = host.engine();
    let mut html = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>cmdscope status</title>\
         <style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}\
         td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}code{font-size:90%}</style>\
         </head><body><h1>cmdscope status</h1>",
    );
    let recent = host.recent();
    let _ = write!(
        html,
        "<p>Config <code>{}</code>, generation <code id=\"rules\">{:016x}</code>; lists applied: <b id=\"ready\">{}</b>.</p>",
        escape(&host.inner.config_path.display().to_string()),
        engine.generation(),
        host.is_ready()
    );
    if let Some(release) = host.release() {
        let _ = write!(
            html,
            "<p>Serving release <b id=\"release\">{}</b>, published by {}.</p>",
            release.number,
            escape(&release.by)
        );
    }
    if let Some(refused) = host.refused_release() {
        let _ = write!(
            html,
            "<h3>Release refused (the last good one serves)</h3><p id=\"release-refused\">release {}: {}</p>",
            refused.release,
            escape(&refused.reason)
        );
    }
    let fleet = host.fleet();
    if !fleet.is_empty() {
        html.push_str(
            "<h2>Workers</h2><table id=\"workers\"><tr><th>worker</th><th>release</th><th>generation</th><th>refused</th></tr>",
        );
        for w in &fleet {
            let _ = write!(
                html,
                "<tr><td>{}</td><td>{}</td><td><code>{:016x}</code></td><td>{}</td></tr>",
                escape(&w.id),
                w.release.map(|r| r.to_string()).unwrap_or_default(),
                w.generation,
                w.refused
                    .as_ref()
                    .map(|r| escape(&format!("release {}: {}", r.release, r.reason)))
                    .unwrap_or_default()
            );
        }
        html.push_str("</table>");
    }
    if !recent.config_errors.is_empty() {
        html.push_str(
            "<h3>Config rejected (the last good one serves)</h3><ul id=\"config-errors\">",
        );
        for e in &recent.config_errors {
            let _ = write!(html, "<li>{}</li>", escape(e));
        }
        html.push_str("</ul>");
    }
    if let Some(live) = host.plugins() {
        let _ = write!(
            html,
            "<p>Folder <code>{}</code>, generation <span id=\"generation\">{}</span>.</p>",
            escape(&live.dir().display().to_string()),
            live.generation()
        );
        html.push_str("<h2>Plugins</h2><table id=\"plugins\"><tr><th>name</th><th>world</th><th>version</th><th>sha256</th><th>generation</th><th>file</th><th>answers</th><th>fallbacks</th><th>p50 / p99 per crossing</th><th>last error</th></tr>");
        let current = live.current();
        for (name, plugin) in &current {
            let info = plugin.info();
            let calls = plugin.call_summary();
            let _ = write!(
                html,
                "<tr class=\"plugin\" data-name=\"{n}\"><td>{n}</td><td>{}</td><td>{}</td><td><code title=\"{sha}\">{}</code></td><td>{}</td><td>{}</td><td class=\"answers\">{}</td><td class=\"fallbacks\">{}</td><td>{} us / {} us</td><td>{}</td></tr>",
                info.world,
                escape(&info.version),
                &info.sha256[..12.min(info.sha256.len())],
                recent
                    .generation
                    .get(name)
                    .map(|g| g.to_string())
                    .unwrap_or_default(),
                escape(&info.file),
                calls.answers,
                calls.fallbacks,
                calls.p50_us,
                calls.p99_us,
                escape(
                    recent
                        .last_error
                        .get(&info.file)
                        .map(String::as_str)
                        .unwrap_or("")
                ),
                n = escape(name),
                sha = escape(&info.sha256),
            );
        }
        html.push_str("</table>");
        let rejected: Vec<_> = recent
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
    }

    html.push_str("<h2>Caches</h2><table id=\"caches\"><tr><th>cache</th><th>hits</th><th>misses (plugin calls)</th><th>hit rate</th><th>entries</th></tr>");
    let mut caches: Vec<(String, crate::output_cache::CacheStats)> = Vec::new();
    if let Some(stats) = engine.cache_stats() {
        caches.push(("resolver".into(), stats));
    }
    for (i, stats) in engine.translation_cache_stats().into_iter().enumerate() {
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

    html.push_str("<h2>Recent events</h2><table id=\"events\"><tr><th>event</th><th>what</th><th>details</th></tr>");
    for event in &recent.events {
        let (kind, what, details) = match event {
            HostEvent::Plugin(e) => (
                format!("{:?}", e.event),
                format!("{} ({})", e.plugin.as_deref().unwrap_or(""), e.file),
                format!(
                    "generation {}, {:.1} ms{}",
                    e.generation,
                    e.ms,
                    e.error
                        .as_deref()
                        .map(|x| format!(": {x}"))
                        .unwrap_or_default()
                ),
            ),
            HostEvent::ConfigReloaded { file, .. } => {
                ("ConfigReloaded".into(), file.clone(), String::new())
            }
            HostEvent::ConfigRejected { file, errors } => {
                ("ConfigRejected".into(), file.clone(), errors.join("; "))
            }
            HostEvent::ConfigWaiting {
                file, waiting_for, ..
            } => (
                "ConfigWaiting".into(),
                file.clone(),
                format!("waits for {}", waiting_for.join(", ")),
            ),
            HostEvent::ReleaseServing { release, plugins } => (
                "ReleaseServing".into(),
                format!("release {release}"),
                plugins
                    .iter()
                    .map(|p| format!("{} {}", p.name, p.version))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            HostEvent::ReleaseRefused {
                release, errors, ..
            } => (
                "ReleaseRefused".into(),
                format!("release {release}"),
                errors.join("; "),
            ),
            HostEvent::Rollout {
                action,
                rollout,
                reason,
            } => (
                format!("Rollout {action}"),
                format!(
                    "{} {} ({}%)",
                    rollout.plugin, rollout.version, rollout.percent
                ),
                reason.clone().unwrap_or_default(),
            ),
            HostEvent::RolledBack(r) => (
                "RolledBack".into(),
                format!("{} ({})", r.plugin, r.file),
                format!("{} -> {}", r.from, r.to),
            ),
            HostEvent::Reconciled(r) => (
                "Reconciled".into(),
                format!("{} users examined", r.users_examined),
                format!(
                    "calls {:?}, failed {}, {:.0} ms",
                    r.calls, r.failed, r.duration_ms
                ),
            ),
        };
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&kind),
            escape(&what),
            escape(&details)
        );
    }
    html.push_str("</table></body></html>");
    Html(html)
}

/// The preview form and, for a given user, their profile and menu.
async fn preview_html(host: &Host, q: &Result<ContextQuery, ContextError>) -> String {
    let mut html = String::new();
    let (q, unreadable) = match q {
        Ok(q) => (q, None),
        Err(why) => (&ContextQuery::default(), Some(why)),
    };
    let _ = write!(
        html,
        "<h2>Preview</h2><form method=\"get\">user_id <input name=\"user_id\" value=\"{}\"> language_code <input name=\"language_code\" value=\"{}\"> flags <input name=\"flags\" value=\"{}\" placeholder=\"registered,premium\"> <button>preview</button></form>",
        q.user_id.map(|u| u.to_string()).unwrap_or_default(),
        escape(q.language_code.as_deref().unwrap_or("")),
        escape(q.flags.as_deref().unwrap_or(""))
    );
    let asked = match unreadable {
        Some(why) => Some(Err(why.clone())),
        None => q.user_id.map(|_| q.context()),
    };
    match asked {
        None => {}
        Some(Err(why)) => {
            let _ = write!(html, "<p id=\"preview-error\">{}</p>", escape(&why.message));
        }
        Some(Ok(ctx)) => {
            let (resolution, menu) = host.preview(&ctx).await;
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

pub(super) async fn json(State(app): State<App>) -> impl IntoResponse {
    let host = &app.host;
    let engine = host.engine();
    let plugins: Vec<Value> = host
        .plugins()
        .map(|live| live.current())
        .unwrap_or_default()
        .into_iter()
        .map(|(name, plugin)| {
            let info = plugin.info();
            json!({"name": name, "world": info.world.to_string(), "version": info.version, "sha256": info.sha256, "file": info.file, "calls": plugin.call_summary()})
        })
        .collect();
    let known = match host.manager().and_then(|m| m.known_users()) {
        Some(k) => k.count().await.ok(),
        None => None,
    };
    let recent = host.recent();
    Json(json!({
        "worker": host.worker_id(),
        "release": host.release().map(|r| r.number),
        "release_refused": host.refused_release(),
        "workers": host.fleet(),
        "generation": format!("{:016x}", engine.generation()),
        "plugin_generation": host.plugins().map(|l| l.generation()),
        "ready": host.is_ready(),
        "plugins": plugins,
        "known_users": known,
        "recent_events": recent.events.iter().collect::<Vec<_>>(),
        "resolver_cache": engine.cache_stats().map(|s| json!({"hits": s.hits, "misses": s.misses, "entries": s.entries})),
    }))
}
