//! Translation catalogs from files, one per language, in JSON or Fluent, named in the config's
//! translator chain as `"json:DIR"` or `"fluent:DIR"` (relative to the config file).
//!
//! - JSON: `DIR/<lang>.json` holding `{"shop.start.desc": "Start the bot", ...}`.
//! - Fluent: `DIR/<lang>.ftl`; a key's message id is the key with `.` replaced by `-`
//!   (`shop.start.desc` -> `shop-start-desc = Start the bot`), as Fluent ids allow no dots.
//!
//! Catalogs are read and formatted once, at load; a file that fails to parse is an error naming
//! the file and the line. A language without a file simply has no translations there (the
//! chain falls through).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::resolve::Translator;
use crate::scope::Lang;

/// Which file format a catalog is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogFormat {
    Json,
    Fluent,
}

impl CatalogFormat {
    fn extension(self) -> &'static str {
        match self {
            CatalogFormat::Json => "json",
            CatalogFormat::Fluent => "ftl",
        }
    }
}

/// One entry of the config's `translators` chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TranslatorSource {
    /// A translator plugin, by the name it reports.
    Plugin(String),
    /// A folder of catalog files.
    Catalog { format: CatalogFormat, dir: PathBuf },
}

impl TranslatorSource {
    /// `json:DIR`, `fluent:DIR`, or a plugin name. Relative folders are taken from `base`.
    pub fn parse(entry: &str, base: &Path) -> Result<TranslatorSource, String> {
        let catalog = |format, dir: &str| {
            if dir.trim().is_empty() {
                Err(format!(
                    "`{entry}` names no folder: write e.g. \"{}:locales\"",
                    entry.split(':').next().unwrap_or("json")
                ))
            } else {
                Ok(TranslatorSource::Catalog {
                    format,
                    dir: base.join(dir),
                })
            }
        };
        match entry.split_once(':') {
            Some(("json", dir)) => catalog(CatalogFormat::Json, dir),
            Some(("fluent", dir)) => catalog(CatalogFormat::Fluent, dir),
            Some((other, _)) => Err(format!(
                "unknown catalog format `{other}`: use json:DIR, fluent:DIR or a plugin name"
            )),
            None => Ok(TranslatorSource::Plugin(entry.to_string())),
        }
    }
}

/// A catalog file that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogError {
    pub file: PathBuf,
    /// 1-based; 0 when the problem is not at a line (unreadable file).
    pub line: usize,
    pub message: String,
}

impl fmt::Display for CatalogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
        } else {
            write!(f, "{}: {}", self.file.display(), self.message)
        }
    }
}

impl std::error::Error for CatalogError {}

/// Texts by language and key, read from one folder.
#[derive(Debug, Clone, Default)]
pub struct FileCatalog {
    texts: HashMap<Lang, HashMap<String, String>>,
}

