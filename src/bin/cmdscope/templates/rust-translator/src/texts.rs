//! The texts, by key and locale. A key or locale it lacks answers `None`: the host then asks
//! the next translator, then falls back to the config's `fallback_language`.

pub const LOCALES: &[&str] = &["en", "ru"];

/// (key, en, ru)
const TEXTS: &[(&str, &str, &str)] = &[
    ("cmd.start.desc", "Start the bot", "Запустить бота"),
    ("cmd.help.desc", "How it works", "Как это работает"),
];

pub fn lookup(key: &str, locale: &str) -> Option<&'static str> {
    let (_, en, ru) = TEXTS.iter().find(|(k, ..)| *k == key)?;
    match locale {
        "en" => Some(en),
        "ru" => Some(ru),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_in_every_locale_and_nothing_else() {
        for (key, ..) in TEXTS {
            for locale in LOCALES {
                assert!(lookup(key, locale).is_some_and(|t| !t.is_empty()), "{key} {locale}");
            }
        }
        assert_eq!(lookup("cmd.start.desc", "de"), None);
        assert_eq!(lookup("cmd.nope.desc", "en"), None);
    }
}
