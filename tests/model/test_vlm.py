"""FrozenVLM loads every zoo architecture through the public path, builds prompts, and fails clearly."""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter

import huggingface_hub.constants
import pytest
import torch
from helpers import CHAT_TEMPLATE, TEMPLATE, ZOO_NAMES, colour_image, episodes_for
from PIL import Image
from torch import nn
from transformers import LlamaConfig, MambaConfig, MambaForCausalLM

from lit_tv.episodes import Episode, Example
from lit_tv.interventions.shared_prefix import fork_last_token
from lit_tv.methods.base import FrozenVLMMethod
from lit_tv.methods.mtv import MTV as MTVMethod
from lit_tv.model.families import family_of
from lit_tv.model.layout import UnsupportedModelError, discover_layout
from lit_tv.model.loading import ModelLoadError, VLMOptions, quantization_config, resolve_model_path
from lit_tv.model.vlm import FrozenVLM, load_image
from lit_tv.prompts import PromptTemplate, check_prompt_wrap
from lit_tv.shapes.datamodule import ShapesDataModule
from lit_tv.testing.zoo import build_llava_1_5
from lit_tv.vectors.file import layout_from_config


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_loads_frozen_with_its_layout(zoo_vlm, zoo_folder, name):
    vlm = zoo_vlm(name)
    assert not vlm.model.training
    assert not any(parameter.requires_grad for parameter in vlm.parameters())
    layout = vlm.layout
    assert (layout.num_layers, layout.num_heads, layout.hidden_size) == (2, 4, 64)
    assert layout.head_dims == ((16, 32) if name == "gemma4" else (16, 16))  # Gemma 4's global layer: wider heads
    sizes = {"num_layers": 2, "num_heads": 4, "head_dim": layout.head_dim, "hidden_size": 64}  # as files always had
    assert layout.signature() == ({**sizes, "head_dims": [16, 32]} if name == "gemma4" else sizes)
    assert layout_from_config(VLMOptions(str(zoo_folder(name)))) == layout.signature()  # what files are checked on
    assert len(layout.out_projections) == 2
    assert vlm.is_multimodal == (name != "llama")
    assert vlm.model.config.model_type == name  # docs/families.md matches zoo keys to model types


@pytest.mark.slow
@pytest.mark.parametrize("name", ZOO_NAMES)
def test_batches_are_left_padded_and_generation_returns_text(zoo_vlm, name):
    vlm = zoo_vlm(name)
    episodes = episodes_for(vlm)
    inputs = vlm.build_inputs(episodes, TEMPLATE)
    assert inputs["attention_mask"][:, -1].all()
    assert not inputs["attention_mask"][:, 0].all()
    assert vlm.last_logits(inputs).shape == (3, vlm.layout.lm_head.out_features)
    answers = vlm.generate(inputs, max_new_tokens=3)
    assert len(answers) == 3 and all(isinstance(answer, str) for answer in answers)


def test_answer_token_is_the_token_that_follows_the_prompt(zoo_vlm):
    vlm = zoo_vlm("llama")
    episode = Episode(query=Example("what colour?", answers=("purple",)))
    prompt = vlm.render(episode, TEMPLATE)
    full = vlm.tokenizer(prompt + " purple\n", add_special_tokens=False).input_ids
    assert vlm.answer_token_ids([episode], TEMPLATE).tolist() == [full[len(vlm.tokenizer(prompt).input_ids)]]


LOAD_CHECKS = (resolve_model_path, check_prompt_wrap, family_of, discover_layout)


def test_each_load_time_check_runs_once_per_model_load(zoo_folder, monkeypatch):
    """A method's model options, read for the layout (a task vector's or checkpoint's check), then loaded."""
    calls: Counter[str] = Counter()
    for check in LOAD_CHECKS:

        def counted(*args, check=check, **kwargs):
            calls[check.__name__] += 1
            return check(*args, **kwargs)

        for module in [module for name, module in sys.modules.items() if name.startswith("lit_tv")]:
            if getattr(module, check.__name__, None) is check:  # wherever it is imported
                monkeypatch.setattr(module, check.__name__, counted)
    options = VLMOptions(str(zoo_folder("llava")), prompt_wrap="USER: {prompt} ASSISTANT:")
    FrozenVLMMethod(options)
    layout_from_config(options)
    FrozenVLM.from_options(options)
    assert calls == {check.__name__: 1 for check in LOAD_CHECKS}


