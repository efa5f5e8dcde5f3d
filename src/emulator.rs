//! An embedded Bot API emulator: real HTTP on loopback, for the demo, the tests and anyone
//! testing a bot offline.
//!
//! It serves the command and menu-button methods, validates like Telegram, answers with
//! Telegram's error shape, stores lists per (scope, language) and answers "which list does this
//! user see" with the same precedence module the planner uses. Control endpoints under
//! `/_emulator/` count and log calls (with times, for pace checks), inject faults and reset state.
//!
//! Enough of the updates side for a real bot framework (a teloxide `Dispatcher`) to run
//! against it: `getUpdates` with long polling (`offset`, `timeout`), `sendMessage`,
//! `deleteWebhook`, and `POST /_emulator/updates` to make a user write to the bot.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::limits;
use crate::menu::BotCommand;
use crate::scope::{ChatType, Lang, ListKey, Scope, Viewer};

/// The Bot API methods served, by canonical name; requests match them case-insensitively.
const METHODS: [&str; 10] = [
    "getMe",
    "setMyCommands",
    "getMyCommands",
    "deleteMyCommands",
    "setChatMenuButton",
    "getChatMenuButton",
    "getUpdates",
    "sendMessage",
    "deleteWebhook",
    "getWebhookInfo",
];

/// Longest a `getUpdates` waits for an update.
const MAX_POLL: Duration = Duration::from_secs(50);

/// A fault to inject into the next `count` Bot API calls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    /// Answer with this HTTP status and Telegram's error shape (429 carries `retry_after`).
    #[serde(default)]
    pub status: Option<u16>,
    /// Seconds, for 429.
    #[serde(default)]
    pub retry_after: Option<u64>,
    /// Wait this long before answering (combined with `status`, or alone).
    #[serde(default)]
    pub delay_ms: Option<u64>,
    #[serde(default = "one")]
    pub count: u32,
}

fn one() -> u32 {
    1
}

/// Call counters, as `GET /_emulator/calls` reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallStats {
    /// Every Bot API request received, faulted ones included.
    pub total: u64,
    pub by_method: BTreeMap<String, u64>,
    /// Requests answered with an injected fault status.
    pub faulted: u64,
}

/// One Bot API request, as `GET /_emulator/log` reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    pub method: String,
    /// The list addressed, for the command methods.
    pub key: Option<String>,
    /// Milliseconds since the emulator started (or was reset).
    pub at_ms: f64,
    /// The injected fault status it was answered with.
    pub fault: Option<u16>,
}

#[derive(Debug)]
struct EmulatorState {
    lists: HashMap<ListKey, Vec<BotCommand>>,
    /// Menu buttons by chat; `None` is the bot's default.
    menu_buttons: HashMap<Option<i64>, Value>,
    calls: CallStats,
    log: Vec<CallRecord>,
    faults: VecDeque<Fault>,
    started: Instant,
    /// Updates not yet confirmed by a `getUpdates` offset past them.
    updates: VecDeque<Value>,
    next_update_id: i64,
    next_message_id: i64,
    /// What the bot sent with `sendMessage`.
    sent: Vec<SentMessage>,
}

impl Default for EmulatorState {
    fn default() -> Self {
        EmulatorState {
            lists: HashMap::new(),
            menu_buttons: HashMap::new(),
            calls: CallStats::default(),
            log: Vec::new(),
            faults: VecDeque::new(),
            started: Instant::now(),
            updates: VecDeque::new(),
            next_update_id: 1,
            next_message_id: 1,
            sent: Vec::new(),
        }
    }
}

/// A message the bot sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentMessage {
    pub chat_id: i64,
    pub text: String,
}

/// A message a user writes to the bot (`POST /_emulator/updates`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserMessage {
    pub user_id: i64,
    pub text: String,
    /// The chat; default: the user's private chat.
    #[serde(default)]
    pub chat_id: Option<i64>,
    #[serde(default)]
    pub chat_type: Option<ChatType>,
    #[serde(default)]
    pub language_code: Option<String>,
    #[serde(default)]
    pub first_name: Option<String>,
}

