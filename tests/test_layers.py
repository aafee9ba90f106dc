"""The three layers point one way: featurestore (data) <- probes (learning) <- featurestore_app.

Every import statement counts, including the lazy ones inside functions, because a lazy import is
still a dependency: the data layer must work where the learning layer is not installed.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: package -> the top-level packages of this project it must never import
FORBIDDEN = {
    "featurestore": {"probes", "featurestore_app"},
    "probes": {"featurestore_app"},
}


def _imported_top_levels(path: Path) -> set[tuple[str, int]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[tuple[str, int]] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {(a.name.split(".")[0], node.lineno) for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add((node.module.split(".")[0], node.lineno))
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_import_runs_against_the_layers(package: str) -> None:
    bad = [
        f"{path.relative_to(ROOT)}:{line} imports {top}"
        for path in sorted((ROOT / package).rglob("*.py"))
        for top, line in sorted(_imported_top_levels(path))
        if top in FORBIDDEN[package]
    ]
    assert bad == []


def test_data_layer_imports_without_the_learning_layer() -> None:
    """Importing every featurestore module loads neither probes nor the app layer."""
    modules = sorted(
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for p in (ROOT / "featurestore").rglob("*.py")
    )
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "print(sorted(k for k in sys.modules if k.split('.')[0] in ('probes', 'featurestore_app')))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


#: the packages whose modules must form an import graph without cycles
PACKAGES = ("featurestore", "probes", "featurestore_app")


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def _module_graph() -> dict[str, set[str]]:
    """module -> the project modules it imports, from every import statement in its file.

    Lazy (in-function) and ``TYPE_CHECKING`` imports count: a cycle through them still means
    neither file can be read, tested or moved without the other. ``from pkg import name`` points
    at ``pkg/name.py`` when that module exists, else at ``pkg/__init__.py`` (the name lives
    there); ``import a.b.c`` points at the deepest project module it names.
    """
    files = {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}

    def deepest(name: str) -> str | None:
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for mod, path in files.items():
        targets: set[str | None] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets |= {deepest(a.name) for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the package holding this file
                    pkg = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
                    pkg = pkg[: len(pkg) - node.level + 1]
                    base = ".".join(pkg + ([node.module] if node.module else []))
                for a in node.names:
                    sub = f"{base}.{a.name}"
                    targets.add(sub if sub in files else deepest(base))
        graph[mod] = {t for t in targets if t is not None and t != mod}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            w = next(children, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


def test_cycle_finder_sees_lazy_and_type_checking_cycles() -> None:
    """The finder itself: a two-file cycle through a lazy and a TYPE_CHECKING import is one
    component; a one-way pair is none (so the assertion below cannot pass vacuously)."""
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
    graph = _module_graph()
    assert "featurestore.store.writer" in graph["featurestore.store.catalog"]  # lazy import
    assert "probes.linear.curvature" in graph["probes.linear.problem"]
    assert "probes.linear.problem" in graph["probes.linear.preconditioner"]


def test_no_import_cycles_between_modules() -> None:
    """No two modules of the project import each other, directly or round a loop."""
    assert _cycles(_module_graph()) == []
