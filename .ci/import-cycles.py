#!/usr/bin/env python3
"""Fails when modules of src/ import each other in a circle (ARCHITECTURE.md: layers only
look down). Two levels are checked: the crate's top-level modules (`crate::engine` used in
`src/manager.rs` is the edge manager -> engine), and sibling modules inside one folder
(`super::wasi` used in `src/plugin/sandbox.rs` is sandbox -> wasi). A child using its parent's
items is not an edge. Prints every circle found; exit 1 if any."""
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")


def module_path(path):
    rel = os.path.relpath(path, ROOT)[:-3].split(os.sep)
    if rel[-1] in ("mod", "lib", "main"):
        rel = rel[:-1]
    return rel


def code(text):
    """The text without comments and string literals (doc examples name other modules)."""
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r'r#"(?:.|\n)*?"#', '""', text)
    return re.sub(r'"(?:\\.|[^"\\])*"', '""', text)


def modules_in(folder):
    out = set()
    for name in os.listdir(folder):
        full = os.path.join(folder, name)
        if name.endswith(".rs") and name not in ("mod.rs", "lib.rs", "main.rs"):
            out.add(name[:-3])
        elif os.path.isdir(full) and os.path.exists(os.path.join(full, "mod.rs")):
            out.add(name)
    return out


top = modules_in(ROOT)
edges = {}


def edge(a, b):
    if a != b:
        edges.setdefault(a, set()).add(b)


for folder, _, files in os.walk(ROOT):
    if os.path.relpath(folder, ROOT).startswith("bin"):
        continue
    siblings = modules_in(folder)
    for name in files:
        if not name.endswith(".rs"):
            continue
        path = os.path.join(folder, name)
        mod = module_path(path)
        if not mod:
            continue
        text = code(open(path, encoding="utf-8").read())
        for target in re.findall(r"\bcrate::(\w+)", text):
            if target in top:
                edge(mod[0], target)
        # `super::x` from a file in a folder names a sibling (or a parent item); `self::x`
        # in a mod.rs names a child, which is the parent's business, not an edge.
        if name != "mod.rs" and len(mod) >= 2:
            parent = "::".join(mod[:-1])
            for target in re.findall(r"\bsuper::(\w+)", text):
                if target in siblings and target != mod[-1]:
                    edge(parent + "::" + mod[-1], parent + "::" + target)
            # A use group: `use super::{a, b::C}`.
            for group in re.findall(r"\bsuper::\{([^}]*)\}", text):
                for target in re.findall(r"(?:^|,)\s*(\w+)", group):
                    if target in siblings and target != mod[-1]:
                        edge(parent + "::" + mod[-1], parent + "::" + target)

# Tarjan's strongly connected components.
index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]


def visit(v):
    index[v] = low[v] = counter[0]
    counter[0] += 1
    stack.append(v)
    on.add(v)
    for w in sorted(edges.get(v, ())):
        if w not in index:
            visit(w)
            low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        component = []
        while True:
            w = stack.pop()
            on.discard(w)
            component.append(w)
            if w == v:
                break
        if len(component) > 1:
            sccs.append(sorted(component))


sys.setrecursionlimit(10000)
for v in sorted(set(edges) | {w for ws in edges.values() for w in ws}):
    if v not in index:
        visit(v)

if sccs:
    print("import circles between modules of src/ (layers must only look down):")
    for component in sccs:
        inside = [f"{a} -> {b}" for a in component for b in sorted(edges.get(a, ())) if b in component]
        print("  " + ", ".join(component) + ":  " + "; ".join(inside))
    sys.exit(1)
print(f"no import circle among {len(set(edges))} modules")
