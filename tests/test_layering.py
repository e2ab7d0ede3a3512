"""Imports inside lit_tv run downward through declared layers, with no circles, and modules stay short.

Every import counts: module-level, inside functions, and under `TYPE_CHECKING`. The one exception is a
package `__init__`'s lazy `__getattr__` (`lit_tv.apply_task_vector`): it runs only after every module has
loaded, so it can neither start a circle nor drag a layer in early.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from helpers import REPO

PACKAGE = REPO / "lit_tv"

# Bottom to top: a module may import its own wing and the wings before it, never a later one. A wing is a
# subpackage of lit_tv (`lit_tv.<wing>.*`); the top-level modules are the foundations, `lit_tv.__main__` the top.
# docs/architecture.md lists the same wings in the same order (checked below).
WINGS: tuple[tuple[str, str], ...] = (
    ("foundations", "the shared vocabulary and leaf utilities (top-level modules)"),
    ("paper", "the papers' settings and results as data, the reproduction page"),
    ("model", "FrozenVLM, loading options and checks, layout discovery, per-family quirks, transformers shims"),
    ("testing", "random models of real VLM architectures (the zoo) for tests and benchmarks"),
    ("interventions", "hooks as context managers, shared-prefix scoring, averaging"),
    ("analysis", "logit lens, token mass, t-SNE, similarity"),
    ("vectors", "the saved artefact: file format and checksums, kinds, apply, fitted-on"),
    ("data", "records, the seeded pool, DataModules per benchmark"),
    ("integrations", "lit_tv's vectors in other tools: a harness's answerer, lmms-eval's model"),
    ("methods", "LightningModules (ICL, MTV, FV, residual, majority, random heads) and their checkpoints"),
    ("callbacks", "mean activations, answer writing, TensorBoard inspection"),
    ("cli", "the LightningCLI subclass, errors, signals, task folders"),
    ("shapes", "the shapes world and its tiny VLMs; shapes/studies/: main job, many-shot, findings"),
    ("entry point", "`lit-tv` (lit_tv/__main__.py): the CLI, or the shapes world's main job"),
)
MAX_TOP_LEVEL_MODULES = 10
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


def wing_of(module: str, wings=WINGS) -> int | None:
    """The index of `module`'s wing: `pkg.<wing>.*`, a top-level module the foundations, `pkg.__main__` the top."""
    names = [name for name, _ in wings]
    parts = module.split(".")
    if parts[1:] == ["__main__"]:
        return len(wings) - 1
    if len(parts) > 2 or (len(parts) == 2 and parts[1] in names):
        return names.index(parts[1]) if parts[1] in names else None
    return 0


def upward_imports(graph: Graph, wings=WINGS) -> list[str]:
    """Every import of a later wing, as ``importer (wing) -> imported (wing)``."""
    found = []
    for module, targets in sorted(graph.items()):
        for target in sorted(targets):
            low, high = wing_of(module, wings), wing_of(target, wings)
            if low is not None and high is not None and high > low:  # a module in no wing fails its own test
                found.append(f"{module} ({wings[low][0]}) -> {target} ({wings[high][0]})")
    return found


def test_every_package_is_a_wing():
    unplaced = [module for module in package_sources() if wing_of(module) is None]
    assert not unplaced, f"add their packages to WINGS (tests/test_layering.py): {unplaced}"


def test_the_top_level_keeps_only_the_foundations():
    top = sorted(path.name for path in PACKAGE.glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL_MODULES, f"{len(top)} top-level modules, at most {MAX_TOP_LEVEL_MODULES}: {top}"


def test_the_architecture_page_lists_the_wings_in_order():
    page = (PACKAGE.parent / "docs" / "architecture.md").read_text()
    listed = re.findall(r"^\d+\. \*\*([\w ]+)\*\*", page, flags=re.M)
    assert listed == [name for name, _ in WINGS]


def test_lit_tv_has_no_import_circle():
    cycle = find_cycle(import_graph(package_sources()))
    assert cycle is None, " -> ".join(cycle)


def test_lit_tv_imports_run_downward():
    assert upward_imports(import_graph(package_sources())) == []


def test_no_module_is_longer_than_the_limit():
    lengths = {str(path.relative_to(PACKAGE)): len(path.read_text().splitlines()) for path in PACKAGE.rglob("*.py")}
    assert {path: lines for path, lines in lengths.items() if lines > MAX_LINES} == {}


# The checks themselves, on made-up packages: each must catch what it is there to catch.
SYNTHETIC_WINGS = (("foundations", ""), ("low", ""), ("high", ""), ("entry point", ""))
SYNTHETIC_MODULES = {"pkg": ("", True), "pkg.low": ("", True), "pkg.high": ("", True)}


UPWARD_IMPORTS = (
    "from pkg.high.b import thing",
    "def later():\n    import pkg.high.b",
    "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.high import b",
)


@pytest.mark.parametrize("low_source", UPWARD_IMPORTS)
def test_a_circle_through_any_kind_of_import_is_found(low_source):
    graph = import_graph(
        {**SYNTHETIC_MODULES, "pkg.low.a": (low_source, False), "pkg.high.b": ("from pkg.low.a import helper", False)}
    )
    assert find_cycle(graph) in (["pkg.low.a", "pkg.high.b", "pkg.low.a"], ["pkg.high.b", "pkg.low.a", "pkg.high.b"])
    assert upward_imports(graph, SYNTHETIC_WINGS) == ["pkg.low.a (low) -> pkg.high.b (high)"]


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
    lazy = "def __getattr__(name):\n    from pkg.high.b import thing\n    return thing"
    graph = import_graph(
        {**SYNTHETIC_MODULES, "pkg": (lazy, True), "pkg.low.a": (lazy, False), "pkg.high.b": ("import pkg", False)}
    )
    assert graph["pkg"] == set() and graph["pkg.low.a"] == {"pkg.high.b"} and graph["pkg.high.b"] == {"pkg"}
    assert find_cycle(graph) is None
    assert upward_imports(graph, SYNTHETIC_WINGS) == ["pkg.low.a (low) -> pkg.high.b (high)"]


def test_each_module_belongs_to_its_package_wing():
    assert wing_of("pkg.high.deep.er", SYNTHETIC_WINGS) == 2 and wing_of("pkg.other.mod", SYNTHETIC_WINGS) is None
    assert wing_of("pkg.top", SYNTHETIC_WINGS) == 0 and wing_of("pkg.__main__", SYNTHETIC_WINGS) == 3
