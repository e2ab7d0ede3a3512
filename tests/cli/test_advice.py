"""Every message that tells the user to set an option: run the command that prints it, then the same command with
the options as the message prints them, which must get past it (issue 18: advice that does not work as written
is a fault of its own). The nested nulls (quantization, image_width, device_map) are in tests/cli/test_app.py,
the checkpoint-resume and checkpoint `allow_other_model` advice in tests/methods/test_checkpoints.py, `--overwrite`
with each output it guards in their tests."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from helpers import ICL_YAML, MTV_YAML, mtv_vector_file, sized

from lit_tv.cli.command import main

pytestmark = pytest.mark.slow  # end-to-end runs: deselect with -m 'not slow'

CONFIGS = Path(MTV_YAML).parent
FV, CROSS_MODAL = str(CONFIGS / "function_vectors.yaml"), str(CONFIGS / "cross_modal.yaml")
FV_RUN = ["test", "--config", FV, "--data.init_args.test_size=2", "--model.init_args.aie_prompts=2"]
CROSS_MODAL_RUN = ["test", "--config", CROSS_MODAL, "--data.init_args.test_size=2", "--trainer.callbacks=[]"]
MTV_FIT, MTV_TEST = (
    ["fit", "--config", MTV_YAML, *sized(support=2, train=2, test=2, steps=1)],
    ["test", "--config", MTV_YAML, *sized(support=2, train=2, test=2)],
)

# (command, the fault added to it, the message it prints, the options the message advises instead of the fault)
ADVICE = {
    "fv-support": (
        FV_RUN,
        ["--data.init_args.support_size=2"],
        "raise data.init_args.support_size",
        ["--data.init_args.support_size=12"],
    ),
    "cross-modal-support": (
        [*CROSS_MODAL_RUN, "--data.init_args.val_size=3"],
        ["--data.init_args.support_size=2"],
        "raise data.init_args.support_size",
        ["--data.init_args.support_size=12"],
    ),
    "cross-modal-val-size": (
        [*CROSS_MODAL_RUN, "--data.init_args.support_size=12"],
        ["--data.init_args.val_size=0"],
        "set data.init_args.val_size > 0",
        ["--data.init_args.val_size=3"],
    ),
    "cross-modal-layer": (
        [*CROSS_MODAL_RUN, "--data.init_args.support_size=12"],
        ["--data.init_args.val_size=0"],
        "or fix model.init_args.layer",
        ["--data.init_args.val_size=0", "--model.init_args.layer=1"],
    ),
    "mtv-precision": (
        MTV_FIT,
        ["--trainer.precision=bf16-true"],
        "use 32-true or bf16-mixed and set model.init_args.model.dtype",
        ["--trainer.precision=bf16-mixed", "--model.init_args.model.dtype=bfloat16"],
    ),
    "mtv-mean-activations": (
        MTV_FIT,
        ["--trainer.callbacks=[]"],
        "add their callback",
        ["--trainer.callbacks=[]", "--trainer.callbacks+=lit_tv.callbacks.mean_activations.MeanActivations"],
    ),
    "mtv-transfer-callback": (
        [*MTV_TEST, "--model.init_args.task_vector={vector}", "--model.init_args.transfer=heads"],
        ["--trainer.callbacks=[]"],
        "no callback that does",
        ["--trainer.callbacks=[]", "--trainer.callbacks+=lit_tv.callbacks.mean_activations.MeanActivations"],
    ),
    "mtv-transfer-support": (
        [*MTV_TEST, "--model.init_args.task_vector={vector}", "--model.init_args.transfer=heads"],
        ["--data.init_args.support_size=0"],
        "give it a positive number of episodes",
        ["--data.init_args.support_size=2"],
    ),
    "mtv-threshold": (
        [*MTV_FIT, "--model.init_args.selection=threshold"],
        ["--model.init_args.threshold=0.99"],
        "fit again with a lower --model.init_args.threshold",
        ["--model.init_args.threshold=0.01", "--overwrite"],
    ),
    "mtv-selection": (
        [*MTV_FIT, "--model.init_args.threshold=0.99"],
        ["--model.init_args.selection=threshold"],
        "or --model.init_args.selection=best_of_samples, and --overwrite",
        ["--model.init_args.selection=best_of_samples", "--overwrite"],
    ),
    "mtv-seeds": (MTV_FIT, ["--data.init_args.seeds=[0,1]"], "run once per seed", ["--data.init_args.seed=1"]),
    "seed-with-seeds": (
        ["test", "--config", ICL_YAML, *sized(support=2, train=2, test=2)],
        ["--data.init_args.seed=0", "--data.init_args.seeds=[0,1]"],
        "give one of them",
        ["--data.init_args.seeds=[0,1]"],
    ),
    "mtv-no-heads": (
        MTV_TEST,
        [],
        r"model.init_args.task_vector or --ckpt_path",
        ["--model.init_args.task_vector={vector}"],
    ),
    "other-task": (
        [*MTV_TEST, "--data.init_args.tasks=[shape]", "--model.init_args.task_vector={colour_vector}"],
        [],
        r"\(model.init_args.allow_other_task=true\)",
        ["--model.init_args.allow_other_task=true"],
    ),
    "other-model": (
        [*MTV_TEST, "--model.init_args.task_vector={unfingerprinted}"],
        [],
        r"\(model.init_args.allow_other_model=true\)",
        ["--model.init_args.allow_other_model=true"],
    ),
}


def _option(argument: str) -> str:
    """`--a.b=c` -> `a.b`: the name a message prints."""
    return argument.removeprefix("--").split("=")[0].removesuffix("+")


@pytest.mark.parametrize(("command", "fault", "message", "advice"), ADVICE.values(), ids=ADVICE.keys())
def test_the_options_a_message_advises_get_past_it(command, fault, message, advice, workdir):
    vectors = {
        "vector": mtv_vector_file(workdir, "vector.safetensors"),
        "colour_vector": mtv_vector_file(workdir, "colour.safetensors", metadata={"tasks": ["colour"]}),
        "unfingerprinted": mtv_vector_file(workdir, "unfingerprinted.safetensors", metadata={"fingerprint": None}),
    }
    command, advice = ([argument.format(**vectors) for argument in options] for options in (command, advice))
    with pytest.raises(SystemExit, match=message) as refused:
        main([*command, *fault])
    printed = str(refused.value.code)
    for option in advice:
        assert _option(option) in printed or option in fault, f"{option} is not what the message prints: {printed}"
    try:
        main([*command, *advice])
    except SystemExit as stopped:
        assert not re.search(message, str(stopped.code)), f"the advice {advice} did not get past: {stopped.code}"
        raise
