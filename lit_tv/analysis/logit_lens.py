"""Logit-lens decoding: what a residual-stream vector would make the model say, layer by layer."""

from __future__ import annotations

from typing import cast

import torch

from lit_tv.model.vlm import FrozenVLM

TokenTable = list[list[tuple[str, float]]]


@torch.no_grad()
def top_tokens(vlm: FrozenVLM, vectors: torch.Tensor, k: int = 10) -> TokenTable:
    """The `k` most probable tokens of each row of `[layers, hidden]` under the final norm and lm_head.

    Returns one list per layer of (decoded token, probability), most probable first.
    """
    probabilities = vlm.logit_lens(vectors).softmax(-1)
    values, ids = probabilities.topk(min(k, probabilities.shape[-1]), dim=-1)
    return [
        [(cast(str, vlm.tokenizer.decode([token])), value) for token, value in zip(row_ids, row_values, strict=True)]
        for row_ids, row_values in zip(ids.tolist(), values.tolist(), strict=True)
    ]


def as_markdown(table: TokenTable) -> str:
    """A layer | tokens table for TensorBoard's text tab (tokens quoted, so spaces and newlines show)."""
    lines = ["| layer | top tokens (probability) |", "| --- | --- |"]
    for layer, row in enumerate(table):
        cells = ", ".join(f"{token!r} {probability:.3f}" for token, probability in row)
        lines.append(f"| {layer} | {cells.replace('|', chr(92) + '|')} |")
    return "\n".join(lines)
