"""Checkpoints as a user meets them: the options asked for win, foreign checkpoints are refused, resume is exact."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from helpers import MTV_YAML, SHAPES_CONFIGS, KillAtStep, Killed, logged_scalars, sized, zoo_mtv_run
from lightning.pytorch.callbacks import Callback
from transformers import AutoModelForImageTextToText

from lit_tv.cli.app import build_cli
from lit_tv.cli.command import main
from lit_tv.methods.mtv import MTV
from lit_tv.model.vlm import FrozenVLM
from lit_tv.vectors.file import load_task_vector

pytestmark = pytest.mark.slow  # end-to-end runs: deselect with -m 'not slow'

CONFIGS = SHAPES_CONFIGS
# the README's MTV commands on the shapes toy, one task, sized to run in seconds
SHAPES = sized(tasks="position", support=24, train=40, test=60)
RUN = Path("logs/shapes_mtv_position")  # the config's folders are the task's (shapes_mtv_{tasks})
LAST = RUN / "checkpoints" / "last.ckpt"
VECTOR = RUN / "task_vector.safetensors"
# where a fit whose command line sets max_steps (a short run) on the config's colour task writes them
SMOKE = Path("logs/shapes_mtv_colour/smoke")
EPOCHS = ["--trainer.max_steps", "-1", "--trainer.max_epochs", "2"]
LAST_OF, VECTOR_OF = Path("checkpoints/last.ckpt"), Path("task_vector.safetensors")  # under a fit's output folder


def _test_accuracy(*args: str, tag: str = "test/accuracy") -> float:
    """`lit-tv test --config configs/shapes/mtv.yaml ...` and the accuracy it logged (its newest run)."""
    main(["test", "--config", MTV_YAML, *SHAPES, *args])
    newest = max(RUN.glob("version_*"), key=lambda path: int(path.name.split("_")[1]))
    return logged_scalars(newest)[tag][0]


@pytest.fixture(scope="module")
def fitted_shapes(tmp_path_factory) -> Path:
    """`lit-tv fit --config configs/shapes/mtv.yaml` on the position task, in a folder of its own."""
    folder = tmp_path_factory.mktemp("shapes_fit")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        main(["fit", "--config", MTV_YAML, *SHAPES])
    return folder


def test_the_random_heads_control_gives_its_own_number_through_ckpt_path_and_task_vector(fitted_shapes, monkeypatch):
    monkeypatch.chdir(fitted_shapes)
    selected = _test_accuracy("--ckpt_path", str(LAST))
    control = ["--model.init_args.test_heads", "random", "--model.init_args.random_draws", "10"]
    random_by_checkpoint = _test_accuracy("--ckpt_path", str(LAST), *control, tag="test/random_heads/accuracy")
    random_by_vector = _test_accuracy(
        "--model.init_args.task_vector", str(VECTOR), *control, tag="test/random_heads/accuracy"
    )
    assert random_by_checkpoint == random_by_vector, "the same control must give the same number either way"
    assert random_by_checkpoint <= selected - 0.3, (selected, random_by_checkpoint)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("icl.yaml", "holds a lit_tv.methods.mtv.MTV fit but this run's model.class_path is lit_tv.methods.icl.ICL"),
        (
            "function_vectors.yaml",
            "holds a lit_tv.methods.mtv.MTV fit but this run's model.class_path is "
            "lit_tv.methods.function_vectors.FunctionVectors",
        ),
    ],
)
def test_a_checkpoint_of_another_method_is_refused(fitted_shapes, monkeypatch, config, message):
    monkeypatch.chdir(fitted_shapes)
    with pytest.raises(SystemExit, match=message):
        main(["test", "--config", str(CONFIGS / config), "--ckpt_path", str(LAST)])


def test_a_checkpoint_of_another_model_is_refused_before_the_model_loads(fitted_shapes, monkeypatch, zoo_folder):
    monkeypatch.chdir(fitted_shapes)
    with pytest.raises(SystemExit, match=r"fitted on layout .*; model.init_args.model.name .*llava\w* has layout"):
        main(
            [
                "test",
                "--config",
                MTV_YAML,
                "--ckpt_path",
                str(LAST),
                "--model.init_args.model.name",
                str(zoo_folder("llava")),
            ]
        )


def test_a_checkpoint_follows_its_model_s_weights_not_its_folder(zoo_folder, workdir):
    """The fit's model in another folder still matches its checkpoint; weights changed in the fit's own folder since
    the fit are refused, naming the field and allow_other_model, as the same fit's vector is."""
    folder, moved = workdir / "model", workdir / "moved"
    shutil.copytree(zoo_folder("llava"), folder)
    main(["fit", *zoo_mtv_run(folder)])
    (last,), (vector,) = workdir.glob("logs/**/last.ckpt"), workdir.glob("logs/**/task_vector.safetensors")
    shutil.copytree(folder, moved)
    main(["test", *zoo_mtv_run(moved, "--ckpt_path", str(last))])
    model = AutoModelForImageTextToText.from_pretrained(folder)
    name, weight = next((name, weight) for name, weight in model.named_parameters() if "layers.1.mlp" in name)
    with torch.no_grad():
        weight.add_(torch.randn(weight.shape, generator=torch.Generator().manual_seed(0)) * float(weight.std()))
    model.save_pretrained(folder)  # a fine-tune written over the fit's folder: embeddings and layout unchanged
    with pytest.raises(
        SystemExit, match=rf"last.ckpt was fitted on model .*'fingerprint': weight '{name}'.*allow_other_model=true"
    ):
        main(["test", *zoo_mtv_run(folder, "--ckpt_path", str(last))])
    with pytest.raises(SystemExit, match=rf"task_vector.safetensors .*'fingerprint': weight '{name}'"):
        main(["test", *zoo_mtv_run(folder, f"--model.init_args.task_vector={vector}")])
    with pytest.warns(UserWarning, match=r"last.ckpt was fitted on model .* used anyway \(allow_other_model\)"):
        main(["test", *zoo_mtv_run(folder, "--ckpt_path", str(last), "--model.init_args.allow_other_model=true")])


