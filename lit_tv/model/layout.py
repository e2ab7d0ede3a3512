"""Where the parts of a decoder live: found from the model's own accessors, never from name strings.

Each layer keeps its own head size: Gemma 4's global layers' heads are twice as wide as its sliding layers'. A head
vector is `[layers, heads, head_dim]` with `head_dim` the widest layer's; a narrower layer's heads fill their first
entries, zeros after (`pad_heads` on the way in, `narrow_heads` on the way out).

Only layers that attend over the prompt are mapped: a cross-attention layer (Mllama's, between its
self-attention layers) attends over image features instead, and its model skips it on a prompt without images,
so its heads and residual output are not there on every prompt. It stays in the model, unhooked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn import functional

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedModel

ATTENTION_NAMES = ("self_attn", "attn", "attention", "self_attention")
CROSS_ATTENTION_NAMES = ("cross_attn",)
OUT_PROJECTION_NAMES = ("o_proj", "dense", "c_proj", "out_proj")
FINAL_NORM_NAMES = ("norm", "final_layernorm", "ln_f", "final_layer_norm")
LAYER_LIST_NAMES = ("layers", "h", "blocks")

# the numbers a saved task vector must agree with: sizes, and ``head_dims`` (a list) where the layers' head sizes differ
Signature = dict[str, int | list[int]]


class UnsupportedModelError(ValueError):
    """The model's decoder cannot be mapped onto layers, heads and an attention out-projection."""


@dataclass(frozen=True)
class Layout:
    """The text decoder's geometry and the modules interventions hook into: its layers that attend over the prompt,
    numbered 0..num_layers-1 in decoder order, and where the decoder has cross-attention layers between them, their
    indices in the decoder (`cross_attention_layers`)."""

    num_layers: int
    num_heads: int
    head_dims: tuple[int, ...]  # each layer's head size
    hidden_size: int
    decoder: nn.Module  # the module that runs the layers: hooks on it see each forward's cache and positions
    layers: tuple[nn.Module, ...]
    out_projections: tuple[nn.Module, ...]
    final_norm: nn.Module
    lm_head: nn.Module
    cross_attention_layers: tuple[int, ...] = ()
    # what the model does to lm_head's output: Cohere's scale, Gemma 2 / 4's tanh cap (the text config's numbers)
    logit_scale: float = 1.0
    logit_softcap: float | None = None

    @property
    def head_dim(self) -> int:
        """The width of a head vector: every layer's head size where they agree, else the widest layer's."""
        return max(self.head_dims)

    def pad_heads(self, layer: int, features: torch.Tensor) -> torch.Tensor:
        """Layer `layer`'s out-projection input `[..., heads * its head size]` as `[..., heads, head_dim]`, zeros
        after a narrower layer's entries: every layer's heads stack into one head vector."""
        size = self.head_dims[layer]
        return functional.pad(features.unflatten(-1, (self.num_heads, size)), (0, self.head_dim - size))

    def narrow_heads(self, layer: int, values: torch.Tensor) -> torch.Tensor:
        """Head-vector values `[..., heads, head_dim]` at layer `layer`'s own head size (its first entries)."""
        return values[..., : self.head_dims[layer]]

    def signature(self) -> Signature:
        """The numbers a saved task vector must agree with to be patched into this model."""
        return layout_signature(self.num_heads, self.head_dims, self.hidden_size)


def layout_signature(num_heads: int, head_dims: tuple[int, ...], hidden_size: int) -> Signature:
    """A layout's `Layout.signature`, also from a config alone: ``head_dims`` only where the layers' sizes differ,
    so that a single-size model's signature (and its saved vectors') stays the four numbers it always was."""
    numbers: Signature = {
        "num_layers": len(head_dims),
        "num_heads": num_heads,
        "head_dim": max(head_dims),
        "hidden_size": hidden_size,
    }
    return numbers if len(set(head_dims)) == 1 else {**numbers, "head_dims": list(head_dims)}


def layer_head_dim(text_config: PretrainedConfig, index: int) -> int:
    """Decoder layer `index`'s head size, from the text config: its own where a heterogeneous config sets
    ``head_dim`` per layer (Gemma 4), else the config's one ``head_dim`` (or hidden_size / heads)."""
    if "head_dim" in (getattr(text_config, "per_layer_attributes", None) or ()):
        return text_config.per_layer_config[index].head_dim
    return getattr(text_config, "head_dim", None) or text_config.hidden_size // text_config.num_attention_heads


