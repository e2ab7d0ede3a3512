"""Which frozen model to load and how (`VLMOptions`), checked once, and the loading itself."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForImageTextToText,
    AutoProcessor,
    AutoTokenizer,
    BitsAndBytesConfig,
    PretrainedConfig,
    PreTrainedModel,
)
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING, MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING
from transformers.utils import (
    cached_file,
    is_flash_attn_2_available,
    is_flash_attn_3_available,
    is_flash_attn_4_available,
    is_torch_flex_attn_available,
)

from lit_tv.model.compat import load_processor_without_video
from lit_tv.prompts import check_prompt_wrap


class ModelLoadError(OSError):
    """A model id or path that cannot be loaded, with the reason and what to check."""


# the run option that renders every prompt in the model's own chat template
CHAT_OPTION = "data.init_args.chat"


def check_chat_template(processor: Any, model_name: str) -> None:
    """A chat prompt is rendered by the processor's (a text-only LM's tokenizer's) chat template: a model that ships
    none is refused by name, before its weights load, not by transformers' error at the first prompt."""
    if getattr(processor, "chat_template", None) is None:
        raise ValueError(
            f"{CHAT_OPTION}: template renders prompts in the model's own chat template, but model.name {model_name} "
            f"has none (its processor or tokenizer saved no chat_template; e.g. a base or prefix LM prompted "
            f"plainly): use {CHAT_OPTION}: none (or roles), or a model that ships a chat template"
        )


DTYPES = ("auto", "float32", "bfloat16", "float16")
# transformers' attention implementations that need a package (and a GPU) of their own
ATTENTION_PACKAGES = {
    "flash_attention_2": is_flash_attn_2_available,
    "flash_attention_3": is_flash_attn_3_available,
    "flash_attention_4": is_flash_attn_4_available,
    "flex_attention": is_torch_flex_attn_available,
}


def quantization_config(quantization: str | None, dtype: str, device: str) -> BitsAndBytesConfig | None:
    """transformers' config for `quantization`; refused where it cannot run, before any weights load.

    ``nf4``: 4-bit NormalFloat weights with double quantisation (bitsandbytes, CUDA only), computing in `dtype`.
    """
    if quantization is None:
        return None
    if quantization != "nf4":
        raise ValueError(f"model.quantization must be 'nf4' or null, got {quantization!r}")
    if torch.device(device).type != "cuda" or not torch.cuda.is_available():
        raise ValueError(
            f"model.quantization: 'nf4' runs on CUDA only (bitsandbytes 4-bit), but the model would load "
            f"on {device!r} (CUDA available: {torch.cuda.is_available()}); set model.quantization: null"
        )
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ImportError(
            "model.quantization: 'nf4' needs the bitsandbytes package (pip install bitsandbytes), "
            "which is not installed"
        )
    if dtype == "auto":
        raise ValueError("model.quantization: 'nf4' computes in model.dtype: set it to bfloat16, float16 or float32")
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=getattr(torch, dtype),
    )


DEVICE_MAP_STRATEGIES = ("auto", "balanced", "balanced_low_0", "sequential")
DeviceMap = str | dict[str, int | str]


def check_dispatch(
    device_map: DeviceMap | None, max_memory: dict[int | str, int | str] | None, offload_folder: str | None
) -> None:
    """Refuse, before any weights load, memory limits or an offload folder without a device map, an
    unknown strategy, disk offload without a folder, or accelerate missing."""
    if device_map is None:
        if max_memory is not None or offload_folder is not None:
            raise ValueError(
                "model.max_memory / model.offload_folder take effect only with model.device_map "
                f"(one of {DEVICE_MAP_STRATEGIES} or {{module name: device}})"
            )
        return
    if isinstance(device_map, str) and device_map not in DEVICE_MAP_STRATEGIES:
        raise ValueError(
            f"model.device_map must be one of {DEVICE_MAP_STRATEGIES} or a mapping of module names to "
            f"devices (0, 'cuda:1', 'cpu', 'disk'), got {device_map!r}"
        )
    if isinstance(device_map, dict) and "disk" in device_map.values() and offload_folder is None:
        raise ValueError("model.device_map puts modules on 'disk': set model.offload_folder to a folder for them")
    if importlib.util.find_spec("accelerate") is None:
        raise ImportError(
            "model.device_map needs the accelerate package (pip install accelerate), which is not installed"
        )


def dispatched_device(model: nn.Module) -> torch.device | None:
    """Where a dispatched model takes its inputs: its first accelerator, else the CPU; None if not dispatched.

    Offloaded weights sit on the meta device, so a parameter's device says nothing; accelerate's hooks
    move every module's inputs to where it runs and the outputs back to the inputs' device.
    """
    placement = getattr(model, "hf_device_map", None)
    if not placement or len(set(placement.values())) == 1 and next(iter(placement.values())) != "disk":
        return None
    accelerators = [device for device in placement.values() if device not in ("cpu", "disk")]
    return torch.device(accelerators[0]) if accelerators else torch.device("cpu")


