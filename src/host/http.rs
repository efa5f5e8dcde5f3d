//! The host's HTTP surfaces, on one listener: the JSON API that bots in any language call,
//! server-sent events, the status page, `/metrics` and `/healthz` (feature `http`).
//!
//! | route | auth | what |
//! |---|---|---|
//! | `POST /v1/users` | key | one context or a list: each resolved and brought to Telegram |
//! | `POST /v1/users/clear` | key | one context or a list: their own lists removed |
//! | `POST /v1/impact` | key | what a candidate (component, or config text) would do |
//! | `POST /v1/plugins/NAME/rollback` | key | the plugin's previous version back |
//! | `GET /v1/plugins/NAME/versions` | | the versions kept for a rollback |
//! | `POST /v1/rollouts?percent=P` | key | stage a resolver version (the body) on P% of users |
//! | `GET /v1/rollouts` | | the rollout under way: share, counts of both versions |
//! | `POST /v1/rollouts/current/promote` | key | the candidate for everyone |
//! | `POST /v1/rollouts/current/abort` | key | the candidate taken back |
//! | `GET /v1/preview?user_id=..` | | what that user would see; no Bot API call |
//! | `GET /v1/suggest?user_id=..&text=..` | | the command of the user's menu they meant |
//! | `GET /v1/explain?user_id=..` | | why the user sees their menu |
//! | `GET /v1/events` | | server-sent events: reloads, rejections, reconciliations |
//! | `GET /healthz` | | 200 once the configured lists are applied, else 503 |
//! | `GET /metrics` | | Prometheus text (feature `prometheus`) |
//! | `GET /`, `GET /status.json` | | the status page |
//!
//! Write routes need `Authorization: Bearer KEY`, compared in constant time; without a key
//! configured they always answer 401. A bad request is a 4xx with a JSON error naming the
//! field; in a list, the other contexts are still processed.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::{RawQuery, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use sha2::{Digest, Sha256};

mod answer;
mod query;
mod status_page;
mod users;

use self::answer::{ApiError, Health, PreviewAnswer, SuggestAnswer};
use self::query::ContextQuery;
use super::{Host, HostEvent};

/// How the HTTP surfaces behave.
#[derive(Clone, Default)]
pub struct HttpOptions {
    /// The key write routes require (`Authorization: Bearer KEY`). Never the bot token.
    pub api_key: Option<String>,
    /// Longest a write request may take before it is answered 503 (default 60 s).
    pub request_timeout: Option<Duration>,
    /// Serve `/metrics`, installing cmdscope's Prometheus recorder when the router is made
    /// (a process has one global recorder: leave this off if the bot installs its own).
    pub metrics: bool,
}

impl std::fmt::Debug for HttpOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpOptions")
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .field("request_timeout", &self.request_timeout)
            .field("metrics", &self.metrics)
            .finish()
    }
}

#[derive(Clone)]
struct App {
    host: Host,
    key_digest: Option<[u8; 32]>,
    timeout: Duration,
    metrics: bool,
}

/// Most contexts one request may carry.
pub const MAX_BATCH: usize = 10_000;

/// Every route, with the host as state.
pub fn router(host: &Host, options: HttpOptions) -> Router {
    // Installed now, so every series is counted from the start.
    #[cfg(feature = "prometheus")]
    let metrics = options.metrics && crate::metrics::prometheus().is_ok();
    #[cfg(not(feature = "prometheus"))]
    let metrics = false;
    let app = App {
        host: host.clone(),
        key_digest: options.api_key.as_deref().map(digest),
        timeout: options.request_timeout.unwrap_or(Duration::from_secs(60)),
        metrics,
    };
    let writes = Router::new()
        .route("/v1/users", post(users::update_users))
        .route("/v1/users/clear", post(users::clear_users))
        .route(
            "/v1/impact",
            post(impact).layer(axum::extract::DefaultBodyLimit::max(impact_body_limit(
                host,
            ))),
        )
        .route("/v1/plugins/{name}/rollback", post(rollback))
        .route(
            "/v1/rollouts",
            post(start_rollout).layer(axum::extract::DefaultBodyLimit::max(impact_body_limit(
                host,
            ))),
        )
        .route("/v1/rollouts/current/promote", post(promote_rollout))
        .route("/v1/rollouts/current/abort", post(abort_rollout))
        .route_layer(axum::middleware::from_fn_with_state(app.clone(), authorize));
    Router::new()
        .merge(writes)
        .route("/v1/preview", get(preview))
        .route("/v1/suggest", get(suggest))
        .route("/v1/explain", get(explain))
        .route("/v1/plugins/{name}/versions", get(versions))
        .route("/v1/rollouts", get(rollout_status))
        .route("/v1/events", get(events))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_page))
        .route("/", get(status_page::page))
        .route("/status.json", get(status_page::json))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such route", None) })
        .layer(axum::middleware::from_fn(limit_headers))
        .with_state(app)
}

