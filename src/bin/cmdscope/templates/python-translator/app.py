"""{{name}}: a cmdscope translator plugin (key, locale -> text).

The texts are in texts.py, plain Python tested natively; this file is the component glue.
"""

from wit_world import exports
from wit_world.exports.translator import TranslatorInfo

import texts


class Translator(exports.Translator):
    def info(self) -> TranslatorInfo:
        return TranslatorInfo(name="{{name}}", version="0.1.0", locales=texts.LOCALES)

    def translate(self, key: str, locale: str):
        return texts.lookup(key, locale)

    def translate_batch(self, keys, locale: str):
        return [texts.lookup(key, locale) for key in keys]
