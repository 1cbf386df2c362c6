"""Imports inside fer_core run one way: no cycle (lazy imports included), and the bottom layers import nothing above them.

(tests/test_structure.py holds the app-side layout rules: no streamlit in fer_core, no pickle, sizes.)
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "fer_core"
# Packages whose modules are one node in the graph (their own modules may call each other freely).
COLLAPSED = ("fer_core.jobs", "fer_core.cli")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    path = PACKAGE.parent / name.replace(".", "/")
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def runtime_imports(path: Path) -> set[str]:
    """fer_core modules imported anywhere in the file (lazy imports in functions included; TYPE_CHECKING blocks not)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    skipped = {id(node) for block in ast.walk(tree) if isinstance(block, ast.If)
               and "TYPE_CHECKING" in ast.unparse(block.test) for node in ast.walk(block)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("fer_core")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            if target.startswith("fer_core"):
                # `from . import edits` names a module; `from .edits import x` names x's module
                found |= {f"{target}.{alias.name}" if is_module(f"{target}.{alias.name}") else target
                          for alias in node.names}
    return found


def node_of(module: str) -> str:
    for package in COLLAPSED:
        if module == package or module.startswith(package + "."):
            return package
    return module


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        source = node_of(module_name(path))
        targets = {node_of(target) for target in runtime_imports(path)} - {source, "fer_core"}
        graph.setdefault(source, set()).update(targets)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    visiting: list[str] = []
    done: set[str] = set()

    def visit(node: str) -> list[str] | None:
        if node in visiting:
            return visiting[visiting.index(node):] + [node]
        if node in done:
            return None
        visiting.append(node)
        for target in sorted(graph.get(node, ())):
            cycle = visit(target)
            if cycle:
                return cycle
        visiting.pop()
        done.add(node)
        return None

    for node in sorted(graph):
        cycle = visit(node)
        if cycle:
            return cycle
    return None


def test_fer_core_import_graph_has_no_cycle():
    """No module imports, even lazily, a module that imports it back (a cycle is an arrow running up)."""
    cycle = find_cycle(import_graph())
    assert cycle is None, " -> ".join(cycle)


# The layers of fer_core, bottom to top (docs/ARCHITECTURE.md): a module imports only its own layer and those
# below, lazily or not. Names are sub-packages or top-level modules.
LAYERS = (
    ("labels", "workspace", "files", "store", "paths", "progress", "parallel"),  # the ground floor
    ("dataset",),
    ("duplicates",),
    ("outliers",),
    ("curation",),
    ("findings", "detectors", "audit"),
    ("training",),  # leak-free scores run the audit's duplicate detectors
    ("mislabels",),  # fold models are training runs; pooling uses the audit's groups
    ("views",),
    ("jobs",),
    ("report",),
    ("cli", "__main__"),
)


def layer_of(module: str) -> int:
    top = module.split(".")[1] if "." in module else ""
    for level, names in enumerate(LAYERS):
        if top in names:
            return level
    raise AssertionError(f"{module} is in no layer: add it to LAYERS and to docs/ARCHITECTURE.md")


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{source} -> {target}" for source, targets in graph.items() for target in targets
                  if layer_of(target) > layer_of(source))


def test_every_module_imports_only_its_layer_and_below():
    """The sub-package rules: nothing imports a layer above its own (lazy imports included)."""
    graph = {module_name(path): runtime_imports(path) - {"fer_core"} for path in PACKAGE.rglob("*.py")}
    assert upward_imports(graph) == []


def test_the_layer_check_can_fail():
    """A planted upward import (the training config reading a view) is caught."""
    graph = {"fer_core.training.config": {"fer_core.views.runs"}}
    assert upward_imports(graph) == ["fer_core.training.config -> fer_core.views.runs"]


def test_each_sub_package_says_what_it_owns_and_may_import():
    for init in PACKAGE.glob("*/__init__.py"):
        docstring = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
        assert docstring and "import" in docstring.lower(), f"{init}: say what the package owns and what it may import"


def test_the_graph_sees_lazy_imports_and_packages():
    """The check must be able to fail: the old jobs -> cli.train import (inside a function) closed a cycle."""
    graph = import_graph()
    assert "fer_core.jobs" in graph["fer_core.cli"]  # `from .. import jobs` names the package
    graph["fer_core.jobs"] = graph["fer_core.jobs"] | {"fer_core.cli"}
    assert find_cycle(graph) is not None
