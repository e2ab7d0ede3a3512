"""What `lit-tv` prints on real runs: no library tips or per-load weight bars, one bar per long pass, one table."""

from __future__ import annotations

import re

import pytest
from helpers import SHAPES_CONFIGS

import lit_tv.__main__
from lit_tv.cli.command import main
from lit_tv.console import task_table
from lit_tv.shapes.studies.main_job import run_main_job

CONFIGS = SHAPES_CONFIGS
NOISE = ("Tip:", "litlogger", "litmodels", "Loading weights", "weights_only", "LeafSpec", "args parameter")


@pytest.mark.slow
def test_fit_and_test_print_no_noise_and_test_ends_with_one_per_task_table(capfd, workdir):
    small = [
        "--config",
        str(CONFIGS / "mtv.yaml"),
        "--data.init_args.support_size=8",
        "--data.init_args.test_size=6",
        "--data.init_args.train_size=12",
        "--model.init_args.selection_queries=4",
        "--model.init_args.samples=8",
    ]
    main(["fit", *small, "--trainer.max_steps=3"])
    fit = "".join(capfd.readouterr())
    assert "mean activations" in fit  # the long pass keeps its progress bar
    main(["test", *small, "--ckpt_path", "logs/shapes_mtv_colour/smoke/checkpoints/last.ckpt"])
    out, err = capfd.readouterr()
    for text in (fit, out + err):
        assert not [word for word in NOISE if word in text], text
    assert out.count("task    accuracy") == 1 and "Test metric" not in out, out  # ours replaces Lightning's
    heads = re.search(r"^colour\s+([\d.]+)\s+6\s+(\d+)$", out, re.MULTILINE)
    assert heads, out
    assert re.search(rf"^all\s+{heads.group(1)}\s+6\s+{heads.group(2)}$", out, re.MULTILINE), out


@pytest.mark.slow
def test_the_main_job_prints_its_table_without_noise(monkeypatch, capfd, workdir):
    """`lit-tv` with no arguments, on fewer queries and steps (the same runs as the real main job)."""
    small = [
        "--data.init_args.support_size=6",
        "--data.init_args.test_size=6",
        "--data.init_args.train_size=6",
        "--data.init_args.val_size=6",
        "--trainer.max_steps=2",
    ]
    monkeypatch.setattr(
        lit_tv.__main__,
        "run_main_job",
        lambda overrides: run_main_job([*small, *overrides], tasks=("colour", "position")),
    )
    lit_tv.__main__.main([])
    out, err = capfd.readouterr()
    assert not [word for word in NOISE if word in out + err], out + err
    assert out.count("shapes world, accuracy on held-out test queries") == 1 and "task    accuracy" not in out
    for banner in ("GPU available", "Seed set to", "Trainable params"):  # one table, not a banner per run
        assert banner not in out + err, out + err


@pytest.mark.slow
def test_cross_modal_test_table_has_each_task_and_the_layer(capfd, workdir):
    main(
        [
            "test",
            "--config",
            str(CONFIGS / "cross_modal.yaml"),
            "--trainer.callbacks=[]",
            "--data.init_args.support_size=6",
            "--data.init_args.val_size=6",
            "--data.init_args.test_size=9",
        ]
    )
    out = capfd.readouterr().out
    assert re.search(r"^task\s+accuracy\s+queries\s+layer$", out, re.MULTILINE), out
    for task, queries in (("all", 9), ("colour", 3), ("shape", 3), ("position", 3)):
        assert re.search(rf"^{task}\s+[\d.]+\s+{queries}\s+\d$", out, re.MULTILINE), (task, out)


def test_task_table_formats_numbers_and_missing_cells():
    table = task_table(
        {"colour": {"accuracy": 0.5, "queries": 4}, "all": {"accuracy": 1 / 3, "heads": 2}},
        ["accuracy", "queries", "heads"],
    )
    assert table.splitlines() == [
        "task    accuracy   queries     heads",
        "colour     0.500         4         -",
        "all        0.333         -         2",
    ]
