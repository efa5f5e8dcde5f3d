// The decision, tested natively: `node --test` in this folder.
import { test } from "node:test";
import assert from "node:assert/strict";
import { tier } from "./tiered.js";

test("the first true flag decides", () => {
  assert.equal(tier(new Map()), "guest");
  assert.equal(tier(new Map([["registered", true]])), "user");
  assert.equal(tier(new Map([["registered", true], ["premium", true]])), "premium");
  assert.equal(tier(new Map([["admin", true], ["banned", true]])), "banned");
});

test("only boolean true counts", () => {
  assert.equal(tier(new Map([["registered", 1n]])), "guest");
  assert.equal(tier(new Map([["registered", "true"]])), "guest");
  assert.equal(tier(new Map([["admin", false], ["registered", true]])), "user");
});
