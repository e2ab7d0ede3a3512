"""Each zoo family's chat template: a chat episode renders in the family's own turn format through
`FrozenVLM.render`, the prompt becomes model inputs that generate, the template survives a save and a load, a
`chat: template` run goes end to end, and a model without a template is refused by name before its weights load."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from benchmark_fixtures import write_cross_modal
from helpers import FAST_ZOO, colour_image, paper_config_on_zoo
from tokenizers.processors import TemplateProcessing
from transformers import AutoModelForCausalLM, AutoModelForImageTextToText

from lit_tv.cli.command import main
from lit_tv.data.cross_modal import CrossModalTasks
from lit_tv.episodes import Episode, Example
from lit_tv.model.loading import VLMOptions
from lit_tv.model.vlm import FrozenVLM
from lit_tv.prompts import PromptTemplate
from lit_tv.testing.chat_templates import CHAT_FORMATS
from lit_tv.testing.zoo import ZOO

# Each family's user-turn opening and model-turn opening (what a prompt ends with), as its released checkpoints'
# chat templates write them: stated here apart from lit_tv/testing/chat_templates.py, which they check.
TURNS = {
    "llava": ("USER: ", "ASSISTANT:"),
    "llava_next": ("[INST] ", " [/INST]"),
    "llava_onevision": ("<|im_start|>user ", "<|im_start|>assistant\n"),
    "aya_vision": ("<|START_OF_TURN_TOKEN|><|USER_TOKEN|>", "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>"),
    "internvl": ("<|im_start|>user\n", "<|im_start|>assistant\n"),
    "idefics2": ("User:", "Assistant:"),
    "idefics3": ("User:", "Assistant:"),
    "smolvlm": ("User:", "Assistant:"),
    "gemma3": ("<start_of_turn>user\n", "<start_of_turn>model\n"),
    "gemma4": ("<|turn>user\n", "<|turn>model\n"),
    "qwen2_vl": ("<|im_start|>user\n", "<|im_start|>assistant\n"),
    "qwen2_5_vl": ("<|im_start|>user\n", "<|im_start|>assistant\n"),
    "qwen3_vl": ("<|im_start|>user\n", "<|im_start|>assistant\n"),
    "qwen3_vl_moe": ("<|im_start|>user\n", "<|im_start|>assistant\n"),
    "glm4v": ("<|user|>\n", "<|assistant|>\n"),
    "glm4v_moe": ("<|user|>\n", "<|assistant|>\n"),
    "mllama": ("<|start_header_id|>user<|end_header_id|>\n\n", "<|start_header_id|>assistant<|end_header_id|>\n\n"),
}
WITHOUT = ("fuyu", "llama", "paligemma")  # families whose checkpoints ship no chat template
CHAT = replace(CrossModalTasks.template, chat=True)  # `data.init_args.chat: template`
PLAIN = PromptTemplate(query="{images}Q:{text}\nA:", answer="{answer}\n\n")


def params(names) -> list:
    """`names` to parametrize over, those outside the fast loop's zoo marked slow."""
    return [name if name in FAST_ZOO else pytest.param(name, marks=pytest.mark.slow) for name in sorted(names)]


def one_shot() -> Episode:
    return Episode(
        query=Example("this?", images=(colour_image("red"),), answers=("red",)),
        shots=(Example("that?", images=(colour_image("blue"),), answers=("blue",)),),
    )


def image_token_count(vlm: FrozenVLM, inputs) -> int:
    config = vlm.model.config
    image_token = getattr(config, "image_token_id", None)
    image_token = getattr(config, "image_token_index", None) if image_token is None else image_token
    return int((inputs["input_ids"] == image_token).sum())


def test_every_family_but_the_plain_ones_has_a_chat_format():
    assert set(CHAT_FORMATS) == set(TURNS) == set(ZOO) - set(WITHOUT)


@pytest.mark.parametrize("name", params(TURNS))
def test_a_chat_episode_renders_in_the_family_s_turns_and_generates(zoo_vlm, name):
    vlm = zoo_vlm(name)
    user, model = TURNS[name]
    text = vlm.render(one_shot(), CHAT)
    position = 0
    for piece in (user, vlm.image_token, "Q:that?", model, "blue", user, vlm.image_token, "Q:this?"):
        found = text.find(piece, position)
        assert found >= 0, f"{piece!r} missing, or out of order, after position {position} of {text!r}"
        position = found + len(piece)
    assert text.endswith(model) and text.count(vlm.image_token) == 2, text

    inputs = vlm.build_inputs([one_shot()], CHAT)
    ids = inputs["input_ids"][0].tolist()
    for token in CHAT_FORMATS[name].tokens:  # each of the format's special tokens is one token of the tokenizer
        assert vlm.tokenizer(token, add_special_tokens=False).input_ids == [vlm.tokenizer.convert_tokens_to_ids(token)]
        assert vlm.tokenizer.convert_tokens_to_ids(token) in ids, token
    expanded = image_token_count(vlm, inputs)
    assert expanded >= 2 and expanded == image_token_count(vlm, vlm.build_inputs([one_shot()], PLAIN))
    assert torch.isfinite(vlm.last_logits(inputs)).all()
    assert len(vlm.generate(inputs, max_new_tokens=1)) == 1


