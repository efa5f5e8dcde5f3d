// tiered-resolver-js: the example resolver's rules as a cmdscope plugin written in JavaScript.
// Built with jco's QuickJS backend; see docs/plugins.md.
import { PROFILES, tier } from "./tiered.js";

// A flag's value as JavaScript sees it: { tag: "boolean" | "integer" | "text", val }.
const flagsOf = (ctx) => new Map(ctx.flags.map((f) => [f.name, f.value.val]));

export const resolver = {
  info() {
    return { name: "tiered-resolver-js", version: "0.1.0", profiles: PROFILES };
  },
  resolve(ctx) {
    return tier(flagsOf(ctx));
  },
  resolveBatch(ctxs) {
    return ctxs.map((ctx) => ({ tag: "ok", val: tier(flagsOf(ctx)) }));
  },
};
