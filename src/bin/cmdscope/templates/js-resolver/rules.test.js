// `node --test` in this folder.
import { test } from "node:test";
import assert from "node:assert/strict";
import { PROFILES, decide } from "./rules.js";

test("admins, then registered users, then guests", () => {
  assert.equal(decide(new Set()), "guest");
  assert.equal(decide(new Set(["registered"])), "user");
  assert.equal(decide(new Set(["registered", "admin"])), "admin");
  assert.ok(PROFILES.includes(decide(new Set(["admin"]))));
});
