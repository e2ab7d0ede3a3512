"""Fuyu prompts: images where their placeholders stand, the prompt ending at the text's last token (Mantis' layout)."""

from __future__ import annotations

import pytest
import torch
from helpers import colour_image

from lit_tv.episodes import Episode, Example
from lit_tv.model.fuyu import FuyuLayout, build_fuyu_inputs
from lit_tv.prompts import PromptTemplate

CROSS_MODAL = PromptTemplate(query="Q:{images}{text}\nA:", answer="{answer}\n\n")  # the reference's format
RED, BLUE = colour_image("red", (40, 30)), colour_image("blue", (20, 50))


def image_query(*shots: Example) -> Episode:
    return Episode(query=Example("", images=(RED,), answers=("red",)), shots=shots)


def image_shot(image, answer: str) -> Example:
    return Example("", images=(image,), answers=(answer,))


def ids_of(vlm, text: str) -> list[int]:
    return vlm.tokenizer(text, add_special_tokens=False).input_ids


def image_ids(vlm, columns: int, rows: int) -> list[int]:
    """|IMAGE|, rows of image tokens each ended by an image-newline, |ENDOFIMAGE|."""
    start, end = (vlm.tokenizer.convert_tokens_to_ids(marker) for marker in ("|IMAGE|", "|ENDOFIMAGE|"))
    processor = vlm.processor
    return [start, *([processor.image_token_id] * columns + [processor.image_newline_id]) * rows, end]


def test_an_image_query_ends_at_the_colon_with_the_image_after_q(zoo_vlm):
    vlm = zoo_vlm("fuyu")
    inputs = vlm.build_inputs([image_query()], CROSS_MODAL)
    ids = inputs["input_ids"][0].tolist()
    assert ids[-1] == vlm.tokenizer.convert_tokens_to_ids(":")
    assert vlm.tokenizer.convert_tokens_to_ids("<0x04>") not in ids
    bos = vlm.tokenizer.convert_tokens_to_ids("<s>")
    # 40x30 fits the zoo's 32x32 canvas as 32x24: 4 columns x 3 rows of 8-pixel patches
    expected = [bos, *ids_of(vlm, "Q:image 0: "), *image_ids(vlm, 4, 3), bos, *ids_of(vlm, "\nA:")]
    assert ids == expected
    assert inputs["pixel_values"].shape == (4 * 3, 3 * 8 * 8)


def test_image_shots_each_stand_at_their_placeholder_in_prompt_order(zoo_vlm):
    vlm = zoo_vlm("fuyu")
    episode = image_query(image_shot(BLUE, "blue"))
    inputs = vlm.build_inputs([episode], CROSS_MODAL)
    ids = inputs["input_ids"][0].tolist()
    bos = vlm.tokenizer.convert_tokens_to_ids("<s>")
    # 20x50 fits 32x32 as 12x32: 2 columns x 4 rows
    expected = [
        bos,
        *ids_of(vlm, "Q:image 0: "),
        *image_ids(vlm, 2, 4),
        bos,
        *ids_of(vlm, "\nA:blue\n\nQ:image 1: "),
        *image_ids(vlm, 4, 3),
        bos,
        *ids_of(vlm, "\nA:"),
    ]
    assert ids == expected
    blue_alone = vlm.build_inputs([Episode(query=image_shot(BLUE, "blue"))], CROSS_MODAL)["pixel_values"]
    red_alone = vlm.build_inputs([image_query()], CROSS_MODAL)["pixel_values"]
    torch.testing.assert_close(inputs["pixel_values"], torch.cat([blue_alone, red_alone]), atol=0, rtol=0)


def test_text_prompts_get_no_special_tokens_like_mantis_processor(zoo_vlm):
    vlm = zoo_vlm("fuyu")
    inputs = vlm.build_inputs([Episode(query=Example("France", answers=("Paris",)))], CROSS_MODAL)
    assert inputs["input_ids"][0].tolist() == ids_of(vlm, "Q:France\nA:")
    assert "pixel_values" not in inputs


def test_without_mantis_markers_the_inputs_are_hf_processors_minus_begin_of_answer(zoo_vlm):
    vlm = zoo_vlm("fuyu")
    ours = build_fuyu_inputs(vlm.processor, ["<image>Q: what?\nA:"], [[RED]], layout=FuyuLayout())
    hf = vlm.processor(text=["Q: what?\nA:"], images=[RED], return_tensors="pt", return_legacy_image_output=False)
    assert hf["input_ids"][0, -1] == vlm.tokenizer.convert_tokens_to_ids("<0x04>")
    assert ours["input_ids"].tolist() == hf["input_ids"][:, :-1].tolist()
    torch.testing.assert_close(ours["pixel_values"], hf["pixel_values"], atol=0, rtol=0)


def mixed_batch() -> list[Episode]:
    """Rows of different lengths (left padding), with zero, one and two images."""
    return [
        image_query(image_shot(BLUE, "blue")),
        Episode(query=Example("France", answers=("Paris",))),
        image_query(),
        Episode(query=image_shot(BLUE, "blue"), shots=(Example("a sky", answers=("blue",)),)),
    ]


@pytest.mark.slow
def test_a_left_padded_batch_gives_each_rows_own_last_logits_and_answers(zoo_vlm):
    vlm = zoo_vlm("fuyu")
    episodes = mixed_batch()
    inputs = vlm.build_inputs(episodes, CROSS_MODAL)
    assert not inputs["attention_mask"][:, 0].all()
    batched = vlm.last_logits(inputs)
    single = torch.cat([vlm.last_logits(vlm.build_inputs([episode], CROSS_MODAL)) for episode in episodes])
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=1e-5)
    answers = vlm.generate(inputs, max_new_tokens=4)
    assert answers == [
        vlm.generate(vlm.build_inputs([episode], CROSS_MODAL), max_new_tokens=4)[0] for episode in episodes
    ]
    assert any(answers), "greedy decoding should produce text"


def test_two_placeholders_for_one_image_are_refused(zoo_vlm):
    vlm = zoo_vlm("fuyu")
    template = PromptTemplate(query="Q:<image><image>{text}\nA:")
    with pytest.raises(ValueError, match="prompt has 2 image placeholders .* but 1 images"):
        vlm.build_inputs([image_query()], template)
