#!/usr/bin/env python3
"""The structure goals of the code base, checked on every run of the test command.

- No import cycles between the files of a crate: a file's dependencies are the
  files its `crate::`, `super::` and `self::` paths name (in `use` lines and
  inline), resolved to the longest module path that exists. Test modules
  (`tests.rs`, `tests/`, `proptests/`) are left out: they may reach anywhere in
  the crate they test.
- No source file over 800 lines in crates/ or src-tauri/.
- At least 15 % of crates/warmline's lines are doc comments (`///`, `//!`).

    python3 tests/structure.py          exit 1 and a list of what is wrong, if any
"""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CRATES = [ROOT / p for p in ("crates/warmline/src", "crates/ollama-sim/src",
                             "crates/warmline-cli/src", "src-tauri/src")]
MAX_LINES = 800
MIN_DOC_SHARE = 0.15
PATH = re.compile(r"\b(crate|super|self)((?:::\w+)+)")
GROUP = re.compile(r"\buse\s+(crate|super|self)((?:::\w+)*)::\{([^;]*)\};", re.S)


def is_test(rel: Path) -> bool:
    parts = rel.parts
    return rel.name in ("tests.rs", "router_tests.rs") or "tests" in parts[:-1] \
        or "proptests" in parts[:-1]


def module_of(rel: Path) -> list:
    """The module path of a file: src/a/b.rs and src/a/b/mod.rs are ["a", "b"]."""
    parts = list(rel.with_suffix("").parts)
    if parts[-1] in ("mod", "lib", "main"):
        parts.pop()
    return parts


def file_of(src: Path, path: list):
    """The file holding the longest existing prefix of a module path."""
    for end in range(len(path), 0, -1):
        stem = src.joinpath(*path[:end])
        for candidate in (stem.with_suffix(".rs"), stem / "mod.rs"):
            if candidate.is_file():
                return candidate.relative_to(src)
    return None


def references(text: str):
    """Every (anchor, segments) path in the text, group imports expanded."""
    for anchor, prefix, inner in GROUP.findall(text):
        base = [s for s in prefix.split("::") if s]
        for item in re.split(r",", re.sub(r"\s+", "", inner)):
            names = [s for s in item.split("::") if s and s not in ("*", "{", "}")]
            names = [n.split("{")[0] for n in names if n.split("{")[0]]
            yield anchor, base + names
    for anchor, rest in PATH.findall(text):
        yield anchor, [s for s in rest.split("::") if s]


def edges(src: Path) -> dict:
    graph = {}
    for file in sorted(src.rglob("*.rs")):
        rel = file.relative_to(src)
        if is_test(rel):
            continue
        text = re.sub(r"//[^\n]*", "", file.read_text())
        text = text.split("#[cfg(test)]\nmod tests {")[0]
        here = module_of(rel)
        deps = set()
        for anchor, segments in references(text):
            if anchor == "crate":
                path = segments
            else:
                base = here if anchor == "self" else here[:-1]
                while segments and segments[0] == "super":
                    base, segments = base[:-1], segments[1:]
                path = base + segments
            target = file_of(src, path)
            if target is not None and target != rel and not is_test(target):
                deps.add(target)
        graph[rel] = deps
    return graph


def cycles(graph: dict) -> list:
    """Strongly connected components with more than one file (Tarjan)."""
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
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in graph:
        if v not in index:
            visit(v)
    return out


def main() -> int:
    problems = []
    for src in CRATES:
        for component in cycles(edges(src)):
            names = ", ".join(str(p) for p in component)
            problems.append(f"{src.relative_to(ROOT)}: import cycle among {names}")
    for base in ("crates", "src-tauri/src"):
        for file in sorted((ROOT / base).rglob("*.rs")):
            if "target" in file.parts:
                continue
            lines = len(file.read_text().splitlines())
            if lines > MAX_LINES:
                problems.append(f"{file.relative_to(ROOT)}: {lines} lines (at most {MAX_LINES})")
    total = doc = 0
    for file in (ROOT / "crates/warmline").rglob("*.rs"):
        for line in file.read_text().splitlines():
            total += 1
            doc += line.lstrip().startswith(("///", "//!"))
    share = doc / max(total, 1)
    if share < MIN_DOC_SHARE:
        problems.append(f"crates/warmline: {share:.1%} doc lines (at least {MIN_DOC_SHARE:.0%})")
    for problem in problems:
        print(problem)
    print(f"structure: {len(problems)} problem(s); crates/warmline doc lines {share:.1%}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