/// A handle on the emulator's state, shared by the HTTP server and in-process callers.
#[derive(Debug, Clone, Default)]
pub struct Emulator {
    state: Arc<Mutex<EmulatorState>>,
    /// When set, only this bot token is accepted.
    token: Option<Arc<str>>,
    /// Wakes long polls when an update arrives.
    arrived: Arc<tokio::sync::Notify>,
}

/// A running server; stops when dropped.
#[derive(Debug)]
pub struct RunningEmulator {
    pub emulator: Emulator,
    pub addr: SocketAddr,
    _shutdown: oneshot::Sender<()>,
}

impl RunningEmulator {
    /// The base URL to give a Bot API client (`Bot::set_api_url`).
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }
}

impl Emulator {
    pub fn new() -> Self {
        Emulator::default()
    }

    /// Accept only this token (others get 401 Unauthorized).
    pub fn require_token(mut self, token: &str) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Binds `addr` (use port 0 for a free one) and serves in a background task.
    pub async fn start(self, addr: SocketAddr) -> std::io::Result<RunningEmulator> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = oneshot::channel();
        let app = self.router();
        tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = rx.await;
            });
            if let Err(e) = serve.await {
                tracing::error!("emulator server stopped: {e}");
            }
        });
        Ok(RunningEmulator {
            emulator: self,
            addr,
            _shutdown: tx,
        })
    }

    /// Serves on `listener` until `shutdown` completes (the CLI passes Ctrl-C).
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route("/_emulator/effective", get(effective_handler))
            .route("/_emulator/calls", get(calls_handler))
            .route("/_emulator/log", get(log_handler))
            .route("/_emulator/lists", get(lists_handler))
            .route("/_emulator/faults", post(faults_handler))
            .route("/_emulator/reset", post(reset_handler))
            .route("/_emulator/updates", post(updates_handler))
            .route("/_emulator/messages", get(messages_handler))
            .route("/{bot}/{method}", post(method_handler).get(method_handler))
            .with_state(self.clone())
    }

    fn lock(&self) -> MutexGuard<'_, EmulatorState> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes `message.user_id` write `message.text` to the bot; answers the update's id.
    pub fn push_message(&self, message: &UserMessage) -> i64 {
        let mut state = self.lock();
        let update_id = state.next_update_id;
        state.next_update_id += 1;
        let message_id = state.next_message_id;
        state.next_message_id += 1;
        let chat_type = message.chat_type.unwrap_or(ChatType::Private);
        let chat_id = message.chat_id.unwrap_or(message.user_id);
        let first_name = message
            .first_name
            .clone()
            .unwrap_or_else(|| format!("User {}", message.user_id));
        let mut from = json!({"id": message.user_id, "is_bot": false, "first_name": first_name});
        if let Some(lang) = &message.language_code {
            from["language_code"] = json!(lang);
        }
        let chat = match chat_type {
            ChatType::Private => {
                json!({"id": chat_id, "type": "private", "first_name": first_name})
            }
            ChatType::Group => json!({"id": chat_id, "type": "group", "title": "Group"}),
            ChatType::Supergroup => json!({"id": chat_id, "type": "supergroup", "title": "Group"}),
        };
        let mut msg = json!({
            "message_id": message_id,
            "date": std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            "chat": chat,
            "from": from,
            "text": message.text,
        });
        if let Some(command) = message
            .text
            .split_whitespace()
            .next()
            .filter(|w| w.starts_with('/'))
        {
            msg["entities"] = json!([{"type": "bot_command", "offset": 0, "length": command.encode_utf16().count()}]);
        }
        state
            .updates
            .push_back(json!({"update_id": update_id, "message": msg}));
        drop(state);
        self.arrived.notify_waiters();
        update_id
    }

    /// Messages the bot sent, in order.
    pub fn sent_messages(&self) -> Vec<SentMessage> {
        self.lock().sent.clone()
    }

    /// Updates from `offset` on (those before it are confirmed and dropped), waiting up to
    /// `timeout` for one to arrive.
    async fn updates_from(
        &self,
        offset: Option<i64>,
        timeout: Duration,
        limit: usize,
    ) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + timeout.min(MAX_POLL);
        loop {
            let arrived = self.arrived.notified();
            {
                let mut state = self.lock();
                if let Some(offset) = offset {
                    while state
                        .updates
                        .front()
                        .is_some_and(|u| u["update_id"].as_i64().unwrap_or(0) < offset)
                    {
                        state.updates.pop_front();
                    }
                }
                if !state.updates.is_empty() || tokio::time::Instant::now() >= deadline {
                    return state.updates.iter().take(limit).cloned().collect();
                }
            }
            let _ = tokio::time::timeout_at(deadline, arrived).await;
        }
    }

    /// The list Telegram would show this viewer, with the key it comes from.
    pub fn effective(&self, viewer: &Viewer) -> (Option<ListKey>, Vec<BotCommand>) {
        let state = self.lock();
        let key = viewer.effective(|k| state.lists.contains_key(k));
        let commands = key
            .as_ref()
            .map(|k| state.lists[k].clone())
            .unwrap_or_default();
        (key, commands)
    }

    /// The list stored at exactly this key.
    pub fn list(&self, key: &ListKey) -> Option<Vec<BotCommand>> {
        self.lock().lists.get(key).cloned()
    }

    /// Every stored list.
    pub fn lists(&self) -> Vec<(ListKey, Vec<BotCommand>)> {
        let mut all: Vec<_> = self
            .lock()
            .lists
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    pub fn calls(&self) -> CallStats {
        self.lock().calls.clone()
    }

    /// Every Bot API request in arrival order, with its time and list.
    pub fn call_log(&self) -> Vec<CallRecord> {
        self.lock().log.clone()
    }

    /// The most requests that arrived within any `window` (e.g. one second): the pace a
    /// client really kept.
    pub fn max_calls_within(&self, window: Duration) -> usize {
        let times: Vec<f64> = self.lock().log.iter().map(|c| c.at_ms).collect();
        let window_ms = window.as_secs_f64() * 1000.0;
        let mut first = 0;
        let mut best = 0;
        for (last, t) in times.iter().enumerate() {
            while t - times[first] >= window_ms {
                first += 1;
            }
            best = best.max(last + 1 - first);
        }
        best
    }

    pub fn default_menu_button(&self) -> Option<Value> {
        self.lock().menu_buttons.get(&None).cloned()
    }

    pub fn inject(&self, fault: Fault) {
        self.lock().faults.push_back(fault);
    }

    pub fn reset(&self) {
        *self.lock() = EmulatorState::default();
    }

    /// Takes the fault that applies to the call being served, if any.
    fn next_fault(&self) -> Option<Fault> {
        let mut state = self.lock();
        let front = state.faults.front_mut()?;
        let fault = front.clone();
        front.count = front.count.saturating_sub(1);
        if front.count == 0 {
            state.faults.pop_front();
        }
        Some(fault)
    }
}