# Models shipped inside the package, addressed like hub ids.
BUILTIN_MODELS = {
    "lit_tv/shapes-toy": Path(__file__).parents[1] / "shapes" / "checkpoint",
    "lit_tv/shapes-toy-many-shot": Path(__file__).parents[1] / "shapes" / "checkpoint_many_shot",
}


def resolve_model_path(name_or_path: str | Path) -> str:
    """A built-in name, an existing local folder, or a hub id; a missing local path is refused here."""
    name = str(name_or_path)
    if name in BUILTIN_MODELS:
        return str(BUILTIN_MODELS[name])
    local = Path(name).expanduser()
    if local.exists():
        return str(local)
    if name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name:
        raise ModelLoadError(f"model path does not exist: {name}")
    return name


@dataclass(frozen=True)
class VLMOptions:
    """Which frozen model to load and how (`FrozenVLM.from_options`), as one config block, checked once.

    name: a hub id, a local folder, or ``lit_tv/shapes-toy``; `revision` pins a hub id to a commit (or branch,
    tag), as the papers' code pins its models, so a later upload to the hub cannot change the weights, processor
    or tokenizer a run loads. Remote code runs only with `trust_remote_code`. `processor_kwargs` reach
    `AutoProcessor.from_pretrained` (e.g. ``{"do_image_splitting": False}``, or Qwen2-VL's
    ``{"max_pixels": 200704}``). `image_placeholder` replaces the
    model's own per image (LLaVA-1.5's conversation form: ``"<image>\\n"``); `prompt_wrap` puts every plain
    prompt into the model's conversation form, ``{prompt}`` standing for it (``"USER: {prompt} ASSISTANT:"``).
    `image_width` resizes every image to that width (aspect kept)
    before the processor; `quantization: nf4` loads the weights in 4-bit NF4 (bitsandbytes, CUDA).
    `device_map` (``auto`` or module name -> device), `max_memory` (device -> size, e.g.
    ``{0: 20GiB, cpu: 60GiB}``) and `offload_folder` spread a model larger than one device over GPUs,
    CPU and disk (accelerate); the trainer's device is then ignored.
    """

    name: str = "lit_tv/shapes-toy"
    revision: str | None = None
    dtype: str = "float32"
    attn_implementation: str | None = None
    trust_remote_code: bool = False
    image_placeholder: str | None = None
    prompt_wrap: str | None = None
    processor_kwargs: dict[str, Any] = field(default_factory=dict)
    image_width: int | None = None
    quantization: Literal["nf4"] | None = None
    device_map: DeviceMap | None = None
    max_memory: dict[int | str, int | str] | None = None
    offload_folder: str | None = None

    def __post_init__(self) -> None:
        # a config mistake stops the run before data or weights load
        if self.dtype not in DTYPES:
            raise ValueError(f"model.dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        revision, width = self.revision, self.image_width
        if revision is not None and (not isinstance(revision, str) or not revision.strip()):
            raise ValueError(
                f"model.revision must be a hub commit hash, branch or tag (e.g. the 40-hex commit a paper pins) "
                f"or null, got {revision!r}"
            )
        if width is not None and (not isinstance(width, int) or isinstance(width, bool) or width < 1):
            raise ValueError(f"model.image_width must be a positive number of pixels or null, got {width!r}")
        check_prompt_wrap(self.prompt_wrap)
        check_attention(self.attn_implementation)
        check_dispatch(self.device_map, self.max_memory, self.offload_folder)

    @cached_property
    def path(self) -> str:
        """`name` resolved once (`resolve_model_path`; a missing local path is refused): what every read of this
        model's files opens."""
        return resolve_model_path(self.name)

    def placement(self, device: str) -> dict:
        """`from_pretrained` arguments that place the weights while they load: a quantized model on `device`
        (bitsandbytes weights cannot be moved later), a dispatched one over `device_map`; empty otherwise."""
        quantized = quantization_config(self.quantization, self.dtype, device)
        placement = {"quantization_config": quantized, "device_map": device} if quantized else {}
        if self.device_map is not None:
            placement |= {
                "device_map": self.device_map,
                "max_memory": self.max_memory,
                "offload_folder": self.offload_folder,
            }
        return placement


def check_attention(implementation: str | None) -> None:
    """An attention kernel whose package is not installed, refused before any data or weights load (transformers
    would refuse it only while loading the weights, with a traceback). Other names are transformers' to judge."""
    installed = ATTENTION_PACKAGES.get(implementation or "")
    if installed is not None and not installed():
        raise ValueError(
            f"model.attn_implementation={implementation!r}: its package is not installed (or finds no supported "
            "GPU) here; use sdpa or eager, or null for the model's default"
        )


SHAPES_TOY = VLMOptions()  # the default model of every method: the shipped toy VLM


def load_pretrained(options: VLMOptions, device: str, chat: bool = False) -> tuple[PreTrainedModel, Any, str]:
    """The model on `device` (or placed while it loads), its processor (a text-only LM's tokenizer) and its path.

    Refused with the reason: a path that is not a model, a model that is not decoder-only, and with `chat` (prompts
    in the model's chat template) a model without a chat template.
    """
    placement = options.placement(device)
    name = options.path
    if options.revision is not None and Path(name).is_dir():
        raise ModelLoadError(
            f"model.revision {options.revision!r} pins a hub id, but model.name {options.name!r} is the local "
            f"folder {name}, which has no revisions: set model.revision: null or name the hub id"
        )
    common = {"trust_remote_code": options.trust_remote_code, "revision": options.revision}
    try:
        config = AutoConfig.from_pretrained(name, **common)
    except (OSError, ValueError) as error:
        where = (
            f"the local folder {name} has no usable config.json"
            if Path(name).is_dir()
            else f"{name!r} is not a local folder and not available from the Hugging Face hub or its local cache"
        )
        raise ModelLoadError(f"model.name: cannot load model: {where} ({error})") from error
    is_vlm = type(config) in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING
    if not is_vlm and type(config) not in MODEL_FOR_CAUSAL_LM_MAPPING:
        raise ModelLoadError(
            f"model.name: {name} is a {type(config).__name__} ({config.model_type!r}), neither an "
            "image-text-to-text model nor a causal LM: lit_tv patches decoder-only models"
        )
    # before the weights: a processor that cannot be built here stops the run in seconds, not after a download
    processor = _load_processor(name, config, is_vlm, options.processor_kwargs or {}, **common)
    if chat:
        check_chat_template(processor, name)
    model_class = AutoModelForImageTextToText if is_vlm else AutoModelForCausalLM
    dtype = getattr(torch, options.dtype) if options.dtype != "auto" else "auto"
    model = model_class.from_pretrained(
        name, dtype=dtype, attn_implementation=options.attn_implementation, **placement, **common
    )
    # transformers' `to` is wrapped with functools.wraps(nn.Module.to), which its stubs type without `self`
    return model if placement else model.to(device), processor, name  # type: ignore[arg-type]


def _load_processor(name_or_path: str, config: PretrainedConfig, is_vlm: bool, processor_kwargs: dict, **kwargs):
    """The processor, built without its video part where only that needs torchvision; refused by name where the
    image processor or the processor itself does (transformers ships e.g. Llama 4's and Molmo 2's image processors
    and Mistral 3's PixtralProcessor for torchvision only)."""
    if not is_vlm:
        return AutoTokenizer.from_pretrained(name_or_path, **kwargs)
    try:
        try:
            return AutoProcessor.from_pretrained(name_or_path, **processor_kwargs, **kwargs)
        except (ImportError, ValueError) as error:  # a video processor's refusal is one or the other
            if "torchvision" not in str(error).lower():
                raise
            revision = kwargs["revision"]
            class_name = getattr(config, "processor_class", None) or _processor_class_name(name_or_path, revision)
            saved = {
                **_saved_json(name_or_path, "processor_config.json", revision),
                **_chat_template(name_or_path, revision),
            }
            return load_processor_without_video(name_or_path, class_name, processor_kwargs, saved, **kwargs)
    except (ImportError, ValueError) as error:
        if "torchvision" not in str(error).lower():
            raise
        raise ModelLoadError(
            f"model.name: {name_or_path} ({config.model_type!r}) has a processor that transformers ships for "
            "torchvision only, which is not installed (lit_tv does not need it otherwise): install the torchvision "
            f"that matches your torch to run this model ({error})"
        ) from error


def _saved_text(name_or_path: str, file_name: str, revision: str | None) -> str | None:
    """One file of a local folder or hub repo at `revision`; None where it has none."""
    resolved = cached_file(name_or_path, file_name, revision=revision, _raise_exceptions_for_missing_entries=False)
    return Path(resolved).read_text() if resolved else None


def _saved_json(name_or_path: str, file_name: str, revision: str | None) -> dict:
    """One JSON file of a local folder or hub repo; empty where it has none."""
    text = _saved_text(name_or_path, file_name, revision)
    return json.loads(text) if text is not None else {}


def _chat_template(name_or_path: str, revision: str | None) -> dict:
    """The processor's chat template, which a saved folder keeps in a file of its own (chat_template.jinja, or the
    older chat_template.json), as the processor option it is; empty where it has none."""
    template = _saved_text(name_or_path, "chat_template.jinja", revision)
    if template is None:
        template = _saved_json(name_or_path, "chat_template.json", revision).get("chat_template")
    return {} if template is None else {"chat_template": template}


def _processor_class_name(name_or_path: str, revision: str | None) -> str:
    """Read the processor class a saved folder declares (processor_config.json or tokenizer config)."""
    for file_name in ("processor_config.json", "preprocessor_config.json", "tokenizer_config.json"):
        if name := _saved_json(name_or_path, file_name, revision).get("processor_class"):
            return name
    raise ModelLoadError(f"{name_or_path}: no processor_class declared in its processor or tokenizer config")
