"""{{name}}: a cmdscope resolver plugin (user context -> profile name).

The decision is in rules.py, plain Python tested natively; this file is the component glue.
"""

from componentize_py_types import Ok
from wit_world import exports
from wit_world.exports.resolver import ResolverInfo
from wit_world.imports.types import FlagValue_Boolean

import rules


def true_flags(ctx) -> set:
    return {f.name for f in ctx.flags if isinstance(f.value, FlagValue_Boolean) and f.value.value}


class Resolver(exports.Resolver):
    def info(self) -> ResolverInfo:
        return ResolverInfo(name="{{name}}", version="0.1.0", profiles=rules.PROFILES)

    def resolve(self, ctx) -> str:
        return rules.decide(true_flags(ctx))

    def resolve_batch(self, ctxs):
        return [Ok(rules.decide(true_flags(ctx))) for ctx in ctxs]
