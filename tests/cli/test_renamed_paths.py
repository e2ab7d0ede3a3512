"""Configs written before modules were renamed still build the same classes, with a warning naming the new path."""

from __future__ import annotations

import contextlib
import io

import pytest
import yaml

from lit_tv.cli.app import main
from lit_tv.paper.reproduction import CONFIGS


def printed_config(path, old: str, new: str, tmp_path) -> dict:
    text = path.read_text().replace(new, old)
    assert old in text
    config = tmp_path / "old.yaml"
    config.write_text(text)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), pytest.raises(SystemExit), pytest.warns(FutureWarning, match=new):
        main(["test", "--config", str(config), "--print_config"])
    return yaml.safe_load(printed.getvalue())


def test_the_old_cross_modal_method_path_builds_residual_task_vectors(tmp_path):
    config = printed_config(
        CONFIGS / "shapes" / "cross_modal.yaml", "lit_tv.methods.cross_modal", "lit_tv.methods.residual", tmp_path
    )
    assert config["model"]["class_path"].endswith("ResidualTaskVectors")


def test_the_old_two_way_data_path_builds_flowers(tmp_path):
    config = printed_config(
        CONFIGS / "flowers" / "mtv_idefics2-8b.yaml",
        "lit_tv.data.fewshot_classification",
        "lit_tv.data.two_way",
        tmp_path,
    )
    assert config["data"]["class_path"].endswith("Flowers102")
