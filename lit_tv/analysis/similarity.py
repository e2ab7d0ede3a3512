"""Cosine similarity of task vectors layer by layer (LLM vs VLM, text vs image exemplars, ...)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def cosine_by_layer(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """Cosine of two `[layers, hidden]` vectors at each layer → fp32 `[layers]`."""
    if first.shape != second.shape:
        raise ValueError(
            f"vectors to compare must have the same shape, got {tuple(first.shape)} and {tuple(second.shape)}"
        )
    return F.cosine_similarity(first.float(), second.float(), dim=-1)
