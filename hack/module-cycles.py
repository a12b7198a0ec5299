#!/usr/bin/env python3
# SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
# SPDX-License-Identifier: Apache-2.0
"""Fails when modules of the product (src/) import each other in a circle, or a
file in src/ has more than 500 lines without saying why in its opening comment
(a line `//! Long because: ...`).

A module's edges are the paths it names: `crate::a::b`, `super::x`, `self::y`
(in `use` lines and in code). Test modules (`#[cfg(test)] mod tests`) are ignored:
tests may look anywhere. Run by `make verify`; `hack/module-cycles.py` alone prints
the cycles it finds.
"""

import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent / "src"
MAX_LINES = 500
PATH = re.compile(r"\b(crate|super|self)((?:::[a-z_][a-z0-9_]*)+)")


def module_of(path: pathlib.Path) -> tuple[str, ...]:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] in ("mod", "lib", "main"):
        parts.pop()
    return tuple(parts)


def product_code(text: str) -> str:
    """The code before `#[cfg(test)]` (test modules sit at the end of a file),
    without comments: a doc link is no dependency."""
    code = text.split("#[cfg(test)]", 1)[0]
    return "\n".join(line.split("//", 1)[0] for line in code.splitlines())


def main() -> int:
    files = {module_of(p): p for p in ROOT.rglob("*.rs")}
    modules = set(files)
    edges: dict[tuple[str, ...], set[tuple[str, ...]]] = {m: set() for m in modules}
    problems = []
    for module, path in files.items():
        text = path.read_text()
        lines = text.count("\n")
        if lines > MAX_LINES and "//! Long because:" not in text:
            problems.append(f"{path.relative_to(ROOT.parent)}: {lines} lines, over {MAX_LINES} without a reason")
        for head, tail in PATH.findall(product_code(text)):
            names = tail.strip(":").split("::")
            # `module` is already the directory for mod.rs, so `super` is its parent either way.
            base = {"crate": (), "self": module, "super": module[:-1]}[head]
            # The longest prefix that is a module of ours is the target.
            target = None
            for i in range(len(names), 0, -1):
                candidate = base + tuple(names[:i])
                if candidate in modules:
                    target = candidate
                    break
            if target is None or target == module:
                continue
            # A parent naming its child (`mod x; use x::...`) is containment, not a cycle risk.
            if target[: len(module)] == module:
                continue
            # A child naming its parent's items is fine; only sibling/cousin edges count.
            if module[: len(target)] == target:
                continue
            edges[module].add(target)

    # Cycles: depth-first search over the edges.
    cycles = set()
    state: dict[tuple[str, ...], int] = {}
    stack: list[tuple[str, ...]] = []

    def visit(m: tuple[str, ...]) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(edges[m]):
            if state.get(n) == 1:
                cycle = stack[stack.index(n):]
                first = cycle.index(min(cycle))
                cycles.add(tuple(cycle[first:] + cycle[:first]))
            elif n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(modules):
        if m not in state:
            visit(m)
    for cycle in sorted(cycles):
        names = ["::".join(m) or "crate" for m in cycle]
        problems.append("module cycle: " + " -> ".join(names + names[:1]))
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
