"""The exact prompt text each benchmark renders for a 2-shot episode, against the MTV reference's format, the
stand-in models' wrapping and image budget as the paper configs set them, and the answer token REINFORCE
scores, per tokenizer family of the zoo, against the reference's target.

lit_tv's VQA default ends each shot's answer with a newline; the reference runs the shots together, and so do the
paper configs (`answer_format`), checked here on every VizWiz and OK-VQA config.
"""

from __future__ import annotations

import pytest
import yaml
from benchmark_fixtures import write_cross_modal, write_cub, write_flowers, write_image, write_okvqa, write_vizwiz

from lit_tv.data.cross_modal import CrossModalTasks
from lit_tv.data.two_way import CUB200, Flowers102
from lit_tv.data.vqa import OKVQA, VIZWIZ_INSTRUCTION, VizWiz
from lit_tv.episodes import Episode, Example
from lit_tv.model.loading import VLMOptions
from lit_tv.model.vlm import FrozenVLM
from lit_tv.paper.reproduction import CONFIGS
from lit_tv.prompts import PromptTemplate

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


@pytest.mark.parametrize(
    "config",
    sorted(
        str(path.relative_to(CONFIGS)) for folder in ("vizwiz", "okvqa") for path in (CONFIGS / folder).glob("*.yaml")
    ),
)
def test_the_vqa_paper_configs_run_the_shots_together_as_the_reference(tmp_path, config):
    """MTV/preprocess.py format_vizwiz / format_okvqa: nothing between one shot's answer and the next image."""
    data = yaml.safe_load((CONFIGS / config).read_text())["data"]["init_args"]
    benchmark = VizWiz if config.startswith("vizwiz") else OKVQA
    writer = write_vizwiz if config.startswith("vizwiz") else write_okvqa
    options = {"answer_format": data["answer_format"]} if "answer_format" in data else {}
    template = benchmark(str(writer(tmp_path)), **options, **SIZES).template
    text = template.render(two_shot(("What sport?", "tennis"), ("Who made it?", "apple"), "What animal?"), "<image>")
    space = " " if benchmark is VizWiz else ""  # OK-VQA: no space after "Answer:" either
    assert text.removeprefix(VIZWIZ_INSTRUCTION) == (
        f"<image>What sport? Answer:{space}tennis<image>Who made it? Answer:{space}apple<image>What animal? Answer:"
    )


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


def config_model(config: str) -> dict:
    """The model block of a paper config."""
    return yaml.safe_load((CONFIGS / config).read_text())["model"]["init_args"]["model"]


def test_the_llava_stand_in_runs_in_its_conversation_form_as_the_reference_runs_vila(tmp_path, zoo_folder):
    """The reference puts VILA's whole few-shot prompt into one user turn, each image on a line of its own."""
    block = config_model("vizwiz/icl_llava-1.5-7b.yaml")
    options = VLMOptions(
        str(zoo_folder("llava")), image_placeholder=block["image_placeholder"], prompt_wrap=block["prompt_wrap"]
    )
    vlm = FrozenVLM.from_options(options)
    template = VizWiz(str(write_vizwiz(tmp_path)), **SIZES).template
    text = vlm.render(two_shot(("What is this?", "soup"), ("Which colour?", "red"), "What is it?"), template)
    assert text == (
        "USER: " + VIZWIZ_INSTRUCTION + "<image>\nWhat is this? Answer: soup\n<image>\nWhich colour? Answer: red\n"
        "<image>\nWhat is it? Answer: ASSISTANT:"
    )


@pytest.mark.parametrize("wrap", ["USER: ASSISTANT:", "USER: {prompt} {role}:", "{prompt}{prompt}", "USER: {prompt"])
def test_a_prompt_wrap_must_hold_the_prompt_once(wrap):
    with pytest.raises(ValueError, match=r"model.prompt_wrap must hold '\{prompt\}' once and no other field"):
        VLMOptions("lit_tv/shapes-toy", prompt_wrap=wrap)


def test_a_prompt_wrap_and_the_chat_template_are_not_combined(zoo_folder):
    vlm = FrozenVLM.from_options(VLMOptions(str(zoo_folder("llava")), prompt_wrap="USER: {prompt} ASSISTANT:"))
    with pytest.raises(ValueError, match="prompt_wrap .* and the data's chat option both wrap the prompt"):
        vlm.render(Episode(query=Example("What is it?")), PromptTemplate(chat=True))


def test_qwen2_vl_sees_an_image_in_at_most_qwen_vl_s_256_tokens(tmp_path, zoo_folder):
    """max_pixels of the paper configs is Qwen-VL's 448 x 448 input: 256 tokens of 28 x 28 pixels. The zoo's
    Qwen2-VL makes a token of 16 x 16 pixels (8-pixel patches merged 2 x 2), so the same budget is 256 * 16 * 16."""
    max_pixels = config_model("vizwiz/mtv_qwen2-vl-7b.yaml")["processor_kwargs"]["max_pixels"]
    assert max_pixels == 256 * 28 * 28
    vlm = FrozenVLM.from_options(
        VLMOptions(str(zoo_folder("qwen2_vl")), processor_kwargs={"max_pixels": max_pixels // (28 * 28) * 16 * 16})
    )
    tokens = {}
    for size in ((640, 480), (2000, 1500), (1000, 300)):
        image = write_image(tmp_path / f"{size[0]}x{size[1]}.jpg", "red", size)
        inputs = vlm.build_inputs([Episode(query=Example("What is it?", (image,)))], PromptTemplate())
        tokens[size] = int((inputs["input_ids"] == vlm.tokenizer.convert_tokens_to_ids(vlm.image_token)).sum())
    # 640 x 480 is resized to 288 x 208 pixels, 18 x 13 tokens; 1000 x 300 to 464 x 128, 29 x 8
    assert tokens == {(640, 480): 234, (2000, 1500): 234, (1000, 300): 232}


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
