#!/usr/bin/env python3
"""Checks that the modules of every crate import one way.

For each crate of the workspace it reads every `.rs` file under `src/`, collects the paths that name
another module of the same crate (`crate::a::b`, `super::x`, `self::y`, `use` trees such as
`use crate::{a, b::c}`, and a `use` whose first segment is a child module), and builds the graph of
module -> module imports. It fails when
  - two or more modules import each other in a cycle (at the level of files, and at the level of each
    crate's top-level modules, so that a folder of modules counts as one), or
  - a module imports from a layer above its own (LAYERS below: a crate's layers, lowest first).

Edges between a module and its own ancestors or descendants are not counted: a `mod.rs` declares and
re-exports its children, and a child may name a re-export of its parent.

`python3 scripts/check_layers.py` checks the workspace; `--self-test` checks that the checker itself
finds a cycle and an upward import planted in a temporary crate.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from pathlib import Path

# Each crate's layers, lowest first, by top-level module. A module may import from its own layer and
# from the layers below; modules not listed may import anything that makes no cycle.
LAYERS = {
    "learner": ["storage", "training", "service"],
}

ROOT_FILES = ("lib.rs", "main.rs")


def module_of(src: Path, file: Path) -> tuple[str, ...]:
    rel = file.relative_to(src).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "mod" or (len(parts) == 1 and parts[0] in ("lib", "main")):
        parts = parts[:-1]
    return tuple(parts)


def strip_comments_and_strings(text: str) -> str:
    # Removes // and /* */ comments and string literals so that paths in docs and messages are not read
    # as imports; keeps line breaks so line numbers stay right.
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append("\n" * text.count("\n", i, j))
            i = j
        elif c == '"' or (c == "r" and re.match(r'r#*"', text[i:i + 10]) and not text[i - 1:i].isalnum()):
            if c == "r":
                hashes = re.match(r"r(#*)\"", text[i:]).group(1)
                end = '"' + hashes
                j = text.find(end, i + 2 + len(hashes))
                j = n if j < 0 else j + len(end)
            else:
                j = i + 1
                while j < n and text[j] != '"':
                    j += 2 if text[j] == "\\" else 1
                j += 1
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", text[i:i + 4]):
            j = text.index("'", i + 2 if text[i + 1] != "\\" else i + 3) + 1
            out.append("' '")
            i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)


def expand_use_tree(tree: str) -> list[str]:
    """`a::{b, c::{d, e}}` -> ['a::b', 'a::c::d', 'a::c::e']."""
    tree = re.sub(r"\s+", "", tree)
    brace = tree.find("{")
    if brace < 0:
        return [tree]
    prefix, inner = tree[:brace], tree[brace + 1:tree.rfind("}")]
    items, depth, start = [], 0, 0
    for k, ch in enumerate(inner):
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif ch == "," and depth == 0:
            items.append(inner[start:k])
            start = k + 1
    items.append(inner[start:])
    paths = []
    for item in items:
        if item:
            paths += [prefix + p for p in expand_use_tree(item)]
    return paths


def references(text: str, module: tuple[str, ...], modules: set) -> list[tuple[tuple[str, ...], int]]:
    """(target module path, line) for every path in `text` that names a module of this crate."""
    found = []

    def resolve(path: str, line: int):
        segs = [s for s in re.sub(r"\bas\s+\w+$", "", path).split("::") if s]
        if not segs:
            return
        if segs[0] == "crate":
            base, rest = (), segs[1:]
        elif segs[0] in ("super", "self"):
            base = module
            while segs and segs[0] in ("super", "self"):
                if segs[0] == "super":
                    base = base[:-1]
                segs = segs[1:]
            rest = segs
        elif module + (segs[0],) in modules:
            base, rest = module, segs
        else:
            return
        target = base
        for s in rest:
            if target + (s,) in modules:
                target = target + (s,)
            else:
                break
        found.append((target, line))

    for m in re.finditer(r"\buse\s+([^;]+);", text):
        line = text.count("\n", 0, m.start()) + 1
        for path in expand_use_tree(m.group(1)):
            resolve(path, line)
    for m in re.finditer(r"(?<![\w:])((?:crate|super|self)(?:::\w+)+)", text):
        # Paths inside `use` statements were read above with their trees.
        line_start = text.rfind("\n", 0, m.start()) + 1
        if re.match(r"\s*(pub(\([^)]*\))?\s+)?use\b", text[line_start:m.start()]):
            continue
        resolve(m.group(1), text.count("\n", 0, m.start()) + 1)
    return found


def related(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    return a[:len(b)] == b or b[:len(a)] == a


def cycles(graph: dict) -> list[list]:
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
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
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in list(graph):
        if v not in index:
            visit(v)
    return out


def check_crate(name: str, src: Path) -> list[str]:
    files = {module_of(src, f): f for f in sorted(src.rglob("*.rs"))}
    modules = set(files)
    edges = {}  # (from, to) -> first "file:line"
    for module, file in files.items():
        text = strip_comments_and_strings(file.read_text())
        for target, line in references(text, module, modules):
            if target != module and not related(module, target):
                edges.setdefault((module, target), f"{file}:{line}")
    problems = []
    show = lambda m: "::".join(m) or "(crate root)"

    for level, key in (("module", lambda m: m), ("top-level module", lambda m: m[:1])):
        graph = {}
        where = {}
        for (a, b), loc in edges.items():
            ka, kb = key(a), key(b)
            if ka != kb and ka and kb:
                graph.setdefault(ka, set()).add(kb)
                where.setdefault((ka, kb), loc)
        for comp in cycles(graph):
            members = set(comp)
            lines = [f"    {show(a)} -> {show(b)}  ({loc})" for (a, b), loc in sorted(where.items())
                     if a in members and b in members]
            problems.append(f"{name}: import cycle among {level}s {', '.join(map(show, comp))}:\n"
                            + "\n".join(lines))

    layers = LAYERS.get(name, [])
    for (a, b), loc in sorted(edges.items()):
        if a[:1] and b[:1] and a[0] in layers and b[0] in layers:
            if layers.index(b[0]) > layers.index(a[0]):
                problems.append(f"{name}: layer {a[0]} imports from the layer above it, {b[0]}: "
                                f"{show(a)} -> {show(b)} ({loc})")
    return problems


def workspace_crates(root: Path) -> list[tuple[str, Path]]:
    manifest = (root / "Cargo.toml").read_text()
    members = re.search(r"members\s*=\s*\[([^\]]*)\]", manifest)
    names = re.findall(r'"([^"]+)"', members.group(1)) if members else []
    crates = [(n, root / n / "src") for n in names if (root / n / "src").is_dir()]
    if (root / "src").is_dir():
        crates.append(("spikerl (root)", root / "src"))
    return crates


def self_test() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "learner" / "src"
        (src / "storage").mkdir(parents=True)
        (src / "training").mkdir()
        (src / "lib.rs").write_text("pub mod storage;\npub mod training;\npub mod a;\npub mod b;\n")
        (src / "storage" / "mod.rs").write_text("pub mod disk;\n")
        (src / "training" / "mod.rs").write_text("pub mod lp;\n")
        (src / "training" / "lp.rs").write_text("use crate::storage::disk::X;\n")
        (src / "a.rs").write_text("use crate::{b::Y, storage};\n// crate::a in a comment is no import\n")
        (src / "b.rs").write_text('pub fn f() { super::a::g(); let _ = "crate::storage"; }\n')
        (src / "storage" / "disk.rs").write_text("pub struct X;\n")
        clean = check_crate("learner", src)
        ok = len(clean) == 2 and all("cycle" in p and "a -> b" in p and "b -> a" in p for p in clean)
        (src / "storage" / "disk.rs").write_text("pub struct X(crate::training::lp::Z);\n")
        upward = check_crate("learner", src)
        ok &= any("layer storage imports from the layer above it, training" in p for p in upward)
        ok &= any("top-level modules storage, training" in p for p in upward)
    print("check_layers self-test:", "passed" if ok else f"FAILED\n{clean}\n{upward}")
    return 0 if ok else 1


def main() -> int:
    if "--self-test" in sys.argv:
        return self_test()
    root = Path(__file__).resolve().parent.parent
    problems = []
    crates = workspace_crates(root)
    for name, src in crates:
        problems += check_crate(name, src)
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        print(f"check_layers: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"check_layers: {len(crates)} crates, no import cycle, no upward layer import")
    return 0


if __name__ == "__main__":
    sys.exit(main())
