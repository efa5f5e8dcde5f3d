//! Building command lists: a profile in a language becomes a list of `BotCommand`s, each with a
//! description from the chain inline -> translator -> fallback language -> Title Case.
//!
//! Every list built here is valid for Telegram by construction: names were checked by the
//! config, descriptions are never empty and never longer than 256 characters, and profiles hold
//! at most 100 commands. Pure: no I/O.

use std::collections::HashMap;

/// Build-time maps are keyed by short strings and languages: foldhash, not SipHash (which was
/// the largest single cost of a rebuild).
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::Xxh3;

use crate::config::{CommandSpec, Config};
use crate::limits::MAX_DESCRIPTION_CHARS;
use crate::resolve::Translator;
use crate::scope::Lang;

/// One command as the Bot API carries it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BotCommand {
    pub command: String,
    pub description: String,
}

/// A built, immutable command list, shared between every user and scope that shows it.
pub type Menu = Arc<[BotCommand]>;

/// A content hash of a list: what the applied-state stores keep instead of the list itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Fingerprint(pub u128);

impl Fingerprint {
    /// xxh3-128 over length-prefixed fields: stable across processes and versions, so a
    /// persisted fingerprint stays comparable after a restart.
    pub fn of(commands: &[BotCommand]) -> Fingerprint {
        let mut h = Xxh3::new();
        h.update(&(commands.len() as u64).to_le_bytes());
        for c in commands {
            for field in [&c.command, &c.description] {
                h.update(&(field.len() as u64).to_le_bytes());
                h.update(field.as_bytes());
            }
        }
        Fingerprint(h.digest128())
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

/// Something the builder had to make up for, reported so the operator can fix the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MenuNote {
    /// No description in this language: inline or translated. `used` tells what was shown instead.
    MissingTranslation {
        command: String,
        language: Lang,
        key: String,
        used: Fallback,
    },
    /// A translator returned a description over 256 characters; it was shortened.
    Truncated {
        command: String,
        language: Lang,
        chars: usize,
    },
}

/// What a missing description was replaced with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    FallbackLanguage(Lang),
    TitleCase,
}

impl fmt::Display for MenuNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MenuNote::MissingTranslation {
                command,
                language,
                key,
                used,
            } => {
                write!(
                    f,
                    "/{command} has no `{language}` description (key `{key}`); "
                )?;
                match used {
                    Fallback::FallbackLanguage(l) => write!(f, "showing the `{l}` one"),
                    Fallback::TitleCase => write!(f, "showing its Title Cased name"),
                }
            }
            MenuNote::Truncated {
                command,
                language,
                chars,
            } => write!(
                f,
                "/{command} `{language}` description is {chars} characters; shortened to {MAX_DESCRIPTION_CHARS}"
            ),
        }
    }
}

/// Every profile's menu in every configured language, built once and then only looked up.
#[derive(Debug, Clone)]
pub struct MenuTable {
    /// profile -> language -> menu; nested so a lookup by `&str` allocates nothing.
    menus: FastMap<String, FastMap<Lang, Menu>>,
    notes: Vec<MenuNote>,
}

impl MenuTable {
    pub fn build(config: &Config, translator: &dyn Translator) -> MenuTable {
        let builder = Builder {
            config,
            translated: prefetch(config, translator),
        };
        let mut menus: FastMap<String, FastMap<Lang, Menu>> = FastMap::default();
        let mut notes = Vec::new();
        // Descriptions depend on the command and language only: build each once, share them.
        let mut described: FastMap<(&str, Lang), BotCommand> = FastMap::default();
        for &lang in &config.languages {
            for cmd in config.commands.values() {
                let command = builder.describe(cmd, lang, &mut notes);
                described.insert((cmd.name.as_str(), lang), command);
            }
        }
        for profile in config.profiles.values() {
            for &lang in &config.languages {
                let list: Menu = profile
                    .commands
                    .iter()
                    .map(|name| described[&(name.as_str(), lang)].clone())
                    .collect();
                menus
                    .entry(profile.name.clone())
                    .or_default()
                    .insert(lang, list);
            }
        }
        MenuTable { menus, notes }
    }

    /// The menu of a profile in a configured language.
    pub fn get(&self, profile: &str, language: Lang) -> Option<&Menu> {
        self.menus.get(profile)?.get(&language)
    }

    /// Translations that were missing or too long, one note each.
    pub fn notes(&self) -> &[MenuNote] {
        &self.notes
    }