/// A Bot API refusal; answers in Telegram's error shape with HTTP status = error code.
#[derive(Debug)]
struct Refusal {
    code: u16,
    description: String,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code).unwrap_or(StatusCode::BAD_REQUEST);
        let body = json!({"ok": false, "error_code": self.code, "description": self.description});
        (status, axum::Json(body)).into_response()
    }
}

fn api_error(code: u16, description: &str) -> Response {
    Refusal {
        code,
        description: description.to_string(),
    }
    .into_response()
}

fn bad_request(what: &str) -> Refusal {
    Refusal {
        code: 400,
        description: format!("Bad Request: {what}"),
    }
}

fn ok(result: Value) -> Response {
    axum::Json(json!({"ok": true, "result": result})).into_response()
}

/// Reads parameters from the query string and a JSON or form body, as Telegram does.
/// Form values holding JSON objects or arrays (`scope`, `commands`) are decoded.
fn params(
    headers: &HeaderMap,
    query: HashMap<String, String>,
    body: &Bytes,
) -> Result<serde_json::Map<String, Value>, Refusal> {
    let mut out: serde_json::Map<String, Value> =
        query.into_iter().map(|(k, v)| (k, form_value(v))).collect();
    if body.is_empty() {
        return Ok(out);
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if content_type.starts_with("application/x-www-form-urlencoded") {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
            .map_err(|_| bad_request("can't parse the form body"))?;
        out.extend(pairs.into_iter().map(|(k, v)| (k, form_value(v))));
    } else {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(map)) => out.extend(map),
            _ => return Err(bad_request("can't parse the JSON body")),
        }
    }
    Ok(out)
}

