"""The README's main job: the table on the shapes world, and MTV's effect with the shipped toy VLM."""

from __future__ import annotations

import re

import pytest
from helpers import sized

from lit_tv.shapes.studies.main_job import ROWS, run_all_tasks, run_main_job, run_task

pytestmark = pytest.mark.slow  # end-to-end runs: deselect with -m 'not slow'

SMALL = sized(support=24, train=40, test=30)


@pytest.mark.slow
def test_main_job_prints_every_row_for_every_task(zoo_folder, capsys, workdir):
    tiny = [
        f"--model.init_args.model.name={zoo_folder('llava')}",
        "--data.init_args.support_size=4",
        "--data.init_args.test_size=4",
        "--data.init_args.train_size=8",
    ]
    runs = run_main_job(tiny, tasks=("colour", "shape"), seeds=(0, 1))
    table = capsys.readouterr().out
    assert "mean ± std (min–max) over seeds 0, 1" in table
    cell = r"\s+\d\.\d\d ± \d\.\d\d \(\d\.\d\d–\d\.\d\d\)"
    for row in ROWS:
        label = re.escape(f"{row} (20 draws)" if row == "random heads" else row)
        assert re.search(rf"^{label}(?:{cell}){{3}}$", table, re.MULTILINE), row
    assert re.search(r"^MTV vs the draws(?:\s+above \d+ of (40|80)(?: \(\d+ tied\))?){3}$", table, re.MULTILINE)
    assert [set(by_task) for by_task in runs] == [{"colour", "shape"}] * 2
    assert all(len(run["colour"]["random heads"]) == 20 for run in runs)
    for seed in (0, 1):
        assert (workdir / "logs" / "shapes_mtv_colour" / f"seed_{seed}" / "task_vector.safetensors").is_file()


def test_mtv_beats_zero_shot_with_the_shipped_toy_vlm(workdir):
    results = run_task("position", SMALL)
    assert results["MTV"] - results["zero-shot"] >= 0.2, results


def test_text_vectors_move_the_task_onto_image_queries_with_the_shipped_toy_vlm(workdir):
    patched = run_all_tasks(
        "cross_modal.yaml",
        ["--data.init_args.support_size=60", "--data.init_args.val_size=30", "--data.init_args.test_size=30"],
        ("colour",),
    )
    zero_shot = run_all_tasks(
        "icl.yaml", ["--data.init_args.test_shots=0", "--data.init_args.test_size=30"], ("colour",)
    )
    assert patched["colour"] - zero_shot["colour"] >= 0.3, (patched, zero_shot)
