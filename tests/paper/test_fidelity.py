"""Every config under configs/ holds the papers' settings (lit_tv/paper/reproduction.py) or lists why not.

The fast loop reads each config file with its classes' defaults filled in (`config_values`, no CLI); the slow
tests check that reading against the whole configuration LightningCLI builds (`effective`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import inspect
import io
import typing
from functools import cache
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import yaml

from lit_tv.cli.command import main
from lit_tv.paper import reproduction
from lit_tv.paper.reproduction import CONFIGS, drift, expected_settings, flatten

PAPER_CONFIGS = sorted(path for path in CONFIGS.rglob("*.yaml") if path.parent.name != "shapes")


@cache
def effective(path: Path) -> dict:
    """The whole configuration LightningCLI builds from the file, defaults included, as dotted keys."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), pytest.raises(SystemExit):
        main(["test", "--config", str(path), "--print_config"])
    return flatten(yaml.safe_load(printed.getvalue()))


@cache
def _defaults(cls: type) -> dict[str, Any]:
    """Each constructor option's default, a subclass's before its bases' (to which it passes the rest on)."""
    defaults: dict[str, Any] = {}
    for klass in cls.__mro__:
        if "__init__" in vars(klass):
            for name, parameter in inspect.signature(klass.__init__).parameters.items():
                if parameter.default is not inspect.Parameter.empty:
                    defaults.setdefault(name, parameter.default)
    return defaults


@cache
def _dataclass_option(cls: type, name: str) -> Any:
    """The dataclass an option of `cls` is typed as (`model: VLMOptions`, `extractor: VLMOptions | None`), or None."""
    for klass in cls.__mro__:
        hints = typing.get_type_hints(klass.__init__) if "__init__" in vars(klass) else {}
        for kind in typing.get_args(hints.get(name)) or (hints.get(name),):
            if dataclasses.is_dataclass(kind):
                return kind
    return None


def _filled(cls: type, given: dict[str, Any]) -> dict[str, Any]:
    """`given` options of `cls` with every other at its default; a dataclass option given as a mapping is built, as
    the CLI builds it (its own fields' defaults, its checks)."""
    values = {**_defaults(cls), **given}
    for name, value in values.items():
        kind = _dataclass_option(cls, name)
        if kind is not None and isinstance(value, dict):
            value = kind(**value)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            values[name] = dataclasses.asdict(value)
    return values


def config_values(path: Path) -> dict[str, Any]:
    """A config file as dotted keys, each option it leaves out at its class's default: the settings check without
    the CLI (milliseconds a config), so that config drift fails the fast loop."""
    config = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # libyaml: 20x faster
    tree: dict[str, Any] = {"trainer": _filled(L.Trainer, config.get("trainer") or {})}
    for block in ("model", "data"):
        module, _, name = config[block]["class_path"].rpartition(".")
        cls = getattr(importlib.import_module(module), name)
        tree[block] = {"init_args": _filled(cls, config[block].get("init_args") or {})}
    return flatten(tree)


@pytest.mark.parametrize("path", PAPER_CONFIGS, ids=lambda path: str(path.relative_to(CONFIGS)))
def test_config_holds_the_papers_settings_or_lists_the_deviation(path):
    assert drift(path, config_values(path)) == []


@pytest.mark.slow  # the CLI parses each paper config
@pytest.mark.parametrize("path", PAPER_CONFIGS, ids=lambda path: str(path.relative_to(CONFIGS)))
def test_the_fast_reading_of_a_config_is_the_cli_s(path):
    """What the fast check reads for each key the table sets is what the CLI builds (and so what a run uses)."""
    keys = expected_settings(path)
    fast, cli = config_values(path), effective(path)
    assert {key: fast.get(key, "<missing>") for key in keys} == {key: cli.get(key, "<missing>") for key in keys}
    assert drift(path, cli) == []


def test_a_drifted_config_is_caught():
    path = CONFIGS / "vizwiz" / "mtv_idefics2-8b.yaml"
    changed = dict(config_values(path))
    changed["model.init_args.policy"] = "prompt"
    changed["model.init_args.model.processor_kwargs.do_image_splitting"] = True
    problems = drift(path, changed)
    assert any("policy" in problem for problem in problems)
    assert any("do_image_splitting" in problem for problem in problems)


def test_a_stale_deviation_is_caught(monkeypatch):
    path = CONFIGS / "vizwiz" / "mtv_llava-1.5-7b.yaml"
    monkeypatch.setitem(
        reproduction.DEVIATIONS,
        "vizwiz/mtv_llava-1.5-7b.yaml",
        {"model.init_args.samples": "a deviation that is not one"},
    )
    assert any("equals the paper now" in problem for problem in drift(path, config_values(path)))


def test_every_paper_config_is_a_target_and_every_target_config_exists():
    named = {config for target in reproduction.TARGETS for config in target.configs}
    on_disk = {str(path.relative_to(CONFIGS)) for path in PAPER_CONFIGS}
    assert named - on_disk == set(), "targets name configs that do not exist"
    assert on_disk - named == set(), "configs no target row runs"


def test_every_listed_deviation_belongs_to_a_config():
    on_disk = {str(path.relative_to(CONFIGS)) for path in PAPER_CONFIGS}
    assert set(reproduction.DEVIATIONS) - on_disk == set()


def test_config_headers_state_their_model_substitution():
    for path in PAPER_CONFIGS:
        listed = reproduction.DEVIATIONS.get(str(path.relative_to(CONFIGS)), {})
        if "model.init_args.model.name" in listed:
            header = "".join(line for line in path.read_text().splitlines(keepends=True) if line.startswith("#"))
            assert "instead of" in header, f"{path}: its header must say which model it stands in for"


def test_the_reproduction_document_is_up_to_date():
    assert reproduction.DOC.read_text() == reproduction.render_document(), (
        "docs/reproducing.md is stale: run python -m lit_tv.paper.reproduction"
    )
