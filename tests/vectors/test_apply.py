"""A saved task vector applied to a plain transformers model in a user's own loop gives `lit-tv test`'s answers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import SHAPES_CONFIGS, residual_file, sized
from transformers import AutoModelForImageTextToText, AutoProcessor

import lit_tv
from lit_tv.cli.app import build_cli
from lit_tv.episodes import Episode
from lit_tv.metrics import FirstTokenMatch
from lit_tv.model.loading import BUILTIN_MODELS
from lit_tv.vectors.file import TaskVectorMismatchError
from lit_tv.vectors.kinds import load

CONFIGS = SHAPES_CONFIGS
TOY = BUILTIN_MODELS["lit_tv/shapes-toy"]
SMALL = sized(support=24, test=30)
# Three new tokens, so that `every_token` (MTV's reference and the FV paper configs) patches generated tokens too: a
# file applied with another policy than the one its run was scored with answers otherwise.
NEW_TOKENS = 3
# config -> (tasks, extra options, the file its run exports, whether it is fitted first); MTV is one task per vector
RUNS = {
    "mtv.yaml": (
        ["colour"],
        ["--data.init_args.train_size=40", "--trainer.max_steps=10", "--model.init_args.policy=every_token"],
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
        ["--data.init_args.support_size=60", "--model.init_args.policy=every_token"],
        "logs/shapes_function_vectors/function_vectors.safetensors",
        False,
    ),
}


def user_loop(model, processor, queries, vector: Path | None, task: str, **options) -> list[str]:
    """What a user writes: their own prompts and processor call, left padding, `model.generate`."""
    processor.tokenizer.padding_side = "left"
    prompts = ["<image>" * len(episode.query.images) + episode.query.text + " =" for episode in queries]
    images = [list(episode.query.images) for episode in queries]
    inputs = processor(text=prompts, images=images, padding=True, return_tensors="pt")
    with lit_tv.apply_task_vector(model, vector, task=task, **options) if vector else torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=NEW_TOKENS, min_new_tokens=1, do_sample=False)
    answers = processor.tokenizer.batch_decode(output[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    return [answer.strip() for answer in answers]


def record_answers(method, monkeypatch) -> list[tuple[Episode, str]]:
    """Every query `lit-tv test` answers, with its answer, as the run scored it."""
    scored: list[tuple[Episode, str]] = []
    answer = method.answer

    def recording(batch: list[Episode]) -> list[str]:
        answers = answer(batch)
        scored.extend(zip(batch, answers, strict=True))
        return answers

    monkeypatch.setattr(method, "answer", recording)
    return scored


def accuracy(answers: list[str], queries) -> float:
    """The share of answers that start with their word (the tokens generated after it are whatever follows)."""
    metric = FirstTokenMatch()
    metric.update(answers, [episode.query.answers for episode in queries])
    return float(metric.compute())


def hook_count(model) -> int:
    return sum(len(module._forward_pre_hooks) + len(module._forward_hooks) for module in model.modules())


@pytest.fixture(scope="module")
def toy():
    return AutoModelForImageTextToText.from_pretrained(TOY), AutoProcessor.from_pretrained(TOY)


@pytest.mark.slow
@pytest.mark.parametrize("config", sorted(RUNS))
def test_a_vector_in_a_plain_transformers_loop_answers_as_lit_tv_test(config, toy, workdir, monkeypatch):
    tasks, extra, exported, fit = RUNS[config]
    options = [f"--data.init_args.tasks=[{','.join(tasks)}]", f"--model.init_args.max_new_tokens={NEW_TOKENS}"]
    cli = build_cli(CONFIGS / config, [*options, *SMALL, *extra])
    if fit:
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    scored = record_answers(cli.model, monkeypatch)
    cli.trainer.test(cli.model, datamodule=cli.datamodule, verbose=False)
    model, processor = toy
    vector = workdir / exported
    policy = load(vector).policy
    assert policy == ("every_token" if "--model.init_args.policy=every_token" in extra else "prompt")
    gains, other_policy_differs = [], False
    for task in tasks:
        queries = [episode for episode, _ in scored if episode.task == task]
        plain = user_loop(model, processor, queries, None, task)
        hooks = hook_count(model)  # after a first forward: transformers adds its own output-recording hooks then
        patched = user_loop(model, processor, queries, vector, task)
        assert patched == [answer for episode, answer in scored if episode.task == task], task
        assert hook_count(model) == hooks, "hooks left behind"
        gains.append(accuracy(patched, queries) - accuracy(plain, queries))
        other = "prompt" if policy == "every_token" else "every_token"
        other_policy_differs |= user_loop(model, processor, queries, vector, task, policy=other) != patched
    assert sum(gains) / len(gains) >= 0.2, gains  # the vectors really act: zero-shot is about 0.3
    assert other_policy_differs, "the recorded policy must matter here, or the equality above proves nothing of it"


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