    /// The notes as operator warnings: missing translations grouped per language and
    /// fallback, so a language without a translator is one line, not one per command.
    pub fn warnings(&self) -> Vec<String> {
        let mut missing: Vec<((Lang, Fallback), Vec<&str>)> = Vec::new();
        let mut out = Vec::new();
        for note in &self.notes {
            match note {
                MenuNote::MissingTranslation {
                    command,
                    language,
                    used,
                    ..
                } => {
                    let group = (*language, *used);
                    match missing.iter_mut().find(|(g, _)| *g == group) {
                        Some((_, commands)) => commands.push(command),
                        None => missing.push((group, vec![command])),
                    }
                }
                MenuNote::Truncated { .. } => out.push(note.to_string()),
            }
        }
        for ((language, used), commands) in missing {
            let shown = match used {
                Fallback::FallbackLanguage(l) => format!("the `{l}` description"),
                Fallback::TitleCase => "the Title Cased name".to_string(),
            };
            let list: Vec<String> = commands.iter().map(|c| format!("/{c}")).collect();
            out.push(format!(
                "no `{language}` description (inline or from a translator) for {}; showing {shown}",
                list.join(", ")
            ));
        }
        out
    }
}

struct Builder<'a> {
    config: &'a Config,
    /// Translator answers by (command, language), fetched one batch per language.
    translated: FastMap<(&'a str, Lang), String>,
}

/// Asks the translator once per language for every command without an inline description
/// there: a plugin translator is crossed once per language, not once per command.
fn prefetch<'a>(
    config: &'a Config,
    translator: &dyn Translator,
) -> FastMap<(&'a str, Lang), String> {
    let mut out = FastMap::default();
    for &lang in &config.languages {
        let wanted: Vec<(&'a str, String)> = config
            .commands
            .values()
            .filter(|c| !c.descriptions.contains_key(&lang))
            .map(|c| (c.name.as_str(), c.translation_key(&config.i18n_key_prefix)))
            .collect();
        if wanted.is_empty() {
            continue;
        }
        let keys: Vec<&str> = wanted.iter().map(|(_, k)| k.as_str()).collect();
        let texts = translator.translate_batch(&keys, lang);
        for ((name, _), text) in wanted.into_iter().zip(texts) {
            if let Some(text) = text {
                out.insert((name, lang), text);
            }
        }
    }
    out
}

impl Builder<'_> {
    /// Inline description, else the translator's, in `language`.
    fn lookup(
        &self,
        cmd: &CommandSpec,
        language: Lang,
        notes: &mut Vec<MenuNote>,
    ) -> Option<String> {
        if let Some(text) = cmd.descriptions.get(&language) {
            return Some(text.clone());
        }
        let text = self.translated.get(&(cmd.name.as_str(), language))?;
        let text = text.trim();
        if text.is_empty() {
            return None;
        }
        let chars = text.chars().count();
        if chars > MAX_DESCRIPTION_CHARS {
            notes.push(MenuNote::Truncated {
                command: cmd.name.clone(),
                language,
                chars,
            });
            let mut short: String = text.chars().take(MAX_DESCRIPTION_CHARS - 1).collect();
            short.push('…');
            return Some(short);
        }
        Some(text.to_string())
    }

    fn describe(&self, cmd: &CommandSpec, language: Lang, notes: &mut Vec<MenuNote>) -> BotCommand {
        let fallback = self.config.fallback_language;
        let description = match self.lookup(cmd, language, notes) {
            Some(text) => text,
            None => {
                // The fallback language has its own pass (it is one of `languages`), which
                // already noted a shortened text: don't note it again for every language.
                let (text, used) = match (language != fallback)
                    .then(|| self.lookup(cmd, fallback, &mut Vec::new()))
                    .flatten()
                {
                    Some(text) => (text, Fallback::FallbackLanguage(fallback)),
                    None => (title_case(&cmd.name), Fallback::TitleCase),
                };
                notes.push(MenuNote::MissingTranslation {
                    command: cmd.name.clone(),
                    language,
                    key: cmd.translation_key(&self.config.i18n_key_prefix),
                    used,
                });
                text
            }
        };
        BotCommand {
            command: cmd.name.clone(),
            description,
        }
    }
}

