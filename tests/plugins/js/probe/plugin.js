// probe-js: tries what a plugin must not get, and reports what it got (as the resolver's
// error). The `probe` flag (text) picks the attempt.
function attempt(which) {
  switch (which) {
    case "clock":
      return `time ${Date.now()} ${new Date().toISOString()}`;
    case "random":
      return `random ${Math.random()}`;
    case "network":
      return `fetch ${typeof globalThis.fetch} XMLHttpRequest ${typeof globalThis.XMLHttpRequest} WebSocket ${typeof globalThis.WebSocket}`;
    case "env":
      return `process ${typeof globalThis.process} std ${typeof globalThis.std} os ${typeof globalThis.os}`;
    default:
      return "unknown probe";
  }
}

const probeOf = (ctx) => ctx.flags.find((f) => f.name === "probe" && f.value.tag === "text")?.value.val ?? "";

export const resolver = {
  info() {
    return { name: "probe-js", version: "0.1.0", profiles: ["guest"] };
  },
  resolve(ctx) {
    throw attempt(probeOf(ctx));
  },
  resolveBatch(ctxs) {
    return ctxs.map((ctx) => ({ tag: "err", val: attempt(probeOf(ctx)) }));
  },
};
