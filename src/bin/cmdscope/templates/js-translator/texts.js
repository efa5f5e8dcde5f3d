// The texts, by key and locale. A key or locale it lacks answers undefined: the host then asks
// the next translator, then falls back to the config's `fallback_language`.
export const LOCALES = ["en", "ru"];

const TEXTS = {
  "cmd.start.desc": { en: "Start the bot", ru: "Запустить бота" },
  "cmd.help.desc": { en: "How it works", ru: "Как это работает" },
};

export function lookup(key, locale) {
  return TEXTS[key]?.[locale];
}

export const KEYS = Object.keys(TEXTS);
