"""shop-german: German texts for the shop, as a cmdscope translator plugin written in Python."""

from wit_world import exports
from wit_world.exports.translator import TranslatorInfo

from texts import LOCALES, lookup


class Translator(exports.Translator):
    def info(self) -> TranslatorInfo:
        return TranslatorInfo(name="shop-german", version="0.1.0", locales=LOCALES)

    def translate(self, key: str, locale: str):
        return lookup(key, locale)

    def translate_batch(self, keys, locale: str):
        return [lookup(key, locale) for key in keys]
