"""Attention over a prefix shared by many rows equals `sdpa` over each row's copy of it."""

from __future__ import annotations

import pytest
import torch
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from lit_tv.interventions.prefix_attention import HANDOFF, attend_over_shared_prefix


class _Attention(torch.nn.Module):
    """What sdpa reads of an attention module: causal, query heads per key/value head."""

    is_causal = True

    def __init__(self, groups: int = 1) -> None:
        super().__init__()
        self.num_key_value_groups = groups


@pytest.mark.parametrize(
    ("heads", "kv_heads", "length", "mask"),
    [(4, 4, 1, "none"), (4, 2, 1, "bool"), (6, 2, 3, "none"), (4, 1, 3, "bool"), (4, 2, 2, "float")],
)
def test_attention_over_a_shared_prefix_equals_sdpa_over_the_rows_copies(heads, kv_heads, length, mask):
    """Grouped query heads, one or more queries per row (causal over the rows' own tokens), no mask, a boolean
    or an additive mask: the output equals sdpa's over the prefix expanded beside each row's own tokens."""
    generator = torch.Generator().manual_seed(0)
    rows, cached, own, head_dim = 5, 7, 4, 8
    query = torch.randn(rows, heads, length, head_dim, generator=generator)
    prefix = [torch.randn(1, kv_heads, cached, head_dim, generator=generator) for _ in range(2)]
    key, value = (torch.randn(rows, kv_heads, own, head_dim, generator=generator) for _ in range(2))
    whole = cached + own
    allowed = torch.ones(length, whole, dtype=torch.bool).tril(whole - length).expand(rows, 1, -1, -1).clone()
    allowed[1, :, :, 2] = False  # a row that must not see one prefix position
    attention_mask = {
        "none": None,
        "bool": allowed,
        "float": torch.zeros(rows, 1, length, whole).masked_fill(~allowed, float("-inf")),
    }[mask]
    module = _Attention(heads // kv_heads)
    expected, _ = sdpa_attention_forward(
        module,
        query,
        torch.cat([prefix[0].expand(rows, -1, -1, -1), key], dim=-2),
        torch.cat([prefix[1].expand(rows, -1, -1, -1), value], dim=-2),
        attention_mask if mask != "none" else None,
        scaling=0.3,
    )
    HANDOFF.leave(*prefix)
    shared, _ = attend_over_shared_prefix(module, query, key, value, attention_mask, scaling=0.3)
    assert HANDOFF.take() is None, "the attention took the prefix it was left"
    assert shared.shape == expected.shape == (rows, length, heads, head_dim)
    torch.testing.assert_close(shared, expected, atol=1e-5, rtol=1e-5)
    if mask == "bool":  # the masked prefix position is left out for its row only
        HANDOFF.leave(*prefix)
        causal = torch.ones(length, whole, dtype=torch.bool).tril(whole - length).expand(rows, 1, -1, -1)
        unmasked, _ = attend_over_shared_prefix(module, query, key, value, causal, scaling=0.3)
        assert not torch.allclose(unmasked[1], shared[1])
        torch.testing.assert_close(unmasked[[0, 2, 3, 4]], shared[[0, 2, 3, 4]])


def test_without_a_prefix_left_it_is_sdpa_and_a_prefix_not_taken_is_an_error():
    """A cross-attention layer (no prefix left) gets sdpa itself; a second prefix left before the first was taken
    means the model's attention bypassed the handoff, which must not pass silently (the rows would see no prefix)."""
    generator = torch.Generator().manual_seed(1)
    query, key, value = (torch.randn(2, 2, 1, 4, generator=generator) for _ in range(3))
    expected, _ = sdpa_attention_forward(_Attention(), query, key, value, None)
    torch.testing.assert_close(attend_over_shared_prefix(_Attention(), query, key, value, None)[0], expected)
    HANDOFF.leave(key[:1], value[:1])
    with pytest.raises(RuntimeError, match="not taken"):
        HANDOFF.leave(key[:1], value[:1])
    HANDOFF.take()