def test_ckpt_path_and_task_vector_together_are_refused(fitted_shapes, monkeypatch):
    monkeypatch.chdir(fitted_shapes)
    with pytest.raises(SystemExit, match="either --ckpt_path or model.init_args.task_vector"):
        main(["test", "--config", MTV_YAML, "--ckpt_path", str(LAST), "--model.init_args.task_vector", str(VECTOR)])


def test_resuming_with_other_options_is_refused_naming_them(fitted_shapes, monkeypatch):
    monkeypatch.chdir(fitted_shapes)
    with pytest.raises(SystemExit, match=r"model.init_args.samples: 32 -> 8.*data.init_args.seed: 0 -> 1"):
        main(
            [
                "fit",
                "--config",
                MTV_YAML,
                *SHAPES,
                "--ckpt_path",
                "last",
                "--model.init_args.samples",
                "8",
                "--data.init_args.seed",
                "1",
            ]
        )


def test_the_refused_resumes_advice_starts_a_new_fit_as_written(fitted_shapes, tmp_path, monkeypatch):
    """The refusal's advice, a new fit without --ckpt_path and with --overwrite, works in the same folder."""
    shutil.copytree(fitted_shapes, tmp_path / "fit")
    monkeypatch.chdir(tmp_path / "fit")
    other = ["fit", "--config", MTV_YAML, *SHAPES, "--data.init_args.seed", "1"]
    with pytest.raises(SystemExit, match="start a new fit without --ckpt_path and with --overwrite"):
        main([*other, "--ckpt_path", "last"])
    main([*other, "--overwrite"])
    assert torch.load(LAST, weights_only=True)["datamodule_hyper_parameters"]["seed"] == 1


class KillBeforeHeadSelection(Callback):
    """Callbacks' on_train_end runs before the module's, where the heads are chosen and exported."""

    def on_train_end(self, trainer, pl_module) -> None:
        raise Killed


def _final(folder: Path) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """theta and heads of the run's final last.ckpt, and its exported vector."""
    state = torch.load(folder / LAST_OF, weights_only=True)["state_dict"]
    assert state["heads_chosen"], "the final checkpoint must hold the chosen heads"
    tensors, _ = load_task_vector(folder / VECTOR_OF)
    return state["theta"], state["selected_heads"], tensors


@pytest.mark.parametrize(
    ("kill", "limit", "outputs"),
    [
        (KillAtStep(15), ["--trainer.max_steps", "20"], SMOKE),
        (KillBeforeHeadSelection(), ["--trainer.max_steps", "20"], SMOKE),
        # no step limit (the config's folders, not smoke/): 2 epochs of 5 queries, the final step's checkpoint
        (KillBeforeHeadSelection(), [*EPOCHS, "--data.init_args.train_size", "5"], SMOKE.parent),
    ],
    ids=["mid_epoch", "before_heads", "before_heads_of_an_epoch_limited_fit"],
)
def test_a_killed_fit_resumed_with_ckpt_path_last_ends_as_the_uninterrupted_fit(
    zoo_folder, tmp_path, monkeypatch, kill, limit, outputs
):
    # 8 training queries, checkpoints every 10 steps, 20 steps (or 2 epochs: 16): the kill at 15 resumes in the
    # second epoch
    args = zoo_mtv_run(
        zoo_folder("llava"), "--data.init_args.train_size", "8", "--data.init_args.test_size", "4", *limit
    )
    (tmp_path / "whole").mkdir()
    monkeypatch.chdir(tmp_path / "whole")
    main(["fit", *args])
    (tmp_path / "killed").mkdir()
    monkeypatch.chdir(tmp_path / "killed")
    cli = build_cli(SHAPES_CONFIGS / "mtv.yaml", args)
    cli.trainer.callbacks.append(kill)
    with pytest.raises(Killed):
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert not (outputs / VECTOR_OF).exists()
    assert not torch.load(outputs / LAST_OF, weights_only=True)["state_dict"]["heads_chosen"]
    main(["fit", *args, "--ckpt_path", "last"])
    theta, heads, vector = _final(tmp_path / "whole" / outputs)
    resumed_theta, resumed_heads, resumed_vector = _final(tmp_path / "killed" / outputs)
    torch.testing.assert_close(resumed_theta, theta, rtol=1e-6, atol=1e-7)
    assert (theta != -1).any(), "REINFORCE should have moved theta"
    assert torch.equal(resumed_heads, heads) and heads.any()
    assert torch.equal(resumed_vector["heads"], vector["heads"])
    torch.testing.assert_close(resumed_vector["mean_activations"], vector["mean_activations"])


