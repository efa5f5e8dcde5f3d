//! Golden cases for a plugin, as `cmdscope plugins test` runs them before a deploy.
//!
//! A cases file is JSON lines. A resolver case is `{"context": {...}, "profile": "user"}` (the
//! context in the shape of a `sync-users` line; a bare context is a case without an
//! expectation); a translator case is `{"key": "shop.cart.desc", "locale": "ru", "text": "..."}`
//! (`"text": null` expects no translation; no `text`, no expectation). Cases without an
//! expectation are for [`compare`]: what an operator wants to know before a hot swap is which
//! answers change.

use std::fmt;

use serde_json::Value;

use super::Plugin;
use crate::resolve::{Resolver, Translator, UserContext};
use crate::scope::Lang;

/// One line of a cases file.
#[derive(Debug, Clone, PartialEq)]
pub enum Case {
    Resolve {
        context: UserContext,
        profile: Option<String>,
    },
    Translate {
        key: String,
        locale: Lang,
        /// `Some(None)`: expects no translation; `None`: no expectation.
        text: Option<Option<String>>,
    },
}

impl Case {
    /// What the case asks, for reports: the context as JSON, or `key (locale)`.
    pub fn subject(&self) -> String {
        match self {
            Case::Resolve { context, .. } => compact(context).to_string(),
            Case::Translate { key, locale, .. } => format!("{key} ({locale})"),
        }
    }

    /// The expected answer, if the case has one.
    pub fn expected(&self) -> Option<Answer> {
        match self {
            Case::Resolve { profile, .. } => profile.clone().map(Answer::Profile),
            Case::Translate { text, .. } => text.clone().map(Answer::Text),
        }
    }
}

/// A context as a case file would write it: what differs from the defaults.
fn compact(ctx: &UserContext) -> Value {
    let mut out = serde_json::Map::new();
    out.insert("user_id".into(), ctx.user_id.into());
    if let Some(chat) = ctx.chat_id {
        out.insert("chat_id".into(), chat.into());
    }
    if ctx.chat_type != crate::ChatType::Private {
        out.insert(
            "chat_type".into(),
            serde_json::to_value(ctx.chat_type).unwrap_or_default(),
        );
    }
    if let Some(lang) = &ctx.language_code {
        out.insert("language_code".into(), lang.clone().into());
    }
    if !ctx.flags.is_empty() {
        out.insert(
            "flags".into(),
            serde_json::to_value(&ctx.flags).unwrap_or_default(),
        );
    }
    if ctx.is_chat_admin {
        out.insert("is_chat_admin".into(), true.into());
    }
    Value::Object(out)
}

/// A line that is not a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    /// 1-based.
    pub line: usize,
    pub error: String,
}

/// Parses a cases file: every case with its line number, and every line that is not one.
pub fn parse(text: &str) -> (Vec<(usize, Case)>, Vec<BadLine>) {
    let mut cases = Vec::new();
    let mut bad = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        if line.trim().is_empty() || line.trim_start().starts_with("//") {
            continue;
        }
        match parse_line(line) {
            Ok(case) => cases.push((line_no, case)),
            Err(error) => bad.push(BadLine {
                line: line_no,
                error,
            }),
        }
    }
    (cases, bad)
}

fn parse_line(line: &str) -> Result<Case, String> {
    let value: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let Value::Object(mut fields) = value else {
        return Err("a case is a JSON object".into());
    };
    if let Some(key) = fields.remove("key") {
        let key = key.as_str().ok_or("key: expected a string")?.to_string();
        let locale = fields
            .remove("locale")
            .ok_or("locale: missing (a translator case has key, locale and text)")?;
        let locale = locale.as_str().ok_or("locale: expected a string")?;
        let locale = Lang::parse(locale)
            .ok_or_else(|| format!("locale: `{locale}` is not a two-letter language code"))?;
        let text = match fields.remove("text") {
            None => None,
            Some(Value::Null) => Some(None),
            Some(Value::String(t)) => Some(Some(t)),
            Some(_) => return Err("text: expected a string or null".into()),
        };
        return Ok(Case::Translate { key, locale, text });
    }
    let (context, profile) = match fields.remove("context") {
        Some(context) => {
            let profile = match fields.remove("profile") {
                None => None,
                Some(Value::String(p)) => Some(p),
                Some(_) => return Err("profile: expected a string".into()),
            };
            (context, profile)
        }
        // A bare context, as `sync-users` reads it.
        None => (Value::Object(fields), None),
    };
    let context = UserContext::from_json(context).map_err(|e| format!("context: {e}"))?;
    Ok(Case::Resolve { context, profile })
}