/// Serves [`router`] on `addr` until `shutdown` resolves (or the host shuts down), then
/// drains: event streams end, requests in flight finish. Returns the bound address and the
/// server's task.
///
/// The listener and its connections run on a thread of their own, with a single-threaded
/// runtime, for the server's life. A request with a body wakes its own
/// connection task while it is being polled (hyper's body channel); on a multi-threaded
/// runtime that wake-up also wakes an idle worker to steal the task, which costs more CPU
/// than the update it carries (one unchanged user: 6 us of work in 60 us of CPU). On its own
/// thread, it is a re-queue. It also keeps the bot's message path off the threads a
/// reconciliation of a million users keeps busy. A plugin call a request needs still runs
/// off this thread (the engine hands it to the blocking pool when the runtime is not
/// multi-threaded), so a slow plugin never stalls the other connections.
pub async fn serve(
    host: &Host,
    addr: SocketAddr,
    options: HttpOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    let app = router(host, options);
    let mut stopped = host.inner.stop.subscribe();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("cmdscope-http")
        .build()?;
    // A plain thread, not the blocking pool: a runtime dropped without the host shut down
    // (a bot's `main` returning) must not wait for a server that never ends.
    let (ended, on_end) = tokio::sync::oneshot::channel::<()>();
    std::thread::Builder::new()
        .name("cmdscope-http".into())
        .spawn(move || {
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(listener) => listener,
                    Err(e) => {
                        tracing::error!("the HTTP server cannot listen: {e}");
                        return;
                    }
                };
                let stop = async move {
                    tokio::select! {
                        _ = shutdown => {}
                        _ = stopped.wait_for(|s| *s) => {}
                    }
                };
                if let Err(e) = axum::serve(listener, app)
                    .with_graceful_shutdown(stop)
                    .await
                {
                    tracing::warn!("the HTTP server stopped: {e}");
                }
            });
            let _ = ended.send(());
        })?;
    let task = tokio::spawn(async move {
        let _ = on_end.await;
    });
    Ok((bound, task))
}

/// Most bytes of request headers (names and values) a request may carry.
pub const MAX_HEADER_BYTES: usize = 64 << 10;

