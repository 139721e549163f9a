#!/usr/bin/env python3
"""Module import graph of one crate's src/ and its cycles.

Usage: .ci/import-cycles.py target/src [--graph]

An edge A -> B means a file of module A names something of module B by a
`crate::`, `super::` or `self::` path (in a `use` or inline). The `mod x;`
declarations and `#[cfg(test)] mod tests` blocks are not edges: a parent that
only declares a child does not depend on it, and tests may look anywhere.
A cycle between top-level modules (files of different modules naming each other,
directly or around a loop) fails the check (exit 1). A cycle inside one module — a
`mod.rs` that dispatches to its children while they use its types — is listed as a
note: the module is the unit of the design, its files are its steps.
"""
import os
import re
import sys


def modules(src):
    mods = {}
    for root, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            path = os.path.join(root, f)
            rel = os.path.relpath(path, src)[:-3].split(os.sep)
            if rel[-1] in ("mod", "lib", "main"):
                rel = rel[:-1]
            if rel and rel[-1] == "tests":
                continue  # test-only module files
            mods[tuple(rel)] = path
    return mods


def strip(text):
    text = re.sub(r"//[^\n]*", "", text)
    # Drop `#[cfg(test)] mod x { ... }` blocks by brace matching.
    out, i = [], 0
    pat = re.compile(r"#\[cfg\(test\)\]\s*(pub\s+)?mod\s+\w+\s*\{")
    while True:
        m = pat.search(text, i)
        if not m:
            out.append(text[i:])
            break
        out.append(text[i : m.start()])
        depth, j = 1, m.end()
        while depth and j < len(text):
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        i = j
    return "".join(out)


def expand(tree):
    """`a::{b, c::{d, e}}` -> [a::b, a::c::d, a::c::e]."""
    tree = re.sub(r"\s+", "", tree)
    m = re.match(r"^(.*?)\{(.*)\}$", tree)
    if not m:
        return [re.sub(r"\bas\w+$", "", tree)]
    prefix, body = m.group(1), m.group(2)
    parts, depth, cur = [], 0, ""
    for ch in body:
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += {"{": 1, "}": -1}.get(ch, 0)
        cur += ch
    parts.append(cur)
    return [p for part in parts if part for p in expand(prefix + part)]


def resolve(here, path, mods):
    segs = [s for s in path.split("::") if s]
    base = list(here)
    while segs and segs[0] in ("crate", "super", "self"):
        s = segs.pop(0)
        if s == "crate":
            base = []
        elif s == "super":
            base = base[:-1]
    while segs and tuple(base + [segs[0]]) in mods:
        base.append(segs.pop(0))
    return tuple(base)


def graph(src):
    mods = modules(src)
    edges = {m: set() for m in mods}
    for m, path in mods.items():
        text = strip(open(path).read())
        paths = []
        for u in re.finditer(r"\buse\s+([^;]*);", text, re.S):
            paths += [p if re.match(r"(crate|super|self)::", p) else "self::" + p
                      for p in expand(u.group(1))]
        text = re.sub(r"\buse\s+[^;]*;", "", text)
        paths += re.findall(r"\b(?:crate|super|self)(?:::\w+)+", text)
        # A child module named without a prefix (`spc::execute`).
        for p in re.findall(r"(?<![:\w])(\w+)::\w", text):
            if m + (p,) in mods:
                paths.append("self::" + p)
        for p in paths:
            t = resolve(m, p, mods)
            if t != m and t in mods and t != ():
                edges[m].add(t)
    return edges


def sccs(edges):
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(comp)

    sys.setrecursionlimit(10000)
    for v in edges:
        if v not in index:
            visit(v)
    return out


def name(m):
    return "/".join(m) or "lib"


def main():
    src = sys.argv[1]
    edges = graph(src)
    if "--graph" in sys.argv:
        for m in sorted(edges):
            print(f"{name(m)} -> {', '.join(sorted(name(t) for t in edges[m]))}")
    bad = False
    for c in sccs(edges):
        if len(c) < 2:
            continue
        inside = len({m[:1] for m in c}) == 1
        bad |= not inside
        what = "inside one module" if inside else "cycle"
        print(f"{what}:", " ".join(sorted(name(m) for m in c)))
    top = {m[:1]: set() for m in edges}
    for m, ts in edges.items():
        top[m[:1]] |= {t[:1] for t in ts if t[:1] != m[:1]}
    if "--graph" in sys.argv:
        print("between modules:")
        for m in sorted(top):
            print(f"  {name(m)} -> {', '.join(sorted(name(t) for t in top[m]))}")
    for c in sccs(top):
        if len(c) > 1:
            bad = True
            print("cycle between modules:", " ".join(sorted(name(m) for m in c)))
    print(f"{src}: {'import cycles between modules' if bad else 'no import cycles between modules'}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