def test_plain_template_renders_shots_then_query():
    template = PromptTemplate(query="{images}Q:{text}\nA:", answer="{answer}\n\n", instruction="Guess.\n")
    episode = Episode(query=Example("x", images=("a.jpg",)), shots=(Example("y", answers=("z",)),))
    assert template.render(episode, "<image>") == "Guess.\nQ:y\nA:z\n\n<image>Q:x\nA:"


@pytest.mark.slow
@pytest.mark.parametrize("name", ZOO_NAMES)
def test_loads_in_bfloat16_and_casts_only_floating_inputs(zoo_folder, name):
    vlm = FrozenVLM.from_pretrained(zoo_folder(name), dtype="bfloat16")
    assert vlm.layout.lm_head.weight.dtype == vlm.dtype == torch.bfloat16
    inputs = vlm.build_inputs(episodes_for(vlm), TEMPLATE)
    floating = {key: value.dtype for key, value in inputs.items() if value.is_floating_point()}
    assert floating == ({"pixel_values": torch.bfloat16} if vlm.is_multimodal else {})
    assert inputs["input_ids"].dtype == torch.int64
    assert torch.isfinite(vlm.last_logits(inputs)).all()


def test_missing_path_is_named(tmp_path):
    missing = tmp_path / "no_such_model"
    with pytest.raises(ModelLoadError, match="model path does not exist: .*no_such_model"):
        FrozenVLM.from_pretrained(missing)


