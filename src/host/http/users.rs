//! `POST /v1/users` and `POST /v1/users/clear`: a body of one context or a list of them.
//!
//! One context (a bot posting its sender's, the common request) takes the shortest path: parsed
//! straight into a context and updated on its own, no batch machinery. A list is taken apart
//! without copying (each item a slice of the body), its contexts parsed as the pages need them,
//! and the answers written as the outcomes arrive, in input order: what one request holds is
//! its body, its answer text and the pages in flight, not a tree of every context and every
//! outcome at once.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::value::RawValue;

use super::answer::{ApiError, ClearAnswer, Each, ListAnswer, Results, UserAnswer};
use super::{App, MAX_BATCH};
use crate::manager::UserOutcome;
use crate::resolve::{ContextError, UserContext};

/// Users of one list request updated at a time (the bot's pace still holds for them all).
const CONCURRENCY: usize = 16;

/// Contexts from which a list is a burst whose memory is handed back once traffic is quiet
/// ([`crate::memory`]).
const BURST: usize = 1_000;

/// A request body: one context, or a list of contexts still as text.
enum Contexts<'a> {
    One(Result<UserContext, ContextError>),
    List(Vec<&'a RawValue>),
}

/// Reads a body of one context or a list. `Err`: the body as a whole is unusable (not JSON,
/// neither an object nor a list, too many contexts); one bad context of a list is not.
fn contexts(body: &[u8]) -> Result<Contexts<'_>, ApiError> {
    let not_json = |e: serde_json::Error| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("the body is not JSON: {e}"),
        )
    };
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => {
            let items: Vec<&RawValue> = serde_json::from_slice(body).map_err(not_json)?;
            if items.len() > MAX_BATCH {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!(
                        "{} contexts; send at most {MAX_BATCH} per request",
                        items.len()
                    ),
                ));
            }
            Ok(Contexts::List(items))
        }
        Some(b'{') => match UserContext::from_json_bytes(body) {
            Ok(ctx) => Ok(Contexts::One(Ok(ctx))),
            // A context that is not even JSON is a bad body, not a bad context.
            Err(why) => match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
                Ok(_) => Ok(Contexts::One(Err(why))),
                Err(e) => Err(not_json(e)),
            },
        },
        _ => match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
            Err(e) => Err(not_json(e)),
            Ok(_) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "send one context object or a list of them",
            )),
        },
    }
}

/// One context's answer: 200, or 422 when it failed or was refused.
fn one<T: Serialize>(answer: Each<T>, failed: bool) -> Response {
    let status = if failed {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    (status, Json(answer)).into_response()
}

fn timed_out() -> Response {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "timed out; the updates go on",
    )
    .into_response()
}

pub(super) async fn update_users(State(app): State<App>, body: axum::body::Bytes) -> Response {
    // The updates run as a task of their own: a request that times out is answered 503 and
    // its updates go on (a list cut off halfway would leave its last users unsent and
    // unknown to the reconciliation).
    let timeout = app.timeout;
    let work = tokio::spawn(async move {
        match contexts(&body) {
            Err(refusal) => refusal.into_response(),
            Ok(Contexts::One(Err(why))) => one(Each::<UserAnswer>::refused(&why, None), true),
            Ok(Contexts::One(Ok(ctx))) => {
                let outcome = app.host.update_user(&ctx).await;
                one(
                    Each::Done(UserAnswer::from(&outcome)),
                    outcome.status.is_failed(),
                )
            }
            Ok(Contexts::List(items)) => update_list(&app, &items).await,
        }
    });
    match tokio::time::timeout(timeout, work).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(failed)) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the update task failed: {failed}"),
        )
        .into_response(),
        Err(_) => timed_out(),
    }
}

/// A list's users through the host's stream, the answers written in input order as soon as
/// every one before them is in (those that come early wait, a window's worth at most).
async fn update_list(app: &App, items: &[&RawValue]) -> Response {
    let refused = Mutex::default();
    let users = Parsed {
        items: items.iter().enumerate(),
        refused: &refused,
    };
    let mut answers = ListWriter::new(items.len());
    let mut early: BTreeMap<usize, UserOutcome> = BTreeMap::new();
    let mut outcomes = std::pin::pin!(app.host.update_stream(users, CONCURRENCY));
    while let Some((i, outcome)) = outcomes.next().await {
        early.insert(i, outcome);
        answers.catch_up(&mut early, &refused, false);
    }
    answers.catch_up(&mut early, &refused, true);
    if items.len() >= BURST {
        crate::memory::after_burst();
    }
    answers.finish()
}

