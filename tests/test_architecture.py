"""The architecture's rules, read from the source (ast): no import cycles, layers point one way, and
no module imports another module's underscore names.

Every ``import`` counts — at module level, inside functions, and under ``if TYPE_CHECKING:`` (a
cycle there is still two modules that cannot be understood one without the other).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("mmsa_core", "sweeps", "ablations", "reports")
# what each package may import from the project (the layers of docs/ARCHITECTURE.md)
ALLOWED = {
    "mmsa_core": {"mmsa_core"},
    "sweeps": {"sweeps", "mmsa_core"},
    "ablations": {"ablations", "sweeps", "mmsa_core"},
    # the reports read MLflow only; of the project they share the record's names (stdlib only)
    "reports": {"reports", "mmsa_core.record_names"},
}


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in (REPO / pkg).rglob("*.py"):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> list[tuple[str, tuple[str, ...], int]]:
    """(module, imported names, line) of every import statement in the file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, (), node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            out.append((base, tuple(a.name for a in node.names), node.lineno))
    return out


def _project_module(dotted: str) -> str | None:
    while dotted and dotted not in MODULES:
        dotted = dotted.rpartition(".")[0]
    return dotted or None


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        edges = set()
        for module, names, _ in _imports(name, path):
            targets = [f"{module}.{n}" if f"{module}.{n}" in MODULES else module for n in names] or [module]
            for t in targets:
                found = _project_module(t)
                if found and found != name:
                    edges.add(found)
        graph[name] = edges
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    graph = _graph()
    cycles = _cycles(graph)
    assert not cycles, "\n".join(
        " <-> ".join(c) + ": " + "; ".join(f"{a} imports {sorted(graph[a] & set(c))}" for a in c) for c in cycles)


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("package", PACKAGES)
def test_layers_point_one_way(package):
    bad = []
    for name, path in MODULES.items():
        if name.split(".")[0] != package:
            continue
        for module, _, line in _imports(name, path):
            top = module.split(".")[0]
            if top not in PACKAGES:
                continue
            if not any(module == a or module.startswith(a + ".") for a in ALLOWED[package]):
                bad.append(f"{path.relative_to(REPO)}:{line} imports {module}")
    assert not bad, "\n".join(bad)


def test_no_module_imports_another_modules_underscore_names():
    bad = []
    for name, path in MODULES.items():
        for module, names, line in _imports(name, path):
            if _project_module(module) is None or _project_module(module) == name:
                continue
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            if private:
                bad.append(f"{path.relative_to(REPO)}:{line} imports {private} from {module}")
    assert not bad, "\n".join(bad)
