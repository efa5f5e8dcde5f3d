"""tiered-resolver-py: the example resolver's rules as a cmdscope plugin written in Python."""

from componentize_py_types import Ok
from wit_world import exports
from wit_world.exports.resolver import ResolverInfo
from wit_world.imports.types import FlagValue_Boolean

from tiered import PROFILES, tier


def flags_of(ctx) -> dict:
    # Only booleans can be "set"; other values are kept as themselves (never True).
    return {f.name: f.value.value if isinstance(f.value, FlagValue_Boolean) else f.value
            for f in ctx.flags}


class Resolver(exports.Resolver):
    def info(self) -> ResolverInfo:
        return ResolverInfo(name="tiered-resolver-py", version="0.1.0", profiles=PROFILES)

    def resolve(self, ctx) -> str:
        return tier(flags_of(ctx))

    def resolve_batch(self, ctxs):
        return [Ok(tier(flags_of(ctx))) for ctx in ctxs]
