// Who sees which menu. Every profile `decide` may return must be in PROFILES (the host checks
// them against the config's profiles when it loads the plugin).
export const PROFILES = ["admin", "user", "guest"];

/** `flags`: a Set of the names of the user's flags set to true. */
export function decide(flags) {
  if (flags.has("admin")) return "admin";
  if (flags.has("registered")) return "user";
  return "guest";
}
