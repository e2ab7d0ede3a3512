"""Two CPU processes (DDP, gloo) give the same task vector and test accuracy as one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import SHAPES_CONFIGS, logged_scalars

from lit_tv.vectors.file import load_task_vector

pytestmark = pytest.mark.slow  # end-to-end runs: deselect with -m 'not slow'

CONFIGS = SHAPES_CONFIGS
CONFIG = CONFIGS / "mtv.yaml"


def _lit_tv(cwd: Path, *args: str) -> None:
    environment = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(
        [sys.executable, "-m", "lit_tv.cli.command", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]


def _test_scalars(folder: Path, run: str = "shapes_mtv_colour") -> dict[str, float]:
    logged = logged_scalars(sorted((folder / "logs" / run).glob("version_*"))[-1])
    return {tag: values[-1] for tag, values in logged.items() if tag.startswith("test/")}


def _on_one_and_two_processes(tmp_path: Path, *runs: list[str]) -> tuple[Path, Path]:
    """Run the same lit-tv commands in a fresh folder with 1 process, then with 2 (DDP, gloo)."""
    folders = []
    for devices in (1, 2):
        folder = tmp_path / f"devices{devices}"
        folder.mkdir()
        strategy = ["--trainer.strategy", "ddp"] if devices > 1 else []
        for args in runs:
            _lit_tv(folder, *args, "--trainer.devices", str(devices), *strategy)
        folders.append(folder)
    return folders[0], folders[1]


def test_two_processes_match_one(zoo_folder, tmp_path):
    common = [
        "--config",
        str(CONFIG),
        "--model.init_args.model.name",
        str(zoo_folder("llava")),
        "--trainer.max_steps",
        "3",
        "--data.init_args.batch_size",
        "2",
        "--data.init_args.support_size",
        "10",
        "--data.init_args.test_size",
        "7",
        "--model.init_args.samples",
        "8",
        "--model.init_args.selection_queries",
        "4",
        "--model.init_args.theta_init",
        "0.0",
    ]
    folders = _on_one_and_two_processes(
        tmp_path,
        ["fit", *common],
        ["test", *common, "--ckpt_path", "logs/shapes_mtv_colour/smoke/checkpoints/last.ckpt"],
    )
    (one, _), (two, _) = (
        load_task_vector(folder / "logs" / "shapes_mtv_colour" / "smoke" / "task_vector.safetensors")
        for folder in folders
    )
    one_test, two_test = (_test_scalars(folder) for folder in folders)
    torch.testing.assert_close(two["mean_activations"], one["mean_activations"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(two["theta"], one["theta"], atol=1e-5, rtol=1e-5)
    assert torch.equal(two["heads"], one["heads"])
    assert one_test["test/queries"] == two_test["test/queries"] == 7  # no query padded in or dropped
    assert one_test["test/accuracy"] == two_test["test/accuracy"]


def test_cross_modal_vectors_and_grid_search_match_on_two_processes(zoo_folder, tmp_path):
    common = [
        "--config",
        str(CONFIGS / "cross_modal.yaml"),
        "--model.init_args.model.name",
        str(zoo_folder("llava")),
        "--data.init_args.support_size",
        "21",
        "--data.init_args.val_size",
        "9",
        "--data.init_args.test_size",
        "7",
        "--data.init_args.shots",
        "2",
        "--model.init_args.extraction_batch_size",
        "4",
    ]
    folders = _on_one_and_two_processes(tmp_path, ["test", *common])
    (one, one_meta), (two, two_meta) = (
        load_task_vector(folder / "logs" / "shapes_cross_modal" / "task_vectors.safetensors") for folder in folders
    )
    one_test, two_test = (_test_scalars(folder, "shapes_cross_modal") for folder in folders)
    torch.testing.assert_close(two["vectors"], one["vectors"], atol=1e-5, rtol=1e-5)  # each episode counted once
    assert one_meta["layer"] == two_meta["layer"]
    assert one_test["test/queries"] == two_test["test/queries"] == 7
    assert one_test["test/accuracy"] == two_test["test/accuracy"]