/// What a plugin answered a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Profile(String),
    Text(Option<String>),
    /// The call failed: the plugin's error, a trap, a timeout, a limit.
    Error(String),
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Answer::Profile(p) => write!(f, "{p}"),
            Answer::Text(Some(t)) => write!(f, "{t:?}"),
            Answer::Text(None) => write!(f, "no translation"),
            Answer::Error(e) => write!(f, "error: {e}"),
        }
    }
}

/// Runs one case. A resolver case against a translator (or the other way round) is an error
/// answer, not a panic.
pub fn answer(plugin: &Plugin, case: &Case) -> Answer {
    match (plugin, case) {
        (Plugin::Resolver(r), Case::Resolve { context, .. }) => match r.resolve(context) {
            Ok(profile) => Answer::Profile(profile),
            Err(e) => Answer::Error(e.to_string()),
        },
        (Plugin::Translator(t), Case::Translate { key, locale, .. }) => {
            match t.try_translate_batch(&[key.as_str()], *locale) {
                Some(mut texts) if texts.len() == 1 => Answer::Text(texts.remove(0)),
                _ => Answer::Error("the translator failed (see the log)".into()),
            }
        }
        (Plugin::Resolver(_), Case::Translate { .. }) => {
            Answer::Error("a translator case, but the plugin is a resolver".into())
        }
        (Plugin::Translator(_), Case::Resolve { .. }) => {
            Answer::Error("a resolver case, but the plugin is a translator".into())
        }
    }
}

/// A case whose answer is not the expected one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub line: usize,
    pub subject: String,
    /// `None` when the case had no expectation but the call failed.
    pub expected: Option<Answer>,
    pub got: Answer,
}

/// The outcome of a cases file against a plugin.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub cases: usize,
    pub passed: usize,
    /// Cases without an expectation that answered.
    pub unchecked: usize,
    pub failures: Vec<Failure>,
    /// Answers that changed from the old version (`compare`).
    pub changes: Vec<Change>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.failures.is_empty()
    }
}

/// A case answered differently by two versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub line: usize,
    pub subject: String,
    pub old: Answer,
    pub new: Answer,
}

/// Checks every case against `plugin`; with `old`, also lists every case whose answer
/// changes between the versions. `allowed` (a config's profiles) makes a profile outside it a
/// failure even without an expectation.
pub fn run(
    plugin: &Plugin,
    cases: &[(usize, Case)],
    old: Option<&Plugin>,
    allowed: Option<&dyn Fn(&str) -> bool>,
) -> Report {
    let mut report = Report::default();
    for (line, case) in cases {
        report.cases += 1;
        let got = answer(plugin, case);
        let expected = case.expected();
        let unknown = match (&got, allowed) {
            (Answer::Profile(p), Some(allowed)) => !allowed(p),
            _ => false,
        };
        let failed = match &expected {
            Some(want) => *want != got || unknown,
            None => matches!(got, Answer::Error(_)) || unknown,
        };
        if failed {
            report.failures.push(Failure {
                line: *line,
                subject: case.subject(),
                expected: expected.clone(),
                got: if unknown {
                    Answer::Error(format!("{got}: a profile the config does not define"))
                } else {
                    got.clone()
                },
            });
        } else if expected.is_some() {
            report.passed += 1;
        } else {
            report.unchecked += 1;
        }
        if let Some(old) = old {
            let before = answer(old, case);
            if before != got {
                report.changes.push(Change {
                    line: *line,
                    subject: case.subject(),
                    old: before,
                    new: got,
                });
            }
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resolve::FlagValue;

    #[test]
    fn lines_parse_into_cases_or_say_why_not() {
        let text = r#"{"context": {"user_id": 1, "flags": {"registered": true}}, "profile": "user"}
{"user_id": 2, "language_code": "en"}

{"key": "shop.cart.desc", "locale": "ru", "text": "Ваша корзина"}
{"key": "shop.cart.desc", "locale": "de", "text": null}
{"key": "shop.cart.desc", "locale": "xx-long"}
{"context": {"user_id": "one"}}
not json
"#;
        let (cases, bad) = parse(text);
        assert_eq!(cases.len(), 4);
        let Case::Resolve { context, profile } = &cases[0].1 else {
            panic!()
        };
        assert_eq!(context.flags["registered"], FlagValue::Bool(true));
        assert_eq!(profile.as_deref(), Some("user"));
        assert_eq!(cases[1].0, 2);
        assert_eq!(cases[1].1.expected(), None);
        assert_eq!(
            cases[3].1.expected(),
            Some(Answer::Text(None)),
            "null expects no translation"
        );
        let lines: Vec<usize> = bad.iter().map(|b| b.line).collect();
        assert_eq!(lines, [6, 7, 8]);
        assert!(bad[0].error.starts_with("locale:"), "{bad:?}");
        assert!(bad[1].error.starts_with("context: user_id:"), "{bad:?}");
    }
}
