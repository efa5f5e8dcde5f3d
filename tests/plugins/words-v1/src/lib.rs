//! Translator `words`: `words.<command>.desc` -> "<Command> v1" in English: one half of the
//! translator hot-swap tests.
use cmdscope_plugin_sdk::{Translator, TranslatorInfo, export_translator};

struct Words;

fn text(key: &str, locale: &str) -> Option<String> {
    let name = key.strip_prefix("words.")?.strip_suffix(".desc")?;
    (locale == "en").then(|| format!("{name} v1"))
}

impl Translator for Words {
    fn info() -> TranslatorInfo {
        TranslatorInfo::new("words", "1.0.0", &["en"])
    }

    fn translate(key: String, locale: String) -> Option<String> {
        text(&key, &locale)
    }

    fn translate_batch(keys: Vec<String>, locale: String) -> Vec<Option<String>> {
        keys.iter().map(|k| text(k, &locale)).collect()
    }
}

export_translator!(Words);
