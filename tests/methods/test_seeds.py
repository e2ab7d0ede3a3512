"""Runs over several data seeds: each seed logged with the spread over seeds, one vector per seed; MTV refuses."""

from __future__ import annotations

import pytest
import torch
from helpers import CONFIGS, logged_scalars, zoo_cross_modal_run

from lit_tv.cli.command import main
from lit_tv.vectors.file import load_task_vector


@pytest.mark.slow
def test_a_run_over_seeds_logs_each_seed_with_mean_and_spread_and_exports_one_file_per_seed(zoo_folder, workdir):
    main(
        [
            "test",
            *zoo_cross_modal_run(zoo_folder("llava")),
            "--data.init_args.seeds",
            "[0, 1]",
            "--model.init_args.layer",
            "1",
        ]
    )
    run = workdir / "logs" / "shapes_cross_modal"
    scalars = logged_scalars(next(run.glob("version_*")))
    per_seed = torch.tensor([scalars["test/accuracy/seed_0"][0], scalars["test/accuracy/seed_1"][0]])
    assert scalars["test/accuracy_mean_over_seeds"][0] == pytest.approx(per_seed.mean().item())
    assert scalars["test/accuracy_std_over_seeds"][0] == pytest.approx(per_seed.std().item(), abs=1e-6)
    assert scalars["test/queries"] == [12.0]
    first, _ = load_task_vector(run / "task_vectors.seed0.safetensors")
    second, metadata = load_task_vector(run / "task_vectors.seed1.safetensors")
    assert metadata["seed"] == "1" and not torch.allclose(first["vectors"], second["vectors"])


@pytest.mark.slow
def test_mtv_refuses_several_seeds(zoo_folder, workdir):
    with pytest.raises(SystemExit, match=r"data.init_args.seeds=\[0, 1\]: MTV runs one data seed per fit"):
        main(
            [
                "fit",
                "--config",
                str(CONFIGS / "shapes" / "mtv.yaml"),
                "--model.init_args.model.name",
                str(zoo_folder("llava")),
                "--data.init_args.seeds",
                "[0, 1]",
                "--trainer.max_steps",
                "1",
            ]
        )
