"""One prompt continued as many rows over its one cached prefix: every row generates its own answer.

MTV's random-heads control answers each query under 20 head sets. Only the prompt's last position (and, with
``every_token``, the generated tokens) is patched, so all but the last prompt token are the same in every
row: they run once into a KV cache, stored once for all rows (`SharedPrefixLayer`), and `FrozenVLM.generate`
continues from it with one row per head set. On `sdpa` attention the rows read the prefix once per layer and step
(`lit_tv.interventions.prefix_attention`); on another implementation each layer hands attention the prefix copied
beside the rows' own tokens. Generate itself applies the family's positions over a cache (Qwen2-VL's M-RoPE offsets,
Fuyu's patch positions), end of sequence and ``min_new_tokens``, exactly as in a plain generate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, cast

import torch
from transformers import BatchFeature
from transformers.cache_utils import Cache, CacheLayerMixin, DynamicLayer, DynamicSlidingWindowLayer

from lit_tv.interventions.hooks import PatchPolicy, replace_heads
from lit_tv.interventions.prefix_attention import HANDOFF, after, shared_prefix_attention
from lit_tv.model.vlm import FrozenVLM


class SharedPrefixLayer(DynamicLayer):
    """A decoder layer's cache: the prefix's keys and values once (batch 1), then each row's own tokens.

    Inside `shared_prefix_attention` the prefix goes to attention apart from the rows' own keys (no copy);
    otherwise attention gets it copied beside each row's own tokens, one layer's copy alive at a time, where
    copying the cache per row keeps every layer's copy for the whole generation.
    """

    def __init__(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        super().__init__()
        self.prefix_keys, self.prefix_values = keys, values
        self.device = keys.device
        self.keys, self.values = keys[:, :, :0], values[:, :, :0]  # the rows' own tokens: none yet
        self.is_initialized = True

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs
    ) -> tuple[torch.Tensor, torch.Tensor]:
        own_keys, own_values = self._own()
        self.keys, self.values = keys, values = after(own_keys, key_states), after(own_values, value_states)
        if HANDOFF.active:  # attention reads the prefix once for all rows (`attend_over_shared_prefix`)
            HANDOFF.leave(self.prefix_keys, self.prefix_values)
            return keys, values
        return after(self.prefix_keys, keys), after(self.prefix_values, values)

    def _own(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The rows' own keys and values (set from the start: never None here)."""
        assert self.keys is not None and self.values is not None
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.prefix_keys.shape[-2] + self._own()[0].shape[-2]


@dataclass
class PrefixRows:
    """A prompt's prefix in `cache` (`cached` tokens) and the prompt's token inputs repeated per row; the image
    inputs are left out: the images sit in the cache, and the uncached last token holds none. Generated once:
    generation extends the cache."""

    vlm: FrozenVLM = field(repr=False)
    inputs: BatchFeature
    cache: Cache
    cached: int

    def generate(
        self,
        max_new_tokens: int,
        values: torch.Tensor | None = None,
        heads: torch.Tensor | None = None,
        policy: PatchPolicy = "prompt",
    ) -> list[str]:
        """Every row's greedy answer (`FrozenVLM.generate`); with `heads` `[rows, layers, heads]`, each row's
        selected heads replaced by `values` under `policy`, the call over the last prompt token as the prefill."""
        with shared_prefix_attention(self.vlm.model):
            if heads is None:
                return self.vlm.generate(self.inputs, max_new_tokens, cache=self.cache)
            assert values is not None, "heads are replaced by values"
            with replace_heads(self.vlm, values, heads, policy=policy, cached_prefix=self.cached):
                return self.vlm.generate(self.inputs, max_new_tokens, cache=self.cache)


@torch.inference_mode()
def cache_prefix(vlm: FrozenVLM, inputs: BatchFeature, rows: int) -> PrefixRows:
    """Run all but the last token of one unpadded prompt once; `rows` rows continue from that cache.

    A cache layer that holds the whole prefix (a plain growing one, or a sliding window the prefix has not filled:
    the attention mask keeps the window) is shared (`SharedPrefixLayer`); any other (a full sliding window's, a
    cross-attention layer's) is copied per row, which costs memory but answers alike.
    """
    ids = inputs["input_ids"]
    if ids.shape[0] != 1 or not inputs["attention_mask"].all():
        raise ValueError(f"cache_prefix takes one unpadded prompt, got a batch of shape {tuple(ids.shape)}")
    if vlm.prompt_attends_both_ways:  # a prefix LM's prompt sees the patched last token: no prefix to share
        raise ValueError(f"{vlm.name}'s prompt attends both ways: its prefix cannot be shared by rows patched apart")
    aligned = [key for key, value in inputs.items() if torch.is_tensor(value) and value.shape[:2] == ids.shape]
    prefix = {key: value[:, :-1] if key in aligned else value for key, value in inputs.items()}
    vlm.forget_position_offsets()
    cache = getattr(vlm.model(**prefix, use_cache=True, **vlm.logits_to_keep(1)), vlm.cache_name)
    cross = set(vlm.layout.cross_attention_layers)  # read whole by the decoder (Mllama's image keys): per row
    cache.layers = [_for_rows(layer, rows, index in cross) for index, layer in enumerate(cache.layers)]
    repeated = BatchFeature({key: inputs[key].repeat(rows, *[1] * (inputs[key].dim() - 1)) for key in aligned})
    return PrefixRows(vlm, repeated, cache, int(ids.shape[1]) - 1)


def _whole_prefix(layer: CacheLayerMixin) -> tuple[torch.Tensor, torch.Tensor] | None:
    """A cache layer's keys and values where they hold every prefix token, growing as tokens come (a sliding window
    keeps only its last ones once full)."""
    keys, values = layer.keys, layer.values
    if keys is None or values is None or type(layer) not in (DynamicLayer, DynamicSlidingWindowLayer):
        return None
    return (keys, values) if keys.shape[-2] == layer.get_seq_length() else None


class _Repeatable(Protocol):
    """A cache layer that copies itself per row: every layer a generate's cache holds (`Cache.batch_repeat_interleave`
    calls it on each)."""

    def batch_repeat_interleave(self, repeats: int) -> None: ...


def _for_rows(layer: CacheLayerMixin, rows: int, cross_attention: bool) -> CacheLayerMixin:
    """The layer as the rows read it: shared when it holds the whole prefix, else copied per row."""
    prefix = None if cross_attention else _whole_prefix(layer)
    if prefix is not None:
        return SharedPrefixLayer(*prefix)
    cast(_Repeatable, layer).batch_repeat_interleave(rows)
    return layer
