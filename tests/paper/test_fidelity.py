"""Every config under configs/ holds the papers' settings (lit_tv/paper/reproduction.py) or lists why not."""

from __future__ import annotations

import contextlib
import io
from functools import cache
from pathlib import Path

import pytest
import yaml

from lit_tv.cli.command import main
from lit_tv.paper import reproduction
from lit_tv.paper.reproduction import CONFIGS, drift, flatten

PAPER_CONFIGS = sorted(path for path in CONFIGS.rglob("*.yaml") if path.parent.name != "shapes")


@cache
def effective(path: Path) -> dict:
    """The whole configuration LightningCLI builds from the file, defaults included, as dotted keys."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), pytest.raises(SystemExit):
        main(["test", "--config", str(path), "--print_config"])
    return flatten(yaml.safe_load(printed.getvalue()))


@pytest.mark.slow  # the CLI parses each paper config
@pytest.mark.parametrize("path", PAPER_CONFIGS, ids=lambda path: str(path.relative_to(CONFIGS)))
def test_config_holds_the_papers_settings_or_lists_the_deviation(path):
    assert drift(path, effective(path)) == []


def test_a_drifted_config_is_caught():
    path = CONFIGS / "vizwiz" / "mtv_idefics2-8b.yaml"
    changed = dict(effective(path))
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
    assert any("equals the paper now" in problem for problem in drift(path, effective(path)))


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