def test_a_checkpoint_holding_nan_is_refused_before_the_model_loads(fitted_shapes, monkeypatch):
    monkeypatch.chdir(fitted_shapes)
    checkpoint = torch.load(LAST, weights_only=True)
    checkpoint["state_dict"]["mean_activations"][0, 0, 0] = float("nan")
    torch.save(checkpoint, "nan.ckpt")
    with pytest.raises(SystemExit, match=r"--ckpt_path: nan.ckpt: 'mean_activations' holds 1 NaN or infinite values"):
        main(["test", "--config", MTV_YAML, "--ckpt_path", "nan.ckpt"])


def test_a_checkpoint_of_another_task_is_refused_before_the_model_loads(fitted_shapes, monkeypatch):
    monkeypatch.chdir(fitted_shapes)
    monkeypatch.setattr(FrozenVLM, "from_options", _no_model_load)
    refusal = (
        r"--ckpt_path: .*last.ckpt was fitted on tasks \['position'\] of ShapesDataModule; this run's tasks "
        r"\(data.init_args.tasks\) are \['colour'\] of ShapesDataModule; .*model.init_args.allow_other_task=true"
    )
    with pytest.raises(SystemExit, match=refusal):  # the config's task, colour
        main(["test", "--config", MTV_YAML, "--ckpt_path", str(LAST)])
    with pytest.raises(SystemExit, match=refusal):
        main(["validate", "--config", MTV_YAML, "--ckpt_path", str(LAST)])


def _no_model_load(*args, **kwargs):
    raise AssertionError("the model was loaded before the checkpoint was checked")


@pytest.mark.parametrize("given", ["--ckpt_path", "--model.init_args.task_vector"])
def test_a_checkpoint_or_vector_used_on_another_task_on_purpose_is_named(fitted_shapes, monkeypatch, capsys, given):
    monkeypatch.chdir(fitted_shapes)
    source = LAST if given == "--ckpt_path" else VECTOR
    colour = ["--data.init_args.tasks=[colour]", "--data.init_args.test_size=8", "--model.init_args.export=null"]
    with pytest.warns(UserWarning, match=r"\['position'\] of ShapesDataModule.*used anyway \(allow_other_task\)"):
        main(
            [
                "test",
                "--config",
                MTV_YAML,
                *SHAPES,
                *colour,
                given,
                str(source),
                "--model.init_args.allow_other_task=true",
            ]
        )
    title = "MTV on ShapesDataModule (lit_tv/shapes-toy, fitted on tasks ['position'] of ShapesDataModule), test split"
    assert title in capsys.readouterr().out


def _means_patched_on_colour(monkeypatch: pytest.MonkeyPatch, given: str, source: Path) -> torch.Tensor:
    """`lit-tv test` on the colour task with the position fit's heads (`transfer: heads`): the means it patched."""
    kept: list[torch.Tensor] = []
    test_end = MTV.on_test_end

    def keep_means(method: MTV) -> None:
        kept.append(method.mean_activations.clone())
        test_end(method)

    monkeypatch.setattr(MTV, "on_test_end", keep_means)
    colour = ["--data.init_args.tasks=[colour]", "--data.init_args.test_size=8", "--model.init_args.export=null"]
    transfer = ["--model.init_args.allow_other_task=true", "--model.init_args.transfer=heads"]
    main(["test", "--config", MTV_YAML, *SHAPES, *colour, *transfer, given, str(source)])
    return kept[0]


def test_transferred_heads_get_means_of_the_new_task_through_ckpt_path_as_through_task_vector(
    fitted_shapes, monkeypatch
):
    monkeypatch.chdir(fitted_shapes)
    by_checkpoint = _means_patched_on_colour(monkeypatch, "--ckpt_path", LAST)
    by_vector = _means_patched_on_colour(monkeypatch, "--model.init_args.task_vector", VECTOR)
    fitted = torch.load(LAST, weights_only=True)["state_dict"]["mean_activations"]
    assert torch.equal(by_checkpoint, by_vector), "the same transfer must patch the same means either way"
    assert not torch.equal(by_checkpoint, fitted), "the means are the colour task's, not the position fit's"
