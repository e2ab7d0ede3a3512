"""README commands as a user types them: each prints or writes what it says, and nothing else."""

from __future__ import annotations

import json
import re
import shlex

import pytest
from helpers import REPO, SHAPES_CONFIGS, colour_image, mtv_vector_file

from lit_tv.cli.command import main
from lit_tv.vectors.file import load_task_vector

# the README's MTV fit on fewer queries (sizes do not cut a run short: it writes the config's folders)
SMALL_FIT = [
    "--data.init_args.support_size=24",
    "--data.init_args.train_size=40",
    "--trainer.enable_progress_bar=false",
]


def readme_command(start: str) -> list[str]:
    """The README's command that starts with `lit-tv {start}`, as arguments for `main` (without `lit-tv`)."""
    found = re.search(rf"`(lit-tv {re.escape(start)}[^`]*)`", (REPO / "README.md").read_text())
    assert found, f"README.md has no `lit-tv {start}...` command"
    return shlex.split(found.group(1))[1:]


@pytest.mark.slow
def test_the_readme_test_command_tests_the_colour_fit_after_a_fit_of_another_task(capsys, workdir):
    """The README's fit, then the same fit on another task as its row says (`--data.init_args.tasks [shape]`):
    each writes its own folders, and the README's test command, as written, tests the colour fit."""
    (workdir / "configs").symlink_to(REPO / "configs")
    fit = readme_command("fit --config configs/shapes/mtv.yaml")
    assert fit == ["fit", "--config", "configs/shapes/mtv.yaml"]
    main([*fit, *SMALL_FIT])
    main([*fit, *SMALL_FIT, "--data.init_args.tasks", "[shape]"])
    colour_heads = len(load_task_vector(workdir / "logs" / "shapes_mtv_colour" / "task_vector.safetensors")[0]["heads"])
    shape_heads = len(load_task_vector(workdir / "logs" / "shapes_mtv_shape" / "task_vector.safetensors")[0]["heads"])
    capsys.readouterr()
    main(readme_command("test --config configs/shapes/mtv.yaml --ckpt_path"))
    out = capsys.readouterr().out
    assert "MTV on ShapesDataModule (lit_tv/shapes-toy), test split" in out, out
    colour = re.search(r"^colour\s+([\d.]+)\s+150\s+(\d+)$", out, re.MULTILINE)
    assert colour, out
    assert int(colour.group(2)) == colour_heads, (
        "the colour fit's heads",
        colour_heads,
        "the shape fit's",
        shape_heads,
    )


@pytest.mark.slow
def test_validating_cross_modal_vectors_prints_each_layer_and_the_chosen_one(capsys, workdir):
    sizes = ["--data.init_args.support_size=12", "--data.init_args.val_size=6", "--trainer.callbacks=[]"]
    main(["validate", "--config", str(SHAPES_CONFIGS / "cross_modal.yaml"), *sizes])
    out = capsys.readouterr().out
    chosen = re.search(r"layer (\d+) chosen\nlayer\s+accuracy\s+colour\s+shape\s+position\s+chosen\n", out)
    assert chosen, out
    rows = re.findall(r"^(\d+)\s+([\d.]+)\s+[\d.]+\s+[\d.]+\s+[\d.]+\s*(<-)?$", out, re.MULTILINE)
    assert [int(layer) for layer, _, _ in rows] == list(range(len(rows))) and len(rows) > 1, out
    best = max(float(accuracy) for _, accuracy, _ in rows)
    assert [int(layer) for layer, accuracy, mark in rows if mark] == [int(chosen.group(1))]
    assert float(rows[int(chosen.group(1))][1]) == best


@pytest.mark.slow
def test_predict_writes_no_config_into_the_working_directory(workdir):
    (workdir / "config.yaml").write_text("mine: true\n")
    colour_image("red").save(workdir / "0.png")
    (workdir / "questions.jsonl").write_text(json.dumps({"images": ["0.png"], "question": ""}) + "\n")
    vector = mtv_vector_file(workdir, "vector.safetensors")
    predict = ["predict", "--config", str(SHAPES_CONFIGS / "predict.yaml"), f"--model.init_args.task_vector={vector}"]
    main([*predict, "--data.init_args.path=questions.jsonl"])
    assert (workdir / "config.yaml").read_text() == "mine: true\n"
    assert (workdir / "logs" / "shapes_mtv_colour" / "answers.jsonl").is_file()
    assert not list((workdir / "logs").rglob("config.yaml"))


@pytest.mark.parametrize(
    ("config", "option"),
    [("icl.yaml", "data.init_args.test_shots"), ("function_vectors.yaml", "data.init_args.shots")],
    ids=["test_episode", "support_episode"],
)
def test_a_prompt_past_the_context_names_the_option_of_its_shots(config, option, workdir):
    sizes = ["--data.init_args.support_size=2", "--data.init_args.test_size=2", "--trainer.callbacks=[]"]
    with pytest.raises(SystemExit) as stop:
        main(["test", "--config", str(SHAPES_CONFIGS / config), *sizes, f"--{option}=60"])
    message = str(stop.value)
    assert message.startswith("lit-tv: error: episode 0 of the batch (60 shots"), message
    assert re.search(rf"longer than .*: use fewer shots \({re.escape(option)}\)(,| or) smaller images", message), (
        message
    )