def test_unknown_hub_id_says_it_is_not_available(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read at import: no 20 s network wait
    with pytest.raises(ModelLoadError, match="not-a-real-org/not-a-model"):
        FrozenVLM.from_pretrained("not-a-real-org/not-a-model")


def test_model_without_attention_is_refused_with_its_class_name(tmp_path):
    config = MambaConfig(vocab_size=64, hidden_size=16, state_size=4, num_hidden_layers=1, intermediate_size=32)
    MambaForCausalLM(config).save_pretrained(tmp_path)
    with pytest.raises(UnsupportedModelError, match="MambaForCausalLM: .* no attention out-projection"):
        discover_layout(MambaForCausalLM.from_pretrained(tmp_path))


def test_model_without_decoder_is_refused():
    class Headless(nn.Module):
        config = LlamaConfig()

        def get_decoder(self) -> nn.Module:
            return nn.Identity()

    with pytest.raises(UnsupportedModelError, match="Headless: its decoder Identity has no list of layers"):
        discover_layout(Headless())


@pytest.mark.parametrize("name", ["llava", "idefics2", "idefics3", "qwen2_vl", "fuyu"])
def test_placeholder_count_must_match_images(zoo_vlm, name):
    vlm = zoo_vlm(name)
    no_placeholder = PromptTemplate(query="Q: {text}\nA:")
    episode = Episode(query=Example("colour?", images=(colour_image("red"),), answers=("red",)))
    with pytest.raises(ValueError, match="episode 0: prompt has 0 image placeholders .* but 1 images"):
        vlm.build_inputs([episode], no_placeholder)


def test_text_model_refuses_images(zoo_vlm):
    vlm = zoo_vlm("llama")
    with pytest.raises(ValueError, match="text-only model"):
        vlm.build_inputs([Episode(query=Example("x", images=(colour_image("red"),), answers=("red",)))], TEMPLATE)


def test_missing_image_file_is_named(zoo_vlm, tmp_path):
    vlm = zoo_vlm("llava")
    episode = Episode(query=Example("colour?", images=(tmp_path / "gone.jpg",), answers=("red",)))
    with pytest.raises(FileNotFoundError, match="gone.jpg"):
        vlm.build_inputs([episode], TEMPLATE)


def test_chat_template_wraps_shots_as_turns(zoo_folder):
    vlm = FrozenVLM.from_pretrained(zoo_folder("llava"))
    vlm.processor.chat_template = CHAT_TEMPLATE
    template = PromptTemplate(query="{text}", instruction="Name the colour. ", chat=True)
    episode = Episode(
        query=Example("this?", images=(colour_image("red"),), answers=("red",)),
        shots=(Example("that?", images=(colour_image("blue"),), answers=("blue",)),),
    )
    assert vlm.render(episode, template) == (
        "user:<image>Name the colour. that?\nassistant:blue\nuser:<image>this?\nassistant:"
    )
    inputs = vlm.build_inputs([episode], template)
    assert (inputs["input_ids"] == vlm.model.config.image_token_id).sum() == 2 * 16


def test_the_7b_benchmark_model_has_llava_1_5_7b_geometry():
    with torch.device("meta"):  # shapes only: no memory, no time
        model, processor = build_llava_1_5()
    layout = discover_layout(model)
    assert (layout.num_layers, layout.num_heads, layout.head_dim, layout.hidden_size) == (32, 32, 128, 4096)
    assert sum(parameter.numel() for parameter in model.parameters()) > 7e9
    assert processor.image_processor.crop_size == {"height": 336, "width": 336}


@pytest.mark.parametrize("name", ["qwen2_vl", "llava", "idefics3"])
def test_branching_a_text_prompt_after_an_image_prompt_equals_the_plain_forward(zoo_vlm, name):
    vlm = zoo_vlm(name)
    vlm.last_logits(vlm.build_inputs(episodes_for(vlm)[2:], TEMPLATE))  # leaves Qwen2-VL's M-RoPE offsets behind
    text = vlm.build_inputs([Episode(query=Example("colour of a red star?", answers=("red",)))], TEMPLATE)
    plain = vlm.last_logits(text)[0]
    branched = fork_last_token(vlm, text, 3, reuse=True).logits()
    torch.testing.assert_close(branched, plain.expand(3, -1), atol=1e-5, rtol=1e-5)


def test_processor_options_reach_a_processor_built_without_torchvision(zoo_folder):
    size = {"shortest_edge": 1024, "longest_edge": 4096}  # Qwen2-VL: its video processor needs torchvision
    vlm = FrozenVLM.from_pretrained(zoo_folder("qwen2_vl"), processor_kwargs={"size": size})
    assert vlm.processor.image_processor.size.longest_edge == 4096


def test_image_width_resizes_keeping_the_aspect_ratio_like_the_reference(tmp_path):
    colour_image("red", (40, 30)).save(tmp_path / "red.png")
    assert load_image(tmp_path / "red.png", width=224).size == (224, 168)
    assert load_image(colour_image("red", (40, 30))).size == (40, 30)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 40x30, shown turned a quarter: upright first, then resized
    colour_image("red", (40, 30)).save(tmp_path / "turned.jpg", exif=exif)
    assert load_image(tmp_path / "turned.jpg", width=224).size == (224, 298)


def test_image_width_reaches_the_prompts_images(zoo_folder):
    vlm = FrozenVLM.from_options(VLMOptions(str(zoo_folder("fuyu")), image_width=16), "cpu")
    episode = Episode(query=Example("colour?", images=(colour_image("red", (40, 30)),), answers=("red",)))
    # 40x30 at width 16 is 16x12: 2x2 Fuyu patches of 8 pixels instead of 4x3
    assert vlm.build_inputs([episode], TEMPLATE)["pixel_values"].shape[0] == 2 * 2
    with pytest.raises(ValueError, match="model.image_width must be a positive number of pixels or null, got 0"):
        VLMOptions(str(zoo_folder("fuyu")), image_width=0)


def test_nf4_is_refused_off_cuda_before_anything_loads(tmp_path):
    with pytest.raises(ValueError, match="model.quantization: 'nf4' runs on CUDA only .* on 'cpu'"):
        FrozenVLM.from_pretrained(tmp_path / "never_read", quantization="nf4")  # not even the path is checked


def test_nf4_without_bitsandbytes_is_refused_by_name(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None if name == "bitsandbytes" else True)
    with pytest.raises(ImportError, match="model.quantization: 'nf4' needs the bitsandbytes package"):
        quantization_config("nf4", "bfloat16", "cuda:0")


def test_nf4_config_is_4bit_normalfloat_computing_in_the_model_dtype(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: True)
    config = quantization_config("nf4", "bfloat16", "cuda:0")
    assert config.load_in_4bit and not config.load_in_8bit
    assert (config.bnb_4bit_quant_type, config.bnb_4bit_compute_dtype) == ("nf4", torch.bfloat16)
    assert config.bnb_4bit_use_double_quant
    assert quantization_config(None, "bfloat16", "cpu") is None
    with pytest.raises(ValueError, match="model.quantization must be 'nf4' or null, got 'int8'"):
        quantization_config("int8", "bfloat16", "cuda:0")


def test_a_prompt_and_its_new_tokens_beyond_the_context_are_refused():
    method = MTVMethod(max_new_tokens=2000)  # the toy's context is 1024 positions
    method.configure_model()
    data = ShapesDataModule(tasks=["colour"], support_size=1, train_size=1, test_size=1, shots=0)
    with pytest.raises(ValueError, match=r"\+ 2000 new tokens \(model.init_args.max_new_tokens\), longer than"):
        method.vlm.build_inputs(data.test_queries()[:1], data.template, method.max_new_tokens)
