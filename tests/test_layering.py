"""Imports inside lit_tv run downward through declared layers, with no circles, and modules stay short.

Every import counts: module-level, inside functions, and under `TYPE_CHECKING`. The one exception is a
package `__init__`'s lazy `__getattr__` (`lit_tv.apply_task_vector`): it runs only after every module has
loaded, so it can neither start a circle nor drag a layer in early.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "lit_tv"

# Bottom to top: a module may import its own layer and the layers before it, never a later one.
# `name.*` is a package and everything in it; a plain name is that one module.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "foundations",
        (
            "lit_tv",
            "lit_tv.compat",
            "lit_tv.console",
            "lit_tv.episodes",
            "lit_tv.files",
            "lit_tv.fitted_tasks",
            "lit_tv.interrupts",
            "lit_tv.fuyu",
            "lit_tv.layout",
            "lit_tv.metrics",
            "lit_tv.options",
            "lit_tv.paper_results",
            "lit_tv.paper_settings",
            "lit_tv.reproduction",
            "lit_tv.spread",
        ),
    ),
    ("the frozen model", ("lit_tv.prompts", "lit_tv.families", "lit_tv.loading", "lit_tv.vlm", "lit_tv.zoo")),
    (
        "reading and patching a model",
        ("lit_tv.interventions", "lit_tv.scoring", "lit_tv.averaging", "lit_tv.task_vectors", "lit_tv.analysis.*"),
    ),
    ("saved vectors and checkpoints", ("lit_tv.vector_base", "lit_tv.vectors", "lit_tv.apply", "lit_tv.checkpoints")),
    ("benchmarks", ("lit_tv.data.*",)),
    ("methods", ("lit_tv.methods.*",)),
    ("callbacks", ("lit_tv.callbacks.*",)),  # may use a method (inspect_vectors reads residual vectors)
    ("command line", ("lit_tv.task_folders", "lit_tv.cli")),
    ("the shapes world", ("lit_tv.shapes.*",)),  # its DataModule, toy VLM and jobs use everything below
    ("entry point", ("lit_tv.__main__",)),  # `lit-tv`: the CLI, or the shapes world's main job
)

MAX_LINES = 400

Graph = dict[str, set[str]]


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _lazy_exports(tree: ast.Module) -> set[int]:
    """Ids of the import nodes inside a module-level `__getattr__` (PEP 562 lazy attributes)."""
    return {
        id(node)
        for function in tree.body
        if isinstance(function, ast.FunctionDef) and function.name == "__getattr__"
        for node in ast.walk(function)
    }


def imports_of(name: str, source: str, is_package: bool, modules: set[str]) -> set[str]:
    """The modules of `modules` that module `name` imports anywhere in `source` (lazy `__getattr__` aside)."""
    tree = ast.parse(source)
    skipped = _lazy_exports(tree) if is_package else set()
    here = name if is_package else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = here.rsplit(".", node.level - 1)[0] if node.level else ""
            origin = ".".join(part for part in (base, node.module or "") if part)
            submodules = {f"{origin}.{alias.name}" for alias in node.names} & modules
            found |= submodules or {origin}
    return (found & modules) - {name}


def import_graph(sources: dict[str, tuple[str, bool]]) -> Graph:
    """module -> the package's modules it imports, from module -> (source, is it a package `__init__`)."""
    return {name: imports_of(name, source, is_package, set(sources)) for name, (source, is_package) in sources.items()}


def package_sources(root: Path = PACKAGE) -> dict[str, tuple[str, bool]]:
    return {module_name(path, root): (path.read_text(), path.name == "__init__.py") for path in root.rglob("*.py")}


def find_cycle(graph: Graph) -> list[str] | None:
    """One import circle as a path that ends where it starts, or None."""
    state: dict[str, str] = {}  # "open" while on the current path, "done" after

    def visit(module: str, path: list[str]) -> list[str] | None:
        state[module] = "open"
        for target in sorted(graph.get(module, ())):
            if state.get(target) == "open":
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := visit(target, [*path, target])):
                return cycle
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state and (cycle := visit(module, [module])):
            return cycle
    return None