fn form_value(v: String) -> Value {
    let t = v.trim_start();
    if t.starts_with('{') || t.starts_with('[') {
        serde_json::from_str(&v).unwrap_or(Value::String(v))
    } else {
        Value::String(v)
    }
}

/// `scope` and `language_code` of a request: the list key it addresses.
fn list_key(p: &serde_json::Map<String, Value>) -> Result<ListKey, Refusal> {
    let scope = match p.get("scope") {
        None | Some(Value::Null) => Scope::Default,
        Some(v) => {
            let v = match v {
                Value::String(s) => serde_json::from_str(s)
                    .map_err(|_| bad_request("can't parse BotCommandScope JSON object"))?,
                other => other.clone(),
            };
            serde_json::from_value::<Scope>(v)
                .map_err(|e| bad_request(&format!("can't parse BotCommandScope: {e}")))?
        }
    };
    if let Scope::ChatMember { user_id, .. } = &scope
        && *user_id <= 0
    {
        return Err(bad_request("invalid user_id specified"));
    }
    let language = match p.get("language_code") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(
            Lang::parse(s)
                .filter(|_| s.bytes().all(|b| b.is_ascii_lowercase()))
                .ok_or_else(|| bad_request("LANG_CODE_INVALID"))?,
        ),
        Some(_) => return Err(bad_request("LANG_CODE_INVALID")),
    };
    Ok(ListKey::new(scope, language))
}

fn commands(p: &serde_json::Map<String, Value>) -> Result<Vec<BotCommand>, Refusal> {
    let raw = p
        .get("commands")
        .ok_or_else(|| bad_request("parameter \"commands\" is required"))?;
    let list: Vec<BotCommand> = serde_json::from_value(raw.clone())
        .map_err(|_| bad_request("can't parse commands JSON array"))?;
    if list.len() > limits::MAX_COMMANDS {
        return Err(bad_request("BOT_COMMANDS_TOO_MUCH"));
    }
    for c in &list {
        if limits::command_name_problem(&c.command).is_some() {
            return Err(bad_request("BOT_COMMAND_INVALID"));
        }
        if limits::description_problem(&c.description).is_some() {
            return Err(bad_request("BOT_COMMAND_DESCRIPTION_INVALID"));
        }
    }
    Ok(list)
}

