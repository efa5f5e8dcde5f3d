"""Who sees which menu. Every profile `decide` may return must be in PROFILES (the host checks
them against the config's profiles when it loads the plugin)."""

PROFILES = ["admin", "user", "guest"]


def decide(flags: set) -> str:
    """`flags`: the names of the user's flags set to true."""
    if "admin" in flags:
        return "admin"
    if "registered" in flags:
        return "user"
    return "guest"
