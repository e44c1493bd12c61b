"""The layers import downward only, and no two modules import each other, even through others.

Every import counts, also one inside a function: a lazy import is still a
dependency, and the old upward ones (nemesis reaching into harness.cluster,
reports into harness.run) were all lazy. The rules are the table in
docs/architecture.md.
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parent.parent

# package -> the splitbrain packages it may import (itself always).
ALLOWED: dict[str, frozenset[str]] = {
    "history": frozenset(),
    "plugins": frozenset(),
    "checkers": frozenset({"history", "plugins"}),
    "targets": frozenset({"history", "plugins"}),
    "nemesis": frozenset({"history", "plugins", "targets"}),
    "workloads": frozenset({"history", "plugins", "checkers"}),
    "reports": frozenset({"history", "plugins", "checkers", "nemesis", "workloads", "targets"}),
    "harness": frozenset({"history", "plugins", "checkers", "targets", "nemesis", "workloads", "reports"}),
}
PACKAGES = frozenset(ALLOWED)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "__pycache__" not in path.parts:
                out[_module_name(path)] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> list[tuple[int, str]]:
    """(line, imported splitbrain module) for every import in the file, lazy ones included."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            # `from pkg import mod` imports the module pkg.mod when there is one.
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in MODULES else mod for a in node.names]
        else:
            continue
        out += [(node.lineno, t) for t in targets if t.split(".")[0] in PACKAGES]
    return out


EDGES = {name: _imports(name, path) for name, path in MODULES.items()}


def test_every_layer_is_known():
    assert MODULES, "no modules found"
    assert {m.split(".")[0] for m in MODULES} == PACKAGES


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_a_package_imports_only_the_layers_below_it(package):
    wrong = [
        f"{MODULES[name].relative_to(ROOT)}:{line} imports {target}"
        for name, edges in EDGES.items() if name.split(".")[0] == package
        for line, target in edges
        if target.split(".")[0] not in ALLOWED[package] | {package}
    ]
    assert not wrong, f"{package} may import only {sorted(ALLOWED[package])}:\n" + "\n".join(wrong)


def test_nothing_outside_harness_imports_harness():
    wrong = [f"{name} imports {t}" for name, edges in EDGES.items() if not name.startswith("harness")
             for _, t in edges if t.split(".")[0] == "harness"]
    assert not wrong, "\n".join(wrong)


def test_the_history_package_imports_nothing_else_of_splitbrain():
    wrong = [f"{name} imports {t}" for name, edges in EDGES.items() if name.split(".")[0] == "history"
             for _, t in edges if not t.startswith("history")]
    assert not wrong, "\n".join(wrong)


def _resolve(target: str) -> str | None:
    """The module an import names: itself, or the nearest enclosing module (`from m import func`)."""
    while target and target not in MODULES:
        target = target.rpartition(".")[0]
    return target or None


def test_no_import_cycles_between_modules():
    graph = nx.DiGraph()
    graph.add_nodes_from(MODULES)
    for name, edges in EDGES.items():
        for _, target in edges:
            mod = _resolve(target)
            if mod and mod != name:
                graph.add_edge(name, mod)
    cycles = [c for c in nx.simple_cycles(graph) if len(c) > 1]
    # A package's __init__ re-exporting its own submodules is not a cycle worth
    # reporting only when nothing else is on it; anything else is.
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c + [c[0]]) for c in sorted(cycles)[:20])


@pytest.mark.parametrize("store", ["raftkv", "paxoskv"])
def test_the_built_in_stores_run_on_the_standard_library_and_their_image_packages_alone(store):
    """A raftkv or paxoskv container has python3 and the Debian packages its recipe names: the node's
    modules import no other third-party package, and paxoskv's node imports nothing of targets/ but
    the two stores its image holds."""
    import sys

    from targets.raftkv.plugin import NODE_PACKAGES, NOT_IN_NODE_IMAGE

    in_image = {"uvloop"} if "python3-uvloop" in NODE_PACKAGES else set()

    node_dir = ROOT / "targets" / store
    wrong = []
    for path in sorted(node_dir.glob("*.py")):
        if store == "paxoskv" and path.name not in NOT_IN_NODE_IMAGE:
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("targets."):
                    if node.module.split(".")[1] not in ("raftkv", "paxoskv"):
                        wrong.append(f"{path.name}:{node.lineno} imports {node.module}, not in the node image")
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            for n in names:
                top = n.split(".")[0]
                if top and top not in sys.stdlib_module_names and top != "targets" and top not in in_image:
                    wrong.append(f"{path.name}:{node.lineno} imports {n}")
    assert not wrong, "\n".join(wrong)
