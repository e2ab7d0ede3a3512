"""Every zoo architecture runs the methods end to end through the CLI: an MTV fit, its test with the random-heads
control beside the selected heads, and a cross-modal residual run (grid search, test, export)."""

from __future__ import annotations

import pytest
from helpers import ZOO_NAMES, logged_scalars, zoo_cross_modal_run, zoo_mtv_run

from lit_tv.cli.command import main
from lit_tv.vectors.file import load_task_vector

pytestmark = pytest.mark.slow  # end-to-end runs: deselect with -m 'not slow'


def text_only(name: str, *modalities: str) -> list[str]:
    """The text-only zoo model (no image processor) takes text where the config puts images."""
    return [f"--data.init_args.{key}=text" for key in modalities] if name == "llama" else []


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_every_method_runs_through_the_cli(zoo_folder, name, workdir, capsys):
    mtv = zoo_mtv_run(zoo_folder(name), "--trainer.max_steps=2", *text_only(name, "shot_modality", "query_modality"))
    main(["fit", *mtv])
    checkpoint = workdir / "logs" / "shapes_mtv_colour" / "smoke" / "checkpoints" / "last.ckpt"
    main(["test", *mtv, "--ckpt_path", str(checkpoint), "--model.init_args.test_heads", "random"])
    scalars = logged_scalars(workdir / "logs" / "shapes_mtv_colour" / "version_1")
    assert scalars["test/queries"] == [6.0] and "test/accuracy" in scalars
    assert scalars["test/random_heads/draws"] == [20.0]
    assert "random heads (20 draws of " in capsys.readouterr().out

    main(["test", *zoo_cross_modal_run(zoo_folder(name), *text_only(name, "query_modality"))])
    tensors, metadata = load_task_vector(workdir / "logs" / "shapes_cross_modal" / "task_vectors.safetensors")
    assert tensors["vectors"].shape == (3, 2, 64)  # tasks x layers x hidden
    assert metadata["layer"] in ("0", "1")
    assert "test/accuracy" in logged_scalars(workdir / "logs" / "shapes_cross_modal" / "version_0")