async fn method_handler(
    State(emu): State<Emulator>,
    Path((bot, method)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(token) = bot.strip_prefix("bot").filter(|t| !t.is_empty()) else {
        return api_error(404, "Not Found");
    };
    if emu.token.as_deref().is_some_and(|t| t != token) {
        return api_error(401, "Unauthorized");
    }
    let Some(method) = METHODS
        .iter()
        .copied()
        .find(|m| m.eq_ignore_ascii_case(&method))
    else {
        return api_error(404, "Not Found: method not found");
    };
    let parsed = params(&headers, query, &body);
    let fault = emu.next_fault();
    // Long polls are not calls that change anything: they stay out of the counts and log.
    if method != "getUpdates" {
        let key = match (&parsed, method) {
            (Ok(p), "setMyCommands" | "getMyCommands" | "deleteMyCommands") => {
                list_key(p).ok().map(|k| k.storage_key())
            }
            _ => None,
        };
        let mut state = emu.lock();
        state.calls.total += 1;
        *state.calls.by_method.entry(method.to_string()).or_default() += 1;
        let at_ms = state.started.elapsed().as_secs_f64() * 1000.0;
        state.log.push(CallRecord {
            method: method.to_string(),
            key,
            at_ms,
            fault: fault.as_ref().and_then(|f| f.status),
        });
    }
    if let Some(fault) = fault {
        if let Some(ms) = fault.delay_ms {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if let Some(status) = fault.status {
            emu.lock().calls.faulted += 1;
            return match status {
                429 => {
                    let secs = fault.retry_after.unwrap_or(1);
                    (
                        StatusCode::TOO_MANY_REQUESTS,
                        axum::Json(json!({
                            "ok": false, "error_code": 429,
                            "description": format!("Too Many Requests: retry after {secs}"),
                            "parameters": {"retry_after": secs}
                        })),
                    )
                        .into_response()
                }
                code => api_error(
                    code,
                    StatusCode::from_u16(code)
                        .ok()
                        .and_then(|s| s.canonical_reason())
                        .unwrap_or("Error"),
                ),
            };
        }
    }
    if method == "getUpdates" {
        let p = match parsed {
            Ok(p) => p,
            Err(refusal) => return refusal.into_response(),
        };
        let number = |name: &str| match p.get(name) {
            Some(Value::Number(n)) => n.as_i64(),
            Some(Value::String(s)) => s.parse().ok(),
            _ => None,
        };
        let timeout = Duration::from_secs(number("timeout").unwrap_or(0).max(0) as u64);
        let limit = number("limit").unwrap_or(100).clamp(1, 100) as usize;
        let updates = emu.updates_from(number("offset"), timeout, limit).await;
        return ok(Value::Array(updates));
    }
    match parsed.and_then(|p| call(&emu, method, &p)) {
        Ok(result) => ok(result),
        Err(refusal) => refusal.into_response(),
    }
}

fn call(
    emu: &Emulator,
    method: &str,
    p: &serde_json::Map<String, Value>,
) -> Result<Value, Refusal> {
    match method {
        "getMe" => Ok(json!({
            "id": 1_000_001, "is_bot": true, "first_name": "cmdscope emulator",
            "username": "cmdscope_emulator_bot", "can_join_groups": true,
            "can_read_all_group_messages": false, "supports_inline_queries": false,
            "can_connect_to_business": false, "has_main_web_app": false
        })),
        "setMyCommands" => {
            let key = list_key(p)?;
            let list = commands(p)?;
            let mut state = emu.lock();
            // Telegram treats an empty list as "no list": broader scopes show again.
            if list.is_empty() {
                state.lists.remove(&key);
            } else {
                state.lists.insert(key, list);
            }
            Ok(Value::Bool(true))
        }
        "getMyCommands" => {
            let key = list_key(p)?;
            let list = emu.lock().lists.get(&key).cloned().unwrap_or_default();
            Ok(serde_json::to_value(list).expect("commands serialise"))
        }
        "deleteMyCommands" => {
            let key = list_key(p)?;
            emu.lock().lists.remove(&key);
            Ok(Value::Bool(true))
        }
        "setChatMenuButton" => {
            let chat = chat_id(p)?;
            let button = p
                .get("menu_button")
                .cloned()
                .unwrap_or(json!({"type": "default"}));
            let kind = button.get("type").and_then(Value::as_str).unwrap_or("");
            if !matches!(kind, "commands" | "default" | "web_app") {
                return Err(bad_request("can't parse menu button JSON object"));
            }
            emu.lock().menu_buttons.insert(chat, button);
            Ok(Value::Bool(true))
        }
        "getChatMenuButton" => {
            let chat = chat_id(p)?;
            let state = emu.lock();
            let button = state
                .menu_buttons
                .get(&chat)
                .or_else(|| state.menu_buttons.get(&None))
                .cloned()
                .unwrap_or(json!({"type": "default"}));
            Ok(button)
        }
        "sendMessage" => {
            let chat = chat_id(p)?.ok_or_else(|| bad_request("chat not found"))?;
            let text = p
                .get("text")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
                .ok_or_else(|| bad_request("message text is empty"))?
                .to_string();
            let mut state = emu.lock();
            let message_id = state.next_message_id;
            state.next_message_id += 1;
            state.sent.push(SentMessage {
                chat_id: chat,
                text: text.clone(),
            });
            Ok(json!({
                "message_id": message_id,
                "date": 0,
                "chat": {"id": chat, "type": if chat > 0 { "private" } else { "supergroup" }, "first_name": "User", "title": "Group"},
                "from": {"id": 1_000_001, "is_bot": true, "first_name": "cmdscope emulator", "username": "cmdscope_emulator_bot"},
                "text": text,
            }))
        }
        "deleteWebhook" => Ok(Value::Bool(true)),
        "getWebhookInfo" => {
            Ok(json!({"url": "", "has_custom_certificate": false, "pending_update_count": 0}))
        }
        other => unreachable!("METHODS lists {other} but it is not handled"),
    }
}

fn chat_id(p: &serde_json::Map<String, Value>) -> Result<Option<i64>, Refusal> {
    match p.get("chat_id") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| bad_request("chat not found")),
        Some(Value::String(s)) => s
            .parse()
            .map(Some)
            .map_err(|_| bad_request("chat not found")),
        Some(_) => Err(bad_request("chat not found")),
    }
}

