"""A saved task vector applied to a plain transformers model in a user's own loop gives `lit-tv test`'s answers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import SHAPES_CONFIGS, residual_file, sized
from transformers import AutoModelForImageTextToText, AutoProcessor

import lit_tv
from lit_tv.cli.app import build_cli
from lit_tv.metrics import ExactMatch
from lit_tv.model.loading import BUILTIN_MODELS
from lit_tv.vectors.file import TaskVectorMismatchError

CONFIGS = SHAPES_CONFIGS
TOY = BUILTIN_MODELS["lit_tv/shapes-toy"]
SMALL = sized(support=24, test=30)
# config -> (tasks, extra options, the file its run exports, whether it is fitted first); MTV is one task per vector
RUNS = {
    "mtv.yaml": (
        ["colour"],
        ["--data.init_args.train_size=40", "--trainer.max_steps=10"],
        "logs/shapes_mtv_colour/smoke/task_vector.safetensors",  # --trainer.max_steps given: a short run
        True,
    ),
    "cross_modal.yaml": (
        ["colour", "shape", "position"],
        ["--data.init_args.val_size=30", "--trainer.callbacks=[]"],
        "logs/shapes_cross_modal/task_vectors.safetensors",
        False,
    ),
    "function_vectors.yaml": (
        ["colour", "shape", "position"],
        ["--data.init_args.support_size=60"],
        "logs/shapes_function_vectors/function_vectors.safetensors",
        False,
    ),
}


def user_loop(model, processor, queries, vector: Path | None, task: str) -> list[str]:
    """What a user writes: their own prompts and processor call, left padding, `model.generate`."""
    processor.tokenizer.padding_side = "left"
    prompts = ["<image>" * len(episode.query.images) + episode.query.text + " =" for episode in queries]
    images = [list(episode.query.images) for episode in queries]
    inputs = processor(text=prompts, images=images, padding=True, return_tensors="pt")
    with lit_tv.apply_task_vector(model, vector, task=task) if vector else torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=1, do_sample=False)
    return processor.tokenizer.batch_decode(output[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)


def accuracy(answers: list[str], queries) -> float:
    metric = ExactMatch()
    metric.update(answers, [episode.query.answers for episode in queries])
    return float(metric.compute())


def hook_count(model) -> int:
    return sum(len(module._forward_pre_hooks) + len(module._forward_hooks) for module in model.modules())


@pytest.fixture(scope="module")
def toy():
    return AutoModelForImageTextToText.from_pretrained(TOY), AutoProcessor.from_pretrained(TOY)


@pytest.mark.slow
@pytest.mark.parametrize("config", sorted(RUNS))
def test_a_vector_in_a_plain_transformers_loop_matches_lit_tv_test(config, toy, workdir):
    tasks, extra, exported, fit = RUNS[config]
    cli = build_cli(CONFIGS / config, [f"--data.init_args.tasks=[{','.join(tasks)}]", *SMALL, *extra])
    if fit:
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    expected = cli.trainer.test(cli.model, datamodule=cli.datamodule, verbose=False)[0]
    model, processor = toy
    gains = []
    for task in tasks:
        queries = [episode for episode in cli.datamodule.test_queries() if episode.task == task]
        plain = accuracy(user_loop(model, processor, queries, None, task), queries)
        hooks = hook_count(model)  # after a first forward: transformers adds its own output-recording hooks then
        patched = accuracy(user_loop(model, processor, queries, workdir / exported, task), queries)
        assert patched == pytest.approx(expected[f"test/accuracy/{task}"], abs=1e-6), task
        assert hook_count(model) == hooks, "hooks left behind"
        gains.append(patched - plain)
    assert sum(gains) / len(gains) >= 0.2, gains  # the vectors really act: zero-shot is about 0.3


def test_the_layout_task_and_padding_are_checked(toy, tmp_path):
    model, processor = toy
    with pytest.raises(TaskVectorMismatchError, match="hidden_size"):
        with lit_tv.apply_task_vector(model, residual_file(tmp_path / "wrong.safetensors", model, ["colour"], 64, 8)):
            pass
    good = residual_file(tmp_path / "good.safetensors", model, ["colour", "shape"], 128, 16)
    with pytest.raises(ValueError, match="pass task="):
        with lit_tv.apply_task_vector(model, good):
            pass
    with pytest.raises(TaskVectorMismatchError, match="no vector for task 'position'"):
        with lit_tv.apply_task_vector(model, good, task="position"):
            pass
    processor.tokenizer.padding_side = "right"
    inputs = processor.tokenizer(["=", "red = blue ="], padding=True, return_tensors="pt")
    with pytest.raises(ValueError, match="right-padded"):
        with lit_tv.apply_task_vector(model, good, task="shape"):
            model(**inputs)
    processor.tokenizer.padding_side = "left"
