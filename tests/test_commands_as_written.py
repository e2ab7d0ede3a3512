"""README commands as a user types them: each prints or writes what it says, and nothing else."""

from __future__ import annotations

import json
import re

import pytest
from conftest import colour_image
from test_bad_inputs import _mtv_vector

from lit_tv.cli import main
from lit_tv.shapes.main_job import CONFIGS


@pytest.mark.slow
def test_validating_cross_modal_vectors_prints_each_layer_and_the_chosen_one(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    sizes = ["--data.init_args.support_size=12", "--data.init_args.val_size=6", "--trainer.callbacks=[]"]
    main(["validate", "--config", str(CONFIGS / "cross_modal.yaml"), *sizes])
    out = capsys.readouterr().out
    chosen = re.search(r"layer (\d+) chosen\nlayer\s+accuracy\s+colour\s+shape\s+position\s+chosen\n", out)
    assert chosen, out
    rows = re.findall(r"^(\d+)\s+([\d.]+)\s+[\d.]+\s+[\d.]+\s+[\d.]+\s*(<-)?$", out, re.MULTILINE)
    assert [int(layer) for layer, _, _ in rows] == list(range(len(rows))) and len(rows) > 1, out
    best = max(float(accuracy) for _, accuracy, _ in rows)
    assert [int(layer) for layer, accuracy, mark in rows if mark] == [int(chosen.group(1))]
    assert float(rows[int(chosen.group(1))][1]) == best


@pytest.mark.slow
def test_predict_writes_no_config_into_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.yaml").write_text("mine: true\n")
    colour_image("red").save(tmp_path / "0.png")
    (tmp_path / "questions.jsonl").write_text(json.dumps({"images": ["0.png"], "question": ""}) + "\n")
    vector = _mtv_vector(tmp_path, "vector.safetensors")
    predict = ["predict", "--config", str(CONFIGS / "predict.yaml"), f"--model.init_args.task_vector={vector}"]
    main([*predict, "--data.init_args.path=questions.jsonl"])
    assert (tmp_path / "config.yaml").read_text() == "mine: true\n"
    assert (tmp_path / "logs" / "shapes_mtv" / "answers.jsonl").is_file()
    assert not list((tmp_path / "logs").rglob("config.yaml"))
