// The decision, in plain JavaScript: the first true flag of banned, admin, premium, registered.
export const PROFILES = ["banned", "admin", "premium", "user", "guest"];
const TIERS = [["banned", "banned"], ["admin", "admin"], ["premium", "premium"], ["registered", "user"]];

/** `flags` maps a name to a boolean, a bigint or a string; only boolean true counts as set. */
export function tier(flags) {
  for (const [flag, profile] of TIERS) {
    if (flags.get(flag) === true) return profile;
  }
  return "guest";
}
