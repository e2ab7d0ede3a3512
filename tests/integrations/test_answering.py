"""The answerer a harness calls: prompts and new tokens from the vector file by default (another choice explicit and
warned about, an older file's unknowns said), answers patched as the file says, and a continuation's loss."""

from __future__ import annotations

import random
from dataclasses import asdict

import pytest
import torch
from helpers import mtv_vector_file

from lit_tv.episodes import Episode, Example
from lit_tv.integrations.answering import VectorAnswerer
from lit_tv.prompts import PromptTemplate
from lit_tv.shapes.toy import SHAPES_TEMPLATE
from lit_tv.shapes.world import draw, objects

OTHER = PromptTemplate(query="Q: {images}{text}", answer=" {answer}\n")
RECORDED = {
    "prompt": asdict(SHAPES_TEMPLATE),
    "prompt_wrap": "{prompt}",
    "image_placeholder": "<image>",
    "max_new_tokens": 1,
}


def shape_images(count: int) -> list:
    rng = random.Random(0)
    return [[draw(obj, rng)] for obj in objects("heldout")[:count]]


def test_the_prompt_and_new_tokens_come_from_the_file_and_another_choice_is_warned_about(tmp_path):
    path = mtv_vector_file(tmp_path, "v.safetensors", metadata={"tasks": ["colour"], **RECORDED})
    answerer = VectorAnswerer.load("lit_tv/shapes-toy", str(path), template=OTHER)
    assert answerer.template == SHAPES_TEMPLATE and answerer.max_new_tokens == 1
    with pytest.warns(UserWarning, match="was scored with max_new_tokens=1; 3 given is used"):
        assert VectorAnswerer.load("lit_tv/shapes-toy", str(path), template=OTHER, max_new_tokens=3).max_new_tokens == 3


def test_an_older_file_says_what_it_does_not_record_and_the_callers_prompt_serves(tmp_path):
    path = mtv_vector_file(tmp_path, "old.safetensors", metadata={"tasks": ["colour"]})
    with pytest.warns(UserWarning, match="does not record its prompt, prompt_wrap, image_placeholder, max_new_tokens"):
        answerer = VectorAnswerer.load("lit_tv/shapes-toy", str(path), template=OTHER)
    assert answerer.template == OTHER


def test_answers_are_the_models_own_without_a_vector_and_change_when_one_is_patched(tmp_path):
    images = shape_images(6)
    plain = VectorAnswerer.load("lit_tv/shapes-toy", template=SHAPES_TEMPLATE, max_new_tokens=1)
    inputs = plain.vlm.build_inputs([Episode(Example("", tuple(row))) for row in images], SHAPES_TEMPLATE, 1)
    assert plain.answer([""] * 6, images) == plain.vlm.generate(inputs, max_new_tokens=1)
    layout = plain.vlm.layout.signature()
    noise = torch.randn(layout["num_layers"], layout["num_heads"], layout["head_dim"]) * 5
    path = mtv_vector_file(
        tmp_path, "v.safetensors", metadata={"tasks": ["colour"], **RECORDED}, mean_activations=noise
    )
    patched = VectorAnswerer.load("lit_tv/shapes-toy", str(path), template=OTHER)
    assert patched.answer([""] * 6, images) != plain.answer([""] * 6, images)


def test_a_continuations_loss_is_its_negative_log_likelihood_after_the_prompt():
    answerer = VectorAnswerer.load("lit_tv/shapes-toy", template=SHAPES_TEMPLATE, max_new_tokens=1)
    images = shape_images(1)[0]
    greedy = answerer.answer([""], [images])[0]
    episode = [Episode(Example("", tuple(images)))]
    prompt = answerer.vlm.build_inputs(episode, SHAPES_TEMPLATE)
    whole = PromptTemplate(query=SHAPES_TEMPLATE.query + f" {greedy} red", answer=SHAPES_TEMPLATE.answer)
    full = answerer.vlm.build_inputs(episode, whole)
    start = prompt["input_ids"].shape[1]
    with torch.no_grad():
        log_probs = torch.log_softmax(answerer.vlm.model(**full).logits[0].float(), dim=-1)
    targets = full["input_ids"][0, start:]
    expected = -sum(float(log_probs[start - 1 + i, token]) for i, token in enumerate(targets.tolist()))
    loss, is_greedy = answerer.loss("", images, f" {greedy} red")
    assert len(targets) == 2 and loss == pytest.approx(expected, rel=1e-4)
    assert answerer.loss("", images, f" {greedy}")[1] and not is_greedy  # "red" after the answer is not greedy
