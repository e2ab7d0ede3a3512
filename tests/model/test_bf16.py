"""Every zoo architecture runs `lit-tv fit` and `lit-tv test` with the model in bfloat16 (floating inputs cast)."""

from __future__ import annotations

import pytest
from helpers import ZOO_NAMES, logged_scalars, zoo_mtv_run

from lit_tv.cli.command import main

pytestmark = pytest.mark.slow  # end-to-end runs: deselect with -m 'not slow'

TEXT_ONLY = ["--data.init_args.shot_modality", "text", "--data.init_args.query_modality", "text"]


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_mtv_fit_and_test_run_in_bfloat16_through_the_cli(zoo_folder, name, workdir):
    args = zoo_mtv_run(
        zoo_folder(name),
        "--model.init_args.model.dtype",
        "bfloat16",
        "--trainer.max_steps",
        "2",
        *(TEXT_ONLY if name == "llama" else ()),
    )
    main(["fit", *args])
    main(["test", *args, "--ckpt_path", "logs/shapes_mtv_colour/smoke/checkpoints/last.ckpt"])
    scalars = logged_scalars(workdir / "logs" / "shapes_mtv_colour" / "version_1")
    assert scalars["test/queries"] == [6.0]
    assert "test/accuracy" in scalars