impl FileCatalog {
    /// Reads `<lang>.<ext>` for each language; every file that fails is reported.
    pub fn load(
        dir: &Path,
        format: CatalogFormat,
        languages: &[Lang],
    ) -> Result<FileCatalog, Vec<CatalogError>> {
        let mut catalog = FileCatalog::default();
        let mut errors = Vec::new();
        if !dir.is_dir() {
            return Err(vec![CatalogError {
                file: dir.to_path_buf(),
                line: 0,
                message: "no such folder".into(),
            }]);
        }
        for &lang in languages {
            let file = dir.join(format!("{lang}.{}", format.extension()));
            let text = match std::fs::read_to_string(&file) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    tracing::info!(file = %file.display(), "no catalog for `{lang}`");
                    continue;
                }
                Err(e) => {
                    errors.push(CatalogError {
                        file,
                        line: 0,
                        message: e.to_string(),
                    });
                    continue;
                }
            };
            let parsed = match format {
                CatalogFormat::Json => parse_json(&text, &file),
                CatalogFormat::Fluent => parse_fluent(&text, &file, lang),
            };
            match parsed {
                Ok(texts) => {
                    catalog.texts.insert(lang, texts);
                }
                Err(mut e) => errors.append(&mut e),
            }
        }
        if errors.is_empty() {
            Ok(catalog)
        } else {
            Err(errors)
        }
    }

    pub fn len(&self) -> usize {
        self.texts.values().map(HashMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Translator for FileCatalog {
    fn translate(&self, key: &str, language: Lang) -> Option<String> {
        self.texts.get(&language)?.get(key).cloned()
    }
}

fn parse_json(text: &str, file: &Path) -> Result<HashMap<String, String>, Vec<CatalogError>> {
    serde_json::from_str(text).map_err(|e| {
        vec![CatalogError {
            file: file.to_path_buf(),
            line: e.line(),
            message: format!("{e} (a JSON catalog is an object of \"key\": \"text\")"),
        }]
    })
}

/// Parses a Fluent file and formats each message once (catalog texts take no arguments).
fn parse_fluent(
    text: &str,
    file: &Path,
    lang: Lang,
) -> Result<HashMap<String, String>, Vec<CatalogError>> {
    use fluent_bundle::FluentResource;
    use fluent_bundle::concurrent::FluentBundle;

    let line_of = |pos: usize| text[..pos.min(text.len())].matches('\n').count() + 1;
    let resource = FluentResource::try_new(text.to_string()).map_err(|(_, errors)| {
        errors
            .into_iter()
            .map(|e| CatalogError {
                file: file.to_path_buf(),
                line: line_of(e.pos.start),
                message: format!("Fluent syntax error: {}", e.kind),
            })
            .collect::<Vec<_>>()
    })?;
    let ids: Vec<String> = resource
        .entries()
        .filter_map(|entry| match entry {
            fluent_syntax::ast::Entry::Message(m) if m.value.is_some() => {
                Some(m.id.name.to_string())
            }
            _ => None,
        })
        .collect();
    let locale: unic_langid::LanguageIdentifier = lang.as_str().parse().map_err(|_| {
        vec![CatalogError {
            file: file.to_path_buf(),
            line: 0,
            message: format!("`{lang}` is not a language Fluent knows"),
        }]
    })?;
    let mut bundle = FluentBundle::new_concurrent(vec![locale]);
    // Telegram shows plain text: no Unicode isolation marks around placeables.
    bundle.set_use_isolating(false);
    if let Err(errors) = bundle.add_resource(resource) {
        return Err(errors
            .into_iter()
            .map(|e| CatalogError {
                file: file.to_path_buf(),
                line: 0,
                message: format!("{e:?}"),
            })
            .collect());
    }
    let mut texts = HashMap::new();
    let mut problems = Vec::new();
    for id in ids {
        let Some(pattern) = bundle.get_message(&id).and_then(|m| m.value()) else {
            continue;
        };
        let mut errors = Vec::new();
        let value = bundle
            .format_pattern(pattern, None, &mut errors)
            .into_owned();
        if !errors.is_empty() {
            problems.push(CatalogError {
                file: file.to_path_buf(),
                line: text.find(&format!("{id} =")).map(line_of).unwrap_or(0),
                message: format!(
                    "message `{id}` needs arguments a command description cannot have: {errors:?}"
                ),
            });
            continue;
        }
        texts.insert(id.replace('-', "."), value);
    }
    if problems.is_empty() {
        Ok(texts)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lang(s: &str) -> Lang {
        Lang::parse(s).unwrap()
    }

    #[test]
    fn json_and_fluent_catalogs_translate() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("en.json"),
            r#"{"shop.start.desc": "Start the bot"}"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join("ru.ftl"),
            "# comment\nshop-start-desc = Запустить бота\nshop-help-desc = Помощь\n",
        )
        .unwrap();
        let json =
            FileCatalog::load(dir.path(), CatalogFormat::Json, &[lang("en"), lang("ru")]).unwrap();
        assert_eq!(
            json.translate("shop.start.desc", lang("en")).as_deref(),
            Some("Start the bot")
        );
        assert_eq!(
            json.translate("shop.start.desc", lang("ru")),
            None,
            "no ru.json: falls through"
        );
        let ftl = FileCatalog::load(dir.path(), CatalogFormat::Fluent, &[lang("en"), lang("ru")])
            .unwrap();
        assert_eq!(
            ftl.translate("shop.start.desc", lang("ru")).as_deref(),
            Some("Запустить бота")
        );
        assert_eq!(
            ftl.translate("shop.help.desc", lang("ru")).as_deref(),
            Some("Помощь")
        );
        assert_eq!(ftl.len(), 2);
    }

    #[test]
    fn parse_errors_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("en.json"),
            "{\n  \"a\": \"b\",\n  \"c\": 3\n}",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("en.ftl"),
            "ok = fine\nalso = fine\n= no id here\nlast = fine\n",
        )
        .unwrap();
        let e = FileCatalog::load(dir.path(), CatalogFormat::Json, &[lang("en")]).unwrap_err();
        assert_eq!(e[0].line, 3);
        assert!(e[0].to_string().contains("en.json:3: "), "{}", e[0]);
        let e = FileCatalog::load(dir.path(), CatalogFormat::Fluent, &[lang("en")]).unwrap_err();
        assert_eq!(e[0].line, 3, "{}", e[0]);
        assert!(
            e[0].to_string().contains("en.ftl:3: Fluent syntax error"),
            "{}",
            e[0]
        );
        let missing =
            FileCatalog::load(&dir.path().join("nope"), CatalogFormat::Json, &[lang("en")])
                .unwrap_err();
        assert!(missing[0].to_string().ends_with("no such folder"));
    }

    #[test]
    fn chain_entries_parse() {
        let base = Path::new("/etc/bot");
        assert_eq!(
            TranslatorSource::parse("json:locales", base).unwrap(),
            TranslatorSource::Catalog {
                format: CatalogFormat::Json,
                dir: PathBuf::from("/etc/bot/locales")
            }
        );
        assert_eq!(
            TranslatorSource::parse("shop-translator", base).unwrap(),
            TranslatorSource::Plugin("shop-translator".into())
        );
        assert!(
            TranslatorSource::parse("yaml:x", base)
                .unwrap_err()
                .contains("unknown catalog format")
        );
        assert!(TranslatorSource::parse("fluent:", base).is_err());
    }
}
