// `node --test` in this folder.
import { test } from "node:test";
import assert from "node:assert/strict";
import { KEYS, LOCALES, lookup } from "./texts.js";

test("every key in every locale, and nothing else", () => {
  for (const key of KEYS) for (const locale of LOCALES) assert.ok(lookup(key, locale));
  assert.equal(lookup("cmd.start.desc", "de"), undefined);
  assert.equal(lookup("cmd.nope.desc", "en"), undefined);
});
