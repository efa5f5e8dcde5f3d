// {{name}}: a cmdscope translator plugin (key, locale -> text).
// The texts are in texts.js, plain JavaScript tested natively; this file is the glue.
import { LOCALES, lookup } from "./texts.js";

export const translator = {
  info() {
    return { name: "{{name}}", version: "0.1.0", locales: LOCALES };
  },
  translate(key, locale) {
    return lookup(key, locale);
  },
  translateBatch(keys, locale) {
    return keys.map((key) => lookup(key, locale));
  },
};