/// Query of `GET /_emulator/effective`.
#[derive(Debug, Deserialize)]
struct EffectiveQuery {
    chat_type: Option<String>,
    chat_id: Option<i64>,
    user_id: i64,
    language_code: Option<String>,
    #[serde(default)]
    is_admin: bool,
}

async fn effective_handler(
    State(emu): State<Emulator>,
    Query(q): Query<EffectiveQuery>,
) -> Response {
    let chat_type = match q.chat_type.as_deref() {
        None => ChatType::Private,
        Some(s) => match ChatType::parse(s) {
            Some(t) => t,
            None => {
                return (
                    StatusCode::BAD_REQUEST,
                    format!("unknown chat_type `{s}`: use private, group or supergroup"),
                )
                    .into_response();
            }
        },
    };
    let viewer = Viewer {
        chat_type,
        chat_id: q.chat_id.unwrap_or(q.user_id),
        user_id: q.user_id,
        language: q.language_code.as_deref().and_then(Lang::from_user_tag),
        is_admin: q.is_admin,
    };
    let (key, commands) = emu.effective(&viewer);
    axum::Json(json!({
        "commands": commands,
        "scope": key.as_ref().map(|k| &k.scope),
        "language_code": key.as_ref().and_then(|k| k.language).map(|l| l.to_string()),
    }))
    .into_response()
}

async fn calls_handler(State(emu): State<Emulator>) -> Response {
    axum::Json(emu.calls()).into_response()
}

async fn log_handler(State(emu): State<Emulator>) -> Response {
    axum::Json(json!({ "calls": emu.call_log() })).into_response()
}

async fn lists_handler(State(emu): State<Emulator>) -> Response {
    let lists: Vec<Value> = emu
        .lists()
        .into_iter()
        .map(|(k, c)| json!({"scope": k.scope, "language_code": k.language.map(|l| l.to_string()), "commands": c}))
        .collect();
    axum::Json(json!({ "lists": lists })).into_response()
}

async fn faults_handler(State(emu): State<Emulator>, body: Bytes) -> Response {
    match serde_json::from_slice::<Fault>(&body) {
        Ok(f) if f.status.is_none() && f.delay_ms.is_none() => (
            StatusCode::BAD_REQUEST,
            "a fault needs `status` or `delay_ms`",
        )
            .into_response(),
        Ok(f) => {
            emu.inject(f);
            axum::Json(json!({"ok": true})).into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, format!("bad fault: {e}")).into_response(),
    }
}

async fn updates_handler(State(emu): State<Emulator>, body: Bytes) -> Response {
    match serde_json::from_slice::<UserMessage>(&body) {
        Ok(message) => {
            let update_id = emu.push_message(&message);
            axum::Json(json!({"ok": true, "update_id": update_id})).into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, format!("bad message: {e}")).into_response(),
    }
}

async fn messages_handler(State(emu): State<Emulator>) -> Response {
    axum::Json(json!({ "messages": emu.sent_messages() })).into_response()
}

async fn reset_handler(State(emu): State<Emulator>) -> Response {
    emu.reset();
    axum::Json(json!({"ok": true})).into_response()
}
