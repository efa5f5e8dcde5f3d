//! `shop-translator` as built against interface 0.1 (`wit/v0.1`, frozen), with its own
//! bindings and the example's texts: the 0.1 translator fixture.

wit_bindgen::generate!({
    path: "../../../wit/v0.1",
    world: "translator-plugin",
});

use exports::cmdscope::plugin::translator::{Guest, TranslatorInfo};

#[path = "../../../../plugins/shop-translator/src/texts.rs"]
mod texts;

struct Shop;

fn lookup(key: &str, locale: &str) -> Option<String> {
    let (_, en, ru, es) = texts::TEXTS.iter().find(|(k, ..)| *k == key)?;
    match locale {
        "en" => Some(en.to_string()),
        "ru" => Some(ru.to_string()),
        "es" => Some(es.to_string()),
        _ => None,
    }
}

impl Guest for Shop {
    fn info() -> TranslatorInfo {
        TranslatorInfo {
            name: "shop-translator".into(),
            version: "0.1.0".into(),
            locales: ["en", "ru", "es"].map(String::from).to_vec(),
        }
    }

    fn translate(key: String, locale: String) -> Option<String> {
        lookup(&key, &locale)
    }

    fn translate_batch(keys: Vec<String>, locale: String) -> Vec<Option<String>> {
        keys.iter().map(|k| lookup(k, &locale)).collect()
    }
}

export!(Shop);
