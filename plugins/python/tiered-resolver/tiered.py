"""The decision, in plain Python: the first true flag of banned, admin, premium, registered.

Kept apart from the component glue (app.py) so it is tested natively: `python -m pytest`.
"""

PROFILES = ["banned", "admin", "premium", "user", "guest"]

# (flag, profile), in order: the first flag set to boolean true decides.
TIERS = [("banned", "banned"), ("admin", "admin"), ("premium", "premium"), ("registered", "user")]


def tier(flags: dict) -> str:
    """`flags` maps a name to a bool, an int or a str; only boolean True counts as set."""
    for flag, profile in TIERS:
        if flags.get(flag) is True:
            return profile
    return "guest"