/// Refuses a request whose headers are over [`MAX_HEADER_BYTES`] (431) before any route
/// reads them: no client of this API needs more, and a huge header is memory held per request.
async fn limit_headers(request: Request, next: Next) -> Response {
    let size: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if size > MAX_HEADER_BYTES {
        return error(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            &format!("request headers are {size} bytes; at most {MAX_HEADER_BYTES} are accepted"),
            None,
        );
    }
    next.run(request).await
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// Compares digests with every byte looked at, whatever differs first: the key's time to
/// answer says nothing about how much of it was right.
fn same_digest(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn authorize(
    State(app): State<App>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    let Some(expected) = &app.key_digest else {
        return error(
            StatusCode::UNAUTHORIZED,
            "no API key is configured on this server: start it with --api-key (or CMDSCOPE_API_KEY)",
            None,
        );
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(key) if same_digest(&digest(key), expected) => next.run(request).await,
        _ => error(
            StatusCode::UNAUTHORIZED,
            "send the API key as `Authorization: Bearer KEY`",
            None,
        ),
    }
}

fn error(status: StatusCode, message: &str, field: Option<&str>) -> Response {
    let refusal = ApiError::new(status, message);
    match field {
        Some(field) => refusal.about(field),
        None => refusal,
    }
    .into_response()
}

async fn preview(State(app): State<App>, RawQuery(raw): RawQuery) -> Response {
    let ctx = match ContextQuery::parse(raw.as_deref()).and_then(|q| q.context()) {
        Ok(ctx) => ctx,
        Err(why) => return ApiError::query(why).into_response(),
    };
    let (resolution, menu) = app.host.preview(&ctx).await;
    Json(PreviewAnswer {
        user_id: ctx.user_id,
        profile: &resolution.profile,
        source: &resolution.source,
        menu: &menu,
        resolver_error: resolution.error.as_ref().map(|e| e.to_string()),
    })
    .into_response()
}

/// `GET /v1/suggest?user_id=..&text=/ordres`: the command of the user's own menu they meant.
async fn suggest(State(app): State<App>, RawQuery(raw): RawQuery) -> Response {
    let query = match ContextQuery::parse(raw.as_deref()) {
        Ok(q) => q,
        Err(why) => return ApiError::query(why).into_response(),
    };
    let Some(text) = query.text.clone() else {
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            "text is required: what the user sent, e.g. /ordres",
        )
        .about("text")
        .into_response();
    };
    let ctx = match query.context() {
        Ok(ctx) => ctx,
        Err(why) => return ApiError::query(why).into_response(),
    };
    let found = app.host.suggest(&ctx, &text).await;
    Json(SuggestAnswer {
        command: found.as_ref().map(|f| f.command.as_str()),
        description: found.as_ref().map(|f| f.description.as_str()),
        exact: found.as_ref().map(|f| f.exact),
    })
    .into_response()
}

/// `GET /v1/explain?user_id=..`: why the user sees their menu (see `crate::explain`).
async fn explain(State(app): State<App>, RawQuery(raw): RawQuery) -> Response {
    let ctx = match ContextQuery::parse(raw.as_deref()).and_then(|q| q.context()) {
        Ok(ctx) => ctx,
        Err(why) => return ApiError::query(why).into_response(),
    };
    match app.host.explain(&ctx).await {
        Ok(explanation) => Json(explanation).into_response(),
        Err(e) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    }
}

/// A candidate component may be as large as a plugin file may be (`[sandbox] max_file_mib`).
fn impact_body_limit(host: &Host) -> usize {
    let max = host.inner.engine.load().config().sandbox.max_file_bytes;
    usize::try_from(max).unwrap_or(usize::MAX).saturating_add(1)
}

/// `POST /v1/impact[?users=true]`: what a candidate would do to the known users (see
/// `crate::impact`). The body is a component (`application/wasm`, or any other type), or a
/// config (`application/toml`, `application/json`). Not bounded by the request timeout: the
/// report walks every known user.
async fn impact(
    State(app): State<App>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: axum::body::Bytes,
) -> Response {
    let list_users = match query::ImpactQuery::parse(raw.as_deref()) {
        Ok(q) => q.users,
        Err(why) => return ApiError::query(why).into_response(),
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    let candidate = match content_type.as_str() {
        "application/toml" | "text/toml" | "text/x-toml" => super::Candidate::Config {
            text: body.to_vec(),
            json: false,
        },
        "application/json" => super::Candidate::Config {
            text: body.to_vec(),
            json: true,
        },
        _ => super::Candidate::Plugin(body.to_vec()),
    };
    match app.host.impact(candidate, list_users).await {
        Ok(report) => Json(report).into_response(),
        Err(super::ImpactError::Refused(reasons)) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "the candidate cannot serve",
        )
        .reasons(reasons)
        .into_response(),
        Err(e @ super::ImpactError::Unsupported(_)) => {
            ApiError::new(StatusCode::CONFLICT, e.to_string()).into_response()
        }
        Err(e @ super::ImpactError::Busy) => {
            ApiError::new(StatusCode::TOO_MANY_REQUESTS, e.to_string()).into_response()
        }
        Err(e @ super::ImpactError::Store(_)) => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response()
        }
    }
}

/// `POST /v1/plugins/NAME/rollback`: the plugin's previous version back (see
/// `Host::rollback`); answers what was written where. The reload and the reconciliation
/// follow, as events.
async fn rollback(
    State(app): State<App>,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> Response {
    match app.host.rollback(&name) {
        Ok(rolled) => Json(rolled).into_response(),
        Err(why) => ApiError::new(StatusCode::CONFLICT, why).into_response(),
    }
}

/// `GET /v1/plugins/NAME/versions`: the versions kept for a rollback, oldest first.
async fn versions(
    State(app): State<App>,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> Response {
    Json(app.host.versions(&name)).into_response()
}

fn rollout_error(e: super::RolloutError) -> Response {
    match e {
        super::RolloutError::Invalid(why) => {
            ApiError::new(StatusCode::BAD_REQUEST, why).into_response()
        }
        super::RolloutError::Refused(reasons) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "the candidate cannot serve",
        )
        .reasons(reasons)
        .into_response(),
        super::RolloutError::Conflict(why) => {
            ApiError::new(StatusCode::CONFLICT, why).into_response()
        }
        super::RolloutError::Store(e) => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response()
        }
    }
}

