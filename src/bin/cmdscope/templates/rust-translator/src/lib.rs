//! {{name}}: a cmdscope translator plugin (key, locale -> text).
//! The texts are in `texts.rs`, plain Rust tested natively; this file is the component glue.

mod texts;

wit_bindgen::generate!({ path: "wit", world: "translator-plugin" });

use exports::cmdscope::plugin::translator::{Guest, TranslatorInfo};

struct Plugin;

impl Guest for Plugin {
    fn info() -> TranslatorInfo {
        TranslatorInfo {
            name: "{{name}}".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            locales: texts::LOCALES.iter().map(|l| l.to_string()).collect(),
        }
    }

    fn translate(key: String, locale: String) -> Option<String> {
        texts::lookup(&key, &locale).map(str::to_string)
    }

    fn translate_batch(keys: Vec<String>, locale: String) -> Vec<Option<String>> {
        keys.iter()
            .map(|key| texts::lookup(key, &locale).map(str::to_string))
            .collect()
    }
}

export!(Plugin);
