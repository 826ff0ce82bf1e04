"""The import graph of pipeline/: stages are packages, imports run one way, no cycle (issue 11).

Read from the source with ``ast`` (nothing is imported), so a lazy import inside a function
counts as much as one at the top: a cycle hidden in a function body is still a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

PIPELINE = Path(__file__).resolve().parents[2] / "pipeline"

# Lower layers first; a module may import from its own layer's package and from layers before it.
# The base modules are one layer; among them the order is free but must not cycle (checked below).
BASE = {"__init__", "errors", "config", "cmd", "git", "journal", "records", "atomic", "process", "locking",
        "progress", "startup"}
LAYERS = [BASE, {"source"}, {"patches"}, {"build"}, {"verify"}, {"release", "tryout"}, {"track"},
          {"commands"}, {"cli"}, {"__main__"}]


def _module_name(path: Path) -> str:
    parts = path.relative_to(PIPELINE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PIPELINE.rglob("*.py")}
    edges: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.split(".")[0] == "pipeline":
                target = node.module
            else:
                continue
            for alias in node.names:
                full = f"{target}.{alias.name}"
                dest = full if full in modules else target
                if dest in modules and dest != name:
                    edges[name].add(dest)
    return edges


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _layer(module: str) -> int:
    top = _top(module)
    return next(i for i, names in enumerate(LAYERS) if top in names)


def test_every_module_has_a_layer():
    unplaced = sorted({_top(m) for m in _graph() if not any(_top(m) in names for names in LAYERS)})
    assert unplaced == [], "add these to LAYERS (and to README's layout table)"


def test_imports_run_one_way():
    upward = [f"{a} -> {b}" for a, bs in _graph().items() for b in bs
              if _top(a) != _top(b) and _layer(b) >= _layer(a) and not (_layer(a) == 0 and _layer(b) == 0)]
    assert upward == []


def test_no_import_cycle():
    graph = _graph()
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt):], nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_no_module_imports_another_modules_private_names():
    private = []
    for path in PIPELINE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module != "__future__":
                private += [f"{path.relative_to(PIPELINE)}:{node.lineno} {alias.name}" for alias in node.names
                            if alias.name.startswith("_") and not alias.name.startswith("__")]
    assert private == []