def config_head_dims(text_config: PretrainedConfig) -> tuple[int, ...]:
    """The head size of each layer a `Layout` of this text config maps, from the config alone: all layers but its
    cross-attention ones (listed in ``cross_attention_layers`` by the models that have them, e.g. Mllama)."""
    skipped = set(getattr(text_config, "cross_attention_layers", None) or ())
    return tuple(
        layer_head_dim(text_config, index) for index in range(text_config.num_hidden_layers) if index not in skipped
    )


def _first_child(module: nn.Module, names: tuple[str, ...]) -> nn.Module | None:
    return next((getattr(module, name) for name in names if isinstance(getattr(module, name, None), nn.Module)), None)


def _text_decoder(model: PreTrainedModel) -> nn.Module | None:
    """`get_decoder()`'s module; where that is a whole causal LM (Llama 4's language model, a `Llama4ForCausalLM`,
    returns itself), its base model `model`, which holds the layers."""
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else None
    inner = getattr(decoder, "model", None)
    if decoder is not None and _first_child(decoder, LAYER_LIST_NAMES) is None and isinstance(inner, nn.Module):
        return inner
    return decoder


def _shared_by_layers(model_name: str, text_config: PretrainedConfig, name: str, num_layers: int) -> int | None:
    """A text config's number that every layer shares; one a heterogeneous config sets per layer must agree."""
    if name not in (getattr(text_config, "per_layer_attributes", None) or ()):
        return getattr(text_config, name, None)
    values = [getattr(text_config.per_layer_config[index], name) for index in range(num_layers)]
    if len(set(values)) > 1:
        raise UnsupportedModelError(
            f"{model_name}: its layers differ in {name} (per layer: {values}), but lit_tv's head vectors take one "
            f"{name} for every layer"
        )
    return values[0]


def discover_layout(model: PreTrainedModel) -> Layout:
    """Map any HF causal LM or VLM onto a `Layout`, or say exactly what could not be found."""
    model_name = type(model).__name__
    decoder = _text_decoder(model)
    if decoder is None:
        raise UnsupportedModelError(f"{model_name}: get_decoder() found no text decoder")
    layers = _first_child(decoder, LAYER_LIST_NAMES)
    if not isinstance(layers, nn.ModuleList) or len(layers) == 0:
        raise UnsupportedModelError(
            f"{model_name}: its decoder {type(decoder).__name__} has no list of layers (looked for {LAYER_LIST_NAMES})"
        )
    text_config = model.config.get_text_config()
    num_heads = _shared_by_layers(model_name, text_config, "num_attention_heads", len(layers))
    if not num_heads:
        raise UnsupportedModelError(
            f"{model_name}: its text config {type(text_config).__name__} has no num_attention_heads, "
            "so the model has no attention out-projection to map"
        )
    hidden_size = text_config.hidden_size
    prompt_layers, out_projections, cross_attention_layers, head_dims = [], [], [], []
    for index, layer in enumerate(layers):
        attention = _first_child(layer, ATTENTION_NAMES)
        if attention is None and _first_child(layer, CROSS_ATTENTION_NAMES) is not None:
            cross_attention_layers.append(index)
            continue
        projection = _first_child(attention, OUT_PROJECTION_NAMES) if attention is not None else None
        if projection is None:
            raise UnsupportedModelError(
                f"{model_name}: layer {index} ({type(layer).__name__}) has no attention out-projection "
                f"(looked for {ATTENTION_NAMES} then {OUT_PROJECTION_NAMES})"
            )
        head_dim = layer_head_dim(text_config, index)
        in_features = getattr(projection, "in_features", num_heads * head_dim)
        if in_features != num_heads * head_dim:
            raise UnsupportedModelError(
                f"{model_name}: layer {index} out-projection takes {in_features} features, "
                f"expected heads x head_dim = {num_heads} x {head_dim}"
            )
        prompt_layers.append(layer)
        out_projections.append(projection)
        head_dims.append(head_dim)
    final_norm = _first_child(decoder, FINAL_NORM_NAMES)
    if final_norm is None:
        raise UnsupportedModelError(f"{model_name}: decoder has no final norm (looked for {FINAL_NORM_NAMES})")
    lm_head = model.get_output_embeddings()
    if lm_head is None:
        raise UnsupportedModelError(f"{model_name}: get_output_embeddings() returned no lm_head")
    return Layout(
        num_layers=len(prompt_layers),
        num_heads=num_heads,
        head_dims=tuple(head_dims),
        hidden_size=hidden_size,
        decoder=decoder,
        layers=tuple(prompt_layers),
        out_projections=tuple(out_projections),
        final_norm=final_norm,
        lm_head=lm_head,
        cross_attention_layers=tuple(cross_attention_layers),
        logit_scale=getattr(text_config, "logit_scale", None) or 1.0,
        logit_softcap=getattr(text_config, "final_logit_softcapping", None),
    )