/// A list's contexts, parsed as the pages take them; a bad one is set aside, to be answered
/// in its place. (An iterator type rather than a closure, whose lifetimes rustc cannot prove
/// general enough for the handler's future to be `Send`.)
struct Parsed<'a> {
    items: std::iter::Enumerate<std::slice::Iter<'a, &'a RawValue>>,
    refused: &'a Mutex<VecDeque<(usize, ContextError)>>,
}

impl Iterator for Parsed<'_> {
    type Item = (usize, UserContext);

    fn next(&mut self) -> Option<(usize, UserContext)> {
        for (i, raw) in self.items.by_ref() {
            match UserContext::from_json_str(raw.get()) {
                Ok(ctx) => return Some((i, ctx)),
                Err(why) => self
                    .refused
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push_back((i, why)),
            }
        }
        None
    }
}

/// `{"results": [...]}` written one answer at a time.
struct ListWriter {
    text: Vec<u8>,
    next: usize,
    len: usize,
}

impl ListWriter {
    fn new(len: usize) -> ListWriter {
        // Most answers are a few hundred bytes: one allocation for most lists.
        let mut text = Vec::with_capacity(64 + len * 320);
        text.extend_from_slice(b"{\"results\":[");
        ListWriter { text, next: 0, len }
    }

    /// Writes every answer that is due: the outcome or refusal at the next index, until one is
    /// missing. At the end (`all`) nothing more will come, and a missing one says so.
    fn catch_up(
        &mut self,
        early: &mut BTreeMap<usize, UserOutcome>,
        refused: &Mutex<VecDeque<(usize, ContextError)>>,
        all: bool,
    ) {
        while self.next < self.len {
            let at = self.next;
            if let Some(outcome) = early.remove(&at) {
                self.write(&Each::Done(UserAnswer::from(&outcome)));
                continue;
            }
            let why = {
                let mut refused = refused.lock().unwrap_or_else(|p| p.into_inner());
                match refused.front() {
                    Some((i, _)) if *i == at => refused.pop_front().map(|(_, why)| why),
                    _ => None,
                }
            };
            match why {
                Some(why) => self.write(&Each::<UserAnswer>::refused(&why, Some(at))),
                None if all => self.write(&Each::<UserAnswer>::refused(
                    &ContextError::new("", "no outcome"),
                    Some(at),
                )),
                None => return,
            }
        }
    }

    fn write<T: Serialize>(&mut self, answer: &Each<T>) {
        if self.next > 0 {
            self.text.push(b',');
        }
        // Into memory, of types whose every map key is a string: it cannot fail.
        serde_json::to_writer(&mut self.text, answer).expect("an answer serialises");
        self.next += 1;
    }

    fn finish(mut self) -> Response {
        self.text.extend_from_slice(b"]}");
        ([(header::CONTENT_TYPE, "application/json")], self.text).into_response()
    }
}

pub(super) async fn clear_users(State(app): State<App>, body: axum::body::Bytes) -> Response {
    let contexts = match contexts(&body) {
        Ok(c) => c,
        Err(refusal) => return refusal.into_response(),
    };
    let (list, parsed): (bool, Vec<Result<UserContext, ContextError>>) = match contexts {
        Contexts::One(one) => (false, vec![one]),
        Contexts::List(items) => (
            true,
            items
                .iter()
                .map(|raw| UserContext::from_json_str(raw.get()))
                .collect(),
        ),
    };
    let mut results = Vec::with_capacity(parsed.len());
    let mut failed = false;
    for (i, p) in parsed.iter().enumerate() {
        match p {
            Ok(ctx) => {
                let work = app.host.clear_user(ctx);
                let Ok(lists) = tokio::time::timeout(app.timeout, work).await else {
                    return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "timed out")
                        .into_response();
                };
                failed |= lists.iter().any(|l| l.status.is_failed());
                results.push(Each::Done(ClearAnswer {
                    user_id: ctx.user_id,
                    lists: lists.iter().map(ListAnswer::from).collect(),
                }));
            }
            Err(why) => {
                failed = true;
                results.push(Each::refused(why, list.then_some(i)));
            }
        }
    }
    if list {
        return Json(Results { results }).into_response();
    }
    match results.pop() {
        Some(answer) => one(answer, failed),
        None => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "no outcome").into_response(),
    }
}
