"""The texts, by key and locale. A key or locale it lacks answers None: the host then asks the
next translator, then falls back to the config's `fallback_language`."""

LOCALES = ["en", "ru"]

TEXTS = {
    "cmd.start.desc": {"en": "Start the bot", "ru": "Запустить бота"},
    "cmd.help.desc": {"en": "How it works", "ru": "Как это работает"},
}


def lookup(key: str, locale: str):
    return TEXTS.get(key, {}).get(locale)
