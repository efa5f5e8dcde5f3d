//! The example translator: `shop.<command>.desc` in en, ru and es.
use cmdscope_plugin_sdk::{Translator, TranslatorInfo, export_translator};

struct Shop;

mod texts;
use texts::TEXTS;

pub fn lookup(key: &str, locale: &str) -> Option<&'static str> {
    let (_, en, ru, es) = TEXTS.iter().find(|(k, ..)| *k == key)?;
    match locale {
        "en" => Some(en),
        "ru" => Some(ru),
        "es" => Some(es),
        _ => None,
    }
}

impl Translator for Shop {
    fn info() -> TranslatorInfo {
        TranslatorInfo::new(
            "shop-translator",
            env!("CARGO_PKG_VERSION"),
            &["en", "ru", "es"],
        )
    }

    fn translate(key: String, locale: String) -> Option<String> {
        lookup(&key, &locale).map(str::to_string)
    }

    fn translate_batch(keys: Vec<String>, locale: String) -> Vec<Option<String>> {
        keys.iter()
            .map(|k| lookup(k, &locale).map(str::to_string))
            .collect()
    }
}

export_translator!(Shop);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_in_every_locale() {
        for (key, ..) in TEXTS {
            for locale in ["en", "ru", "es"] {
                assert!(
                    lookup(key, locale).is_some_and(|t| !t.is_empty()),
                    "{key} {locale}"
                );
            }
        }
        assert_eq!(lookup("shop.start.desc", "de"), None);
        assert_eq!(lookup("nope", "en"), None);
    }
}
