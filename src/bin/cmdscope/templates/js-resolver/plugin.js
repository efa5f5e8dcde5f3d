// {{name}}: a cmdscope resolver plugin (user context -> profile name).
// The decision is in rules.js, plain JavaScript tested natively; this file is the glue.
import { PROFILES, decide } from "./rules.js";

// Flag values arrive as { tag: "boolean" | "integer" | "text", val }.
const trueFlags = (ctx) =>
  new Set(ctx.flags.filter((f) => f.value.tag === "boolean" && f.value.val).map((f) => f.name));

export const resolver = {
  info() {
    return { name: "{{name}}", version: "0.1.0", profiles: PROFILES };
  },
  resolve(ctx) {
    return decide(trueFlags(ctx));
  },
  resolveBatch(ctxs) {
    return ctxs.map((ctx) => ({ tag: "ok", val: decide(trueFlags(ctx)) }));
  },
};
