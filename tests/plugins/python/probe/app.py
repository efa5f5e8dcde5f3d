"""probe-py: tries what a plugin must not get, and reports what it got.

The `probe` flag (text) picks the attempt; the observation comes back as the resolver's error,
so the host's `Resolution.error` shows it.
"""

import os
import random
import time

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.resolver import ResolverInfo
from wit_world.imports.types import FlagValue_Text


def attempt(which: str) -> str:
    if which == "file":
        try:
            with open("/etc/passwd") as f:
                return "read " + f.read(40)
        except OSError as e:
            return f"no file: {type(e).__name__}"
    if which == "listdir":
        try:
            return "listed " + ",".join(os.listdir("/"))
        except OSError as e:
            return f"no dir: {type(e).__name__}"
    if which == "socket":
        try:
            import socket

            s = socket.socket()
            s.connect(("127.0.0.1", 80))
            return "connected"
        except Exception as e:
            return f"no socket: {type(e).__name__}: {e}"
    if which == "clock":
        return f"time {time.time()} monotonic {time.monotonic()}"
    if which == "env":
        return f"env {dict(os.environ)}"
    if which == "random":
        return f"random {random.random()} urandom {os.urandom(8).hex()}"
    return "unknown probe"


def probe_of(ctx) -> str:
    for f in ctx.flags:
        if f.name == "probe" and isinstance(f.value, FlagValue_Text):
            return f.value.value
    return ""


class Resolver(exports.Resolver):
    def info(self) -> ResolverInfo:
        return ResolverInfo(name="probe-py", version="0.1.0", profiles=["guest"])

    def resolve(self, ctx) -> str:
        raise Err(attempt(probe_of(ctx)))

    def resolve_batch(self, ctxs):
        return [Err(attempt(probe_of(ctx))) for ctx in ctxs]
