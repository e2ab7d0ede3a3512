"""Attention of many rows over one shared prefix, without copying the prefix per row.

The random-heads control decodes 20 head sets as rows over one prompt's cached prefix. Handing attention the
prefix expanded beside each row's own tokens copies 20 x the prefix's keys and values per layer and step: on a
603-token prompt that copy and the attention over it took two thirds of the control's time. Here the decoder layer's
cache (`SharedPrefixLayer`) hands attention only the rows' own keys and values and leaves the prefix's (batch 1) for
`attend_over_shared_prefix`, which puts the rows beside the heads (one matrix product per key/value head over the
prefix, read once) and the rows' own tokens apart, then takes one softmax over both parts: the same attention as
over the concatenation.

It stands in for the model's `sdpa` attention while the rows generate (`shared_prefix_attention`); any attention call
without a prefix waiting (a cross-attention layer, a cache layer copied per row) goes to `sdpa` itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from transformers import AttentionInterface, PreTrainedModel
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

SHARED_PREFIX_ATTENTION = "lit_tv_shared_prefix"


class PrefixHandoff:
    """The prefix keys and values a cache layer's `update` leaves for the attention call that follows it."""

    def __init__(self) -> None:
        self.active = False  # inside `shared_prefix_attention`: attention takes the prefix from here
        self.waiting: tuple[torch.Tensor, torch.Tensor] | None = None

    def leave(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        if self.waiting is not None:
            raise RuntimeError(
                "a shared prefix was left for attention but not taken: this model's attention does not go through "
                "transformers' attention functions, so its rows must get the prefix copied"
            )
        self.waiting = keys, values

    def take(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        prefix, self.waiting = self.waiting, None
        return prefix


HANDOFF = PrefixHandoff()


def after(earlier: torch.Tensor, later: torch.Tensor) -> torch.Tensor:
    """Each row of `later` (keys or values `[rows, heads, tokens, head_dim]`) after `earlier`'s tokens (batch 1,
    expanded to the rows, or one per row): the copy this module's attention avoids for a shared prefix."""
    return torch.cat([earlier.expand(later.shape[0], -1, -1, -1), later], dim=-2)


def attend_over_shared_prefix(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """`sdpa`'s attention over the waiting prefix's keys (batch 1) followed by each row's own `key`s.

    query `[rows, heads, q, head_dim]`, key/value `[rows, kv_heads, own, head_dim]`, the prefix's `[1, kv_heads,
    prefix, head_dim]`; the mask spans prefix + own positions (None: every position, as transformers passes for one
    query per row). Returns `[rows, q, heads, head_dim]`.
    """
    prefix = HANDOFF.take()
    # a sliding window is in the mask (sdpa's too); a logit cap or attention sinks are not
    unsupported = [name for name in ("softcap", "s_aux") if kwargs.get(name) is not None]
    if prefix is None or unsupported or dropout or (attention_mask is None and query.shape[2] > 1):
        if prefix is not None:  # attention this function leaves to sdpa: the prefix copied per row
            key, value = after(prefix[0], key), after(prefix[1], value)
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout, scaling, **kwargs)
    prefix_keys, prefix_values = prefix
    rows, heads, length, head_dim = query.shape
    kv_heads, cached = prefix_keys.shape[1], prefix_keys.shape[2]
    grouped = query.reshape(rows, kv_heads, heads // kv_heads * length, head_dim)  # query heads per kv head
    scale = head_dim**-0.5 if scaling is None else scaling
    # prefix part: every row's queries of one kv head against that head's prefix keys, one product per kv head
    by_head = grouped.transpose(0, 1).reshape(kv_heads, -1, head_dim)
    prefix_scores = torch.bmm(by_head, prefix_keys[0].transpose(1, 2)).view(kv_heads, rows, -1, cached)
    own_scores = torch.matmul(grouped, key.transpose(-1, -2))
    scores = torch.cat([prefix_scores.transpose(0, 1), own_scores], dim=-1).mul_(scale)
    scores = scores.view(rows, heads, length, -1)
    if attention_mask is not None:
        mask = attention_mask[..., -scores.shape[-1] :]
        scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask
    weights = scores.float().softmax(dim=-1).to(query.dtype).view(rows, kv_heads, -1, cached + key.shape[-2])
    from_prefix = torch.bmm(weights[..., :cached].transpose(0, 1).reshape(kv_heads, -1, cached), prefix_values[0])
    output = from_prefix.view(kv_heads, rows, -1, head_dim).transpose(0, 1)
    output = output + torch.matmul(weights[..., cached:], value)
    return output.reshape(rows, heads, length, head_dim).transpose(1, 2).contiguous(), None


AttentionInterface.register(SHARED_PREFIX_ATTENTION, attend_over_shared_prefix)
ALL_MASK_ATTENTION_FUNCTIONS.register(SHARED_PREFIX_ATTENTION, sdpa_mask)


@contextmanager
def shared_prefix_attention(model: PreTrainedModel) -> Iterator[None]:
    """While inside, the text decoder's `sdpa` attention is `attend_over_shared_prefix` (a model on another attention
    implementation keeps it, and its rows get the prefix copied)."""
    config = model.config.get_text_config()
    if config._attn_implementation != "sdpa":
        yield
        return
    config._attn_implementation, HANDOFF.active = SHARED_PREFIX_ATTENTION, True
    try:
        yield
    finally:
        config._attn_implementation, HANDOFF.active = "sdpa", False
        HANDOFF.take()  # a generation that failed midway leaves nothing behind