/// `my_orders` -> `My Orders`: the last resort description, never empty for a valid name.
pub fn title_case(name: &str) -> String {
    let words: Vec<String> = name
        .split('_')
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut chars = w.chars();
            match chars.next() {
                Some(first) => first.to_uppercase().chain(chars).collect(),
                None => String::new(),
            }
        })
        .collect();
    if words.is_empty() {
        name.to_string()
    } else {
        words.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Format;
    use crate::limits;
    use crate::resolve::{Catalog, NoTranslator};

    fn config() -> Config {
        let text = r#"
languages = ["en", "ru", "es"]
fallback_language = "en"
i18n_key_prefix = "bot"
default_profile = "all"
[commands.start]
descriptions = { en = "Start", ru = "Старт" }
[commands.my_orders]
i18n_key = "orders.title"
[commands.help]
descriptions = { en = "Help" }
[profiles.all]
include = ["start", "my_orders", "help"]
"#;
        Config::parse(text, Format::Toml, "t.toml").unwrap().config
    }

    fn lang(s: &str) -> Lang {
        Lang::parse(s).unwrap()
    }

    #[test]
    fn description_chain_inline_translator_fallback_title() {
        let config = config();
        let mut catalog = Catalog::default();
        catalog.insert(lang("es"), "bot.start.desc", "Iniciar");
        catalog.insert(lang("ru"), "orders.title", "Заказы");
        catalog.insert(lang("en"), "bot.start.desc", "ignored: inline wins");
        let table = MenuTable::build(&config, &catalog);

        let es = table.get("all", lang("es")).unwrap();
        assert_eq!(es[0].description, "Iniciar"); // translator
        assert_eq!(es[1].description, "My Orders"); // no es, no en: title case
        assert_eq!(es[2].description, "Help"); // en fallback
        let ru = table.get("all", lang("ru")).unwrap();
        assert_eq!(ru[0].description, "Старт"); // inline
        assert_eq!(ru[1].description, "Заказы"); // custom i18n_key
        let en = table.get("all", lang("en")).unwrap();
        assert_eq!(en[0].description, "Start");

        let missing: Vec<String> = table.notes().iter().map(|n| n.to_string()).collect();
        assert!(missing.contains(&"/my_orders has no `es` description (key `orders.title`); showing its Title Cased name".to_string()), "{missing:#?}");
        assert!(
            missing
                .iter()
                .any(|m| m.starts_with("/help has no `ru`") && m.ends_with("showing the `en` one"))
        );
        // en: my_orders missing; es: my_orders, help; ru: help. start is complete everywhere.
        assert_eq!(missing.len(), 4, "{missing:#?}");
        assert_eq!(
            table.warnings(),
            [
                "no `en` description (inline or from a translator) for /my_orders; showing the Title Cased name",
                "no `ru` description (inline or from a translator) for /help; showing the `en` description",
                "no `es` description (inline or from a translator) for /my_orders; showing the Title Cased name",
                "no `es` description (inline or from a translator) for /help; showing the `en` description",
            ]
        );
    }

    #[test]
    fn translator_output_is_made_valid() {
        let config = config();
        let mut catalog = Catalog::default();
        catalog.insert(lang("es"), "bot.start.desc", "   ");
        catalog.insert(lang("ru"), "orders.title", &"я".repeat(300));
        let table = MenuTable::build(&config, &catalog);
        assert_eq!(
            table.get("all", lang("es")).unwrap()[0].description,
            "Start"
        );
        let long = &table.get("all", lang("ru")).unwrap()[1].description;
        assert_eq!(long.chars().count(), 256);
        assert!(
            table
                .notes()
                .iter()
                .any(|n| matches!(n, MenuNote::Truncated { chars: 300, .. }))
        );
        for menu in table.menus.values().flat_map(FastMap::values) {
            for c in menu.iter() {
                assert!(limits::description_problem(&c.description).is_none());
                assert!(limits::command_name_problem(&c.command).is_none());
            }
        }
        // A shortened fallback text is noted once, not again for each language falling back to it.
        let mut long_en = Catalog::default();
        long_en.insert(lang("en"), "orders.title", &"o".repeat(300));
        let table = MenuTable::build(&config, &long_en);
        let truncated = table
            .notes()
            .iter()
            .filter(|n| matches!(n, MenuNote::Truncated { .. }))
            .count();
        assert_eq!(truncated, 1, "{:?}", table.notes());
        assert_eq!(
            table.get("all", lang("es")).unwrap()[1]
                .description
                .chars()
                .count(),
            256
        );
    }

    #[test]
    fn same_description_is_shared_not_rebuilt() {
        let table = MenuTable::build(&config(), &NoTranslator);
        assert_eq!(table.menus["all"].len(), 3);
        assert!(table.get("all", lang("de")).is_none());
    }

    #[test]
    fn title_case_and_fingerprints() {
        assert_eq!(title_case("my_orders"), "My Orders");
        assert_eq!(title_case("start"), "Start");
        assert_eq!(title_case("2fa"), "2fa");
        assert_eq!(title_case("_x__y_"), "X Y");
        let a = [BotCommand {
            command: "ab".into(),
            description: "c".into(),
        }];
        let b = [BotCommand {
            command: "a".into(),
            description: "bc".into(),
        }];
        assert_ne!(Fingerprint::of(&a), Fingerprint::of(&b));
        assert_eq!(Fingerprint::of(&a), Fingerprint::of(&a.clone()));
        assert_ne!(Fingerprint::of(&[]), Fingerprint::of(&a));
    }
}