/// `POST /v1/rollouts?percent=P`: stages the body (a resolver component) on P% of users.
async fn start_rollout(
    State(app): State<App>,
    RawQuery(raw): RawQuery,
    body: axum::body::Bytes,
) -> Response {
    let percent = match query::RolloutQuery::parse(raw.as_deref()) {
        Ok(q) => q.percent,
        Err(why) => return ApiError::query(why).into_response(),
    };
    match app.host.start_rollout(body.to_vec(), percent).await {
        Ok(status) => Json(status).into_response(),
        Err(e) => rollout_error(e),
    }
}

/// `GET /v1/rollouts`: the rollout under way on this worker, or `null`.
async fn rollout_status(State(app): State<App>) -> Response {
    Json(app.host.rollout_status()).into_response()
}

async fn promote_rollout(State(app): State<App>) -> Response {
    match app.host.promote_rollout().await {
        Ok(rollout) => Json(rollout).into_response(),
        Err(e) => rollout_error(e),
    }
}

async fn abort_rollout(State(app): State<App>) -> Response {
    match app.host.abort_rollout("aborted by request").await {
        Ok(rollout) => Json(rollout).into_response(),
        Err(e) => rollout_error(e),
    }
}

async fn events(
    State(app): State<App>,
) -> Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>> {
    let receiver = app.host.subscribe();
    let stop = app.host.inner.stop.subscribe();
    let stream = futures_util::stream::unfold((receiver, stop), |(mut rx, mut stop)| async move {
        if *stop.borrow() {
            return None;
        }
        let event = tokio::select! {
            // The stream ends with the host, or a graceful shutdown would wait for it forever.
            _ = stop.wait_for(|s| *s) => return None,
            event = rx.recv() => event,
        };
        let sse = match event {
            Ok(event) => {
                let name = match &event {
                    HostEvent::Plugin(p) => format!("{:?}", p.event).to_lowercase(),
                    HostEvent::ConfigReloaded { .. } => "config_reloaded".into(),
                    HostEvent::ConfigRejected { .. } => "config_rejected".into(),
                    HostEvent::ConfigWaiting { .. } => "config_waiting".into(),
                    HostEvent::Reconciled(_) => "reconciled".into(),
                    HostEvent::ReleaseServing { .. } => "release_serving".into(),
                    HostEvent::ReleaseRefused { .. } => "release_refused".into(),
                    HostEvent::RolledBack(_) => "rolled_back".into(),
                    HostEvent::Rollout { .. } => "rollout".into(),
                };
                Event::default()
                    .event(name)
                    .json_data(&event)
                    .unwrap_or_else(|_| Event::default().comment("unserialisable event"))
            }
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                Event::default().comment(format!("{n} events dropped: this client is too slow"))
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
        };
        Some((Ok(sse), (rx, stop)))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

async fn healthz(State(app): State<App>) -> Response {
    if app.host.is_ready() {
        Json(Health {
            ready: true,
            why: None,
        })
        .into_response()
    } else {
        let health = Health {
            ready: false,
            why: Some("the configured lists are not applied yet"),
        };
        (StatusCode::SERVICE_UNAVAILABLE, Json(health)).into_response()
    }
}

async fn metrics_page(State(app): State<App>) -> Response {
    if !app.metrics {
        return error(
            StatusCode::NOT_FOUND,
            "metrics are not served here (HttpOptions::metrics, feature `prometheus`)",
            None,
        );
    }
    #[cfg(feature = "prometheus")]
    if let Ok(handle) = crate::metrics::prometheus() {
        return handle.render().into_response();
    }
    error(StatusCode::NOT_FOUND, "no metrics recorder", None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_compare_by_digest() {
        assert!(same_digest(&digest("s3cret"), &digest("s3cret")));
        assert!(!same_digest(&digest("s3cret"), &digest("s3cres")));
        assert!(!same_digest(&digest(""), &digest("s3cret")));
        let options = HttpOptions {
            api_key: Some("s3cret".into()),
            ..HttpOptions::default()
        };
        let debug = format!("{options:?}");
        assert!(!debug.contains("s3cret"), "{debug}");
    }
}
