"""The import graph of a package, read from its source: what ``tests/test_layers.py`` enforces and what
``python tests/import_graph.py [PACKAGE_DIR]`` reports (modules, depth, edges, cycles, upward imports, big files).

Every import counts: module level, inside functions, ``importlib.import_module("literal")``, and relative imports.
Imports under ``if TYPE_CHECKING:`` never run and are skipped. ``from pkg import name`` is an edge to the submodule
``pkg.name`` where one exists, else to ``pkg`` itself. A module's implicit import of its parent packages is not an
edge (``__init__`` files of the layers hold only a docstring).
"""

from __future__ import annotations

import ast
import pathlib
import sys
from dataclasses import dataclass, field


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


@dataclass
class Graph:
    root: str
    files: dict[str, pathlib.Path]  # dotted module name -> file
    edges: dict[str, dict[str, int]] = field(default_factory=dict)  # module -> {imported module: first line}

    def resolve(self, name: str) -> str | None:
        parts = name.split(".")
        while parts:
            dotted = ".".join(parts)
            if dotted in self.files:
                return dotted
            parts.pop()
        return None

    def cycles(self) -> list[list[str]]:
        """One cycle per strongly connected component of more than one module (or a self-loop)."""
        index: dict[str, int] = {}
        low: dict[str, int] = {}
        stack: list[str] = []
        on: set[str] = set()
        found: list[list[str]] = []

        def connect(v: str) -> None:
            index[v] = low[v] = len(index)
            stack.append(v)
            on.add(v)
            for w in self.edges.get(v, {}):
                if w not in index:
                    connect(w)
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
                if len(component) > 1 or v in self.edges.get(v, {}):
                    found.append(sorted(component))

        sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
        for v in sorted(self.files):
            if v not in index:
                connect(v)
        return found

    def depth(self) -> int:
        """Levels of import depth: the longest chain of imports (modules on it), 0 for no module."""
        memo: dict[str, int] = {}

        def longest(v: str, seen: frozenset[str]) -> int:
            if v in memo:
                return memo[v]
            best = 1 + max((longest(w, seen | {v}) for w in self.edges.get(v, {}) if w not in seen), default=0)
            memo[v] = best
            return best

        return max((longest(v, frozenset()) for v in self.files), default=0)

    def edge_count(self) -> int:
        return sum(len(targets) for targets in self.edges.values())


def read(package_dir: str | pathlib.Path) -> Graph:
    package_dir = pathlib.Path(package_dir).resolve()
    root = package_dir.name
    files = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = path.relative_to(package_dir.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        files[".".join(parts)] = path
    graph = Graph(root, files)
    for module, path in files.items():
        graph.edges[module] = _imports_of(graph, module, path)
    return graph


def _imports_of(graph: Graph, module: str, path: pathlib.Path) -> dict[str, int]:
    root, is_package = graph.root, path.name == "__init__.py"
    found: dict[str, int] = {}

    def add(name: str | None, line: int) -> None:
        if name and name != module:
            found.setdefault(name, line)

    def absolute(node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        return ".".join(base + ([node.module] if node.module else []))

    def visit(node: ast.AST) -> None:
        if _is_type_checking(node):
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == root:
                    add(graph.resolve(alias.name), node.lineno)
        elif isinstance(node, ast.ImportFrom):
            source = absolute(node)
            if source.split(".")[0] == root:
                for alias in node.names:
                    full = f"{source}.{alias.name}"
                    add(full if full in graph.files else graph.resolve(source), node.lineno)
        elif (isinstance(node, ast.Call) and ast.unparse(node.func) in ("importlib.import_module", "import_module")
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
              and node.args[0].value.split(".")[0] == root):
            add(graph.resolve(node.args[0].value), node.lineno)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return found


def report(package_dir: str | pathlib.Path, layers: list[str] | None = None, limit: int = 400) -> dict:
    graph = read(package_dir)
    rank = {name: i for i, name in enumerate(layers or [])}

    def layer(module: str) -> int | None:
        parts = module.split(".")
        return rank.get(parts[1]) if len(parts) > 1 else None

    upward = [(m, t) for m, targets in graph.edges.items() for t in targets
              if layer(m) is not None and layer(t) is not None and layer(t) > layer(m)]
    big = {m: n for m, p in graph.files.items() if (n := len(p.read_text(encoding="utf-8").splitlines())) > limit}
    return {"modules": len(graph.files), "folders": len({p.parent for p in graph.files.values()}),
            "depth": graph.depth(), "edges": graph.edge_count(), "cycles": graph.cycles(), "upward": upward,
            "over_limit": big}


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else str(pathlib.Path(__file__).parents[1] / "keras_resnet")
    sys.path.insert(0, str(pathlib.Path(__file__).parent))
    from test_layers import LAYERS

    result = report(target, LAYERS if pathlib.Path(target).name == "keras_resnet" else None)
    for key, value in result.items():
        print(f"{key}: {value}")
