"""The exact prompt text each benchmark renders for a 2-shot episode, against the MTV reference's format, and
the answer token REINFORCE scores, per tokenizer family of the zoo, against the reference's target.

The one remaining difference, the newline that ends each shot's answer (the reference runs VQA shots
together), is listed in lit_tv/reproduction.py.
"""

from __future__ import annotations

import pytest
from benchmark_fixtures import write_cross_modal, write_cub, write_flowers, write_okvqa, write_vizwiz

from lit_tv.data.cross_modal import CrossModalTasks
from lit_tv.data.two_way import CUB200, Flowers102
from lit_tv.data.vqa import OKVQA, VIZWIZ_INSTRUCTION, VizWiz
from lit_tv.episodes import Episode, Example

SIZES = {"train_size": 2, "support_size": 1}


def two_shot(first: tuple[str, str], second: tuple[str, str], query: str) -> Episode:
    def example(text: str, answer: str = "") -> Example:
        return Example(text, ("image.jpg",), (answer,) if answer else ())

    return Episode(query=example(query), shots=(example(*first), example(*second)))


def test_vizwiz_prompt_is_the_references(tmp_path):
    template = VizWiz(str(write_vizwiz(tmp_path)), **SIZES).template
    text = template.render(two_shot(("What is this?", "soup"), ("Which colour?", "red"), "What is it?"), "<image>")
    assert VIZWIZ_INSTRUCTION == (
        "First carefully understand the given examples. \nThen use the given image and "
        "answer the question in the same way as the examples. \nIf the question can not be "
        "answered, respond unanswerable. "
    )
    assert text == (
        VIZWIZ_INSTRUCTION + "<image>What is this? Answer: soup\n<image>Which colour? Answer: red\n"
        "<image>What is it? Answer:"
    )


def test_okvqa_prompt_is_the_references(tmp_path):
    template = OKVQA(str(write_okvqa(tmp_path)), **SIZES).template
    text = template.render(two_shot(("What sport?", "tennis"), ("Who made it?", "apple"), "What animal?"), "<image>")
    assert text == "<image>What sport? Answer:tennis\n<image>Who made it? Answer:apple\n<image>What animal? Answer:"


def test_two_way_prompts_are_the_references(tmp_path):
    flowers = Flowers102(str(write_flowers(tmp_path / "flowers")), **SIZES)
    cub = CUB200(str(write_cub(tmp_path / "cub")), **SIZES)
    for data, kind in ((flowers, "flower"), (cub, "bird")):
        question = (
            f"What is the type of {kind} in the image? A.rose B.lily\n"
            "Answer with the option's letter from the given choice directly."
        )
        text = data.template.render(two_shot((question, "A"), (question, "B"), question), "<image>")
        assert text == (f"<image>{question} Answer: A\n<image>{question} Answer: B\n<image>{question} Answer:")


def test_cross_modal_prompt_is_the_references(tmp_path):
    template = CrossModalTasks(
        str(write_cross_modal(tmp_path, tasks=("country-capital",))), tasks=["country-capital"]
    ).template
    shots = (Example("France", (), ("Paris",)), Example("Japan", (), ("Tokyo",)))
    text = template.render(Episode(query=Example("", ("image.jpg",)), shots=shots), "<image>")
    assert text == "Q:France\nA:Paris\n\nQ:Japan\nA:Tokyo\n\nQ:<image>\nA:"


# The reference's REINFORCE target: " " + answer's first token for byte-level BPE (Qwen), the bare answer's
# word-start piece for SentencePiece (Idefics2). Hand-read from the zoo's two tokenizer families.
TARGET_TOKENS = {
    "llava": {"red": "Ġre", "yes": "Ġy", "blue": "Ġblu"},  # byte-level BPE, as Qwen's
    "fuyu": {"red": "▁red", "yes": "▁yes", "blue": "▁blue"},  # SentencePiece-style, as Idefics2's
}


@pytest.mark.parametrize("family", sorted(TARGET_TOKENS))
def test_okvqa_scores_the_reference_s_target_token(tmp_path, zoo_vlm, family):
    vlm = zoo_vlm(family)
    template = OKVQA(str(write_okvqa(tmp_path)), **SIZES).template
    for answer, token in TARGET_TOKENS[family].items():
        query = Episode(query=Example("What colour?", ("image.jpg",), (answer,)))
        scored = vlm.answer_token_ids([query], template).tolist()
        assert vlm.tokenizer.convert_ids_to_tokens(scored) == [token]


def test_the_continuation_target_stays_an_option(tmp_path, zoo_vlm):
    """OK-VQA's ``Answer:{a}`` glues the answer to the colon: its continuation token is not the word start."""
    vlm = zoo_vlm("llava")
    template = OKVQA(str(write_okvqa(tmp_path)), target_token="continuation", **SIZES).template
    query = Episode(query=Example("What colour?", ("image.jpg",), ("red",)))
    assert vlm.tokenizer.convert_ids_to_tokens(vlm.answer_token_ids([query], template).tolist()) == ["re"]