def layer_of(module: str, layers=LAYERS) -> int | None:
    for index, (_, entries) in enumerate(layers):
        for entry in entries:
            if module == entry.removesuffix(".*") or (entry.endswith(".*") and module.startswith(entry[:-1])):
                return index
    return None


def upward_imports(graph: Graph, layers=LAYERS) -> list[str]:
    """Every import of a later layer, as ``importer (layer) -> imported (layer)``."""
    found = []
    for module, targets in sorted(graph.items()):
        for target in sorted(targets):
            low, high = layer_of(module, layers), layer_of(target, layers)
            if low is not None and high is not None and high > low:  # an unplaced module fails its own test
                found.append(f"{module} ({layers[low][0]}) -> {target} ({layers[high][0]})")
    return found


def test_every_module_has_a_layer():
    unplaced = [module for module in package_sources() if layer_of(module) is None]
    assert not unplaced, f"place these modules in LAYERS (tests/test_layering.py): {unplaced}"


def test_lit_tv_has_no_import_circle():
    cycle = find_cycle(import_graph(package_sources()))
    assert cycle is None, " -> ".join(cycle)


def test_lit_tv_imports_run_downward():
    assert upward_imports(import_graph(package_sources())) == []


def test_no_module_is_longer_than_the_limit():
    lengths = {str(path.relative_to(PACKAGE)): len(path.read_text().splitlines()) for path in PACKAGE.rglob("*.py")}
    assert {path: lines for path, lines in lengths.items() if lines > MAX_LINES} == {}


# The checks themselves, on made-up packages: each must catch what it is there to catch.
SYNTHETIC_LAYERS = (("low", ("pkg", "pkg.low")), ("high", ("pkg.high", "pkg.sub.*")))


UPWARD_IMPORTS = (
    "from pkg.high import thing",
    "def later():\n    import pkg.high",
    "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import high",
)


@pytest.mark.parametrize("low_source", UPWARD_IMPORTS)
def test_a_circle_through_any_kind_of_import_is_found(low_source):
    graph = import_graph(
        {"pkg": ("", True), "pkg.low": (low_source, False), "pkg.high": ("from pkg.low import helper", False)}
    )
    assert find_cycle(graph) in (["pkg.low", "pkg.high", "pkg.low"], ["pkg.high", "pkg.low", "pkg.high"])
    assert upward_imports(graph, SYNTHETIC_LAYERS) == ["pkg.low (low) -> pkg.high (high)"]


def test_a_longer_circle_and_relative_imports_are_found():
    graph = import_graph(
        {
            "pkg": ("", True),
            "pkg.sub": ("", True),
            "pkg.sub.a": ("from .b import x", False),
            "pkg.sub.b": ("from ..sub import c", False),
            "pkg.sub.c": ("from pkg.sub.a import y", False),
        }
    )
    assert graph["pkg.sub.a"] == {"pkg.sub.b"} and graph["pkg.sub.b"] == {"pkg.sub.c"}
    assert find_cycle(graph) == ["pkg.sub.a", "pkg.sub.b", "pkg.sub.c", "pkg.sub.a"]


def test_only_a_package_lazy_getattr_may_import_upward():
    lazy = "def __getattr__(name):\n    from pkg.high import thing\n    return thing"
    graph = import_graph({"pkg": (lazy, True), "pkg.low": (lazy, False), "pkg.high": ("import pkg", False)})
    assert graph == {"pkg": set(), "pkg.low": {"pkg.high"}, "pkg.high": {"pkg"}}
    assert find_cycle(graph) is None
    assert upward_imports(graph, SYNTHETIC_LAYERS) == ["pkg.low (low) -> pkg.high (high)"]
    assert layer_of("pkg.sub.deep", SYNTHETIC_LAYERS) == 1 and layer_of("pkg.other", SYNTHETIC_LAYERS) is None