@pytest.mark.parametrize("name", params(name for name, chat in CHAT_FORMATS.items() if chat.bos))
def test_a_template_that_writes_bos_gets_no_second_one_from_a_tokenizer_that_adds_it(zoo_folder, name):
    vlm = FrozenVLM.from_pretrained(zoo_folder(name))  # a copy of its own: its tokenizer changes below
    tokenizer, bos = vlm.tokenizer, vlm.tokenizer.bos_token
    # as the family's real tokenizer (the zoo's add no BOS)
    tokenizer.backend_tokenizer.post_processor = TemplateProcessing(
        single=f"{bos} $A", special_tokens=[(bos, tokenizer.bos_token_id)]
    )
    assert tokenizer("x").input_ids[0] == tokenizer.bos_token_id
    chat = vlm.build_inputs([one_shot()], CHAT)["input_ids"][0].tolist()
    assert chat[0] == tokenizer.bos_token_id and chat.count(tokenizer.bos_token_id) == 1, chat
    plain = vlm.build_inputs([one_shot()], PLAIN)["input_ids"][0].tolist()
    assert plain[0] == tokenizer.bos_token_id  # a plain prompt still gets the tokenizer's


@pytest.mark.parametrize("name", params(ZOO))
def test_the_chat_template_survives_saving_and_loading(zoo_folder, name):
    torch.manual_seed(0)
    _, built = ZOO[name]()
    loaded = FrozenVLM.from_pretrained(zoo_folder(name)).processor
    expected = CHAT_FORMATS[name].jinja() if name in CHAT_FORMATS else None
    assert getattr(built, "chat_template", None) == expected
    assert getattr(loaded, "chat_template", None) == expected


def no_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading any model's weights fails the test from here on."""

    def loads_weights(*args, **kwargs):
        raise AssertionError("the weights loaded before the chat template was checked")

    for auto_class in (AutoModelForCausalLM, AutoModelForImageTextToText):
        monkeypatch.setattr(auto_class, "from_pretrained", loads_weights)


@pytest.mark.parametrize("name", params(WITHOUT))
def test_chat_on_a_model_without_a_template_is_refused_by_name_before_its_weights_load(zoo_folder, name, monkeypatch):
    folder = zoo_folder(name)
    vlm = FrozenVLM.from_pretrained(folder)
    refusal = rf"data.init_args.chat: template .* model.name {folder} has none"
    with pytest.raises(ValueError, match=refusal):
        vlm.render(one_shot(), CHAT)
    no_weights(monkeypatch)
    with pytest.raises(ValueError, match=refusal):
        FrozenVLM.from_options(VLMOptions(str(folder)), chat=True)


def test_a_chat_run_on_a_model_without_a_template_stops_before_its_weights_load(zoo_folder, workdir, monkeypatch):
    root = write_cross_modal(workdir / "data", tasks=("food-color",))
    run = [
        *paper_config_on_zoo("cross_modal/icl_idefics2-8b.yaml", zoo_folder("llama")),
        *("--model.init_args.model.quantization=null", "--model.init_args.model.processor_kwargs={}"),
        *("--data.init_args.root", str(root), "--data.init_args.chat=template", "--trainer.accelerator=cpu"),
        *(
            "--data.init_args.query_modality=text",
            "--data.init_args.tasks=[food-color]",
            "--data.init_args.test_shots=2",
        ),
    ]
    no_weights(monkeypatch)
    with pytest.raises(SystemExit, match="data.init_args.chat: template renders prompts in the model's own chat"):
        main(["test", *run])


@pytest.mark.slow  # two ICL test runs
@pytest.mark.parametrize(("name", "config"), [("qwen2_vl", "icl_qwen2-vl-7b"), ("idefics2", "icl_idefics2-8b")])
def test_a_chat_template_run_answers_every_query_in_the_family_s_turns(zoo_folder, workdir, monkeypatch, name, config):
    rendered: list[str] = []
    render = FrozenVLM.render

    def recording(self, episode, template):
        rendered.append(render(self, episode, template))
        return rendered[-1]

    monkeypatch.setattr(FrozenVLM, "render", recording)
    root = write_cross_modal(workdir / "data", tasks=("food-color",))
    main(
        [
            "test",
            *paper_config_on_zoo(f"cross_modal/{config}.yaml", zoo_folder(name)),
            *("--model.init_args.model.quantization=null", "--data.init_args.seeds=[1]"),
            *("--data.init_args.root", str(root), "--data.init_args.chat=template", "--trainer.accelerator=cpu"),
            *("--data.init_args.tasks=[food-color]", "--data.init_args.test_shots=2"),
        ]
    )
    user, model = TURNS[name]
    assert len(rendered) == 4  # the test file's 4 queries
    assert all(text.count(user) == 3 and text.endswith(model) for text in rendered), rendered
