"""The import graph of a package, lazy imports (inside functions) included: modules, arrows, levels, circles.

    python scripts/import_graph.py [PACKAGE_DIR] [--arrows]

A module imports another when it names it or one of its names in an ``import`` / ``from ... import`` anywhere in
its source; a package's ``__init__`` is a module of its own. Levels are the longest import chain below a module
(a module importing nothing of the package is level 1), counted over the graph with its circles condensed;
arrows that close a circle are reported as arrows back up. import-linter (``lint-imports``) checks the
package's declared tiers; this script gives the numbers behind them.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterable
from pathlib import Path


def modules_of(package: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file under ``package``."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports_of(name: str, path: Path, known: Iterable[str]) -> set[str]:
    """The package's modules that ``name`` imports (at any depth of its code)."""
    known = set(known)
    root = name.split(".")[0]
    base = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                module = ".".join(base[: len(base) - node.level + 1] + ([module] if module else []))
            names = [module, *(f"{module}.{alias.name}" for alias in node.names)]
        else:
            continue
        for imported in names:
            while imported and imported not in known:
                imported = imported.rpartition(".")[0]
            if imported and imported != name and imported.split(".")[0] == root:
                targets.add(imported)
    return targets


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def summary(package: Path) -> dict[str, object]:
    """Modules, arrows, levels, circles and arrows back up of ``package``'s import graph."""
    modules = modules_of(package)
    graph = {name: imports_of(name, path, modules) for name, path in modules.items()}
    groups = circles(graph)
    group_of = {m: i for i, group in enumerate(groups) for m in group}
    condensed = {m: group_of.get(m, m) for m in graph}
    level: dict[object, int] = {}

    def depth(node: object, seen: frozenset = frozenset()) -> int:
        if node not in level:
            members = groups[node] if isinstance(node, int) else [node]
            below = {condensed[t] for m in members for t in graph[m]} - {node} - seen
            level[node] = 1 + max((depth(b, seen | {node}) for b in below), default=0)
        return level[node]

    sys.setrecursionlimit(10_000)
    levels = max((depth(n) for n in set(condensed.values())), default=0)
    back = [(a, b) for a, targets in graph.items() for b in targets if a in group_of and group_of.get(b) == group_of[a]]
    return {
        "modules": len(modules),
        "arrows": sum(map(len, graph.values())),
        "levels": levels,
        "circles": groups,
        "arrows_back_up": sorted(back),
        "graph": graph,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("package", nargs="?", type=Path, default=Path(__file__).resolve().parents[1] / "qpr_pyserini")
    parser.add_argument("--arrows", action="store_true", help="also print every arrow")
    args = parser.parse_args(argv)
    result = summary(args.package)
    print(
        f"{result['modules']} modules, {result['levels']} levels, {result['arrows']} arrows, "
        f"{len(result['circles'])} circles, {len(result['arrows_back_up'])} arrows back up"
    )
    for group in result["circles"]:
        print("circle:", " <-> ".join(group))
    if args.arrows:
        for module, targets in sorted(result["graph"].items()):
            print(module, "->", ", ".join(sorted(targets)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
