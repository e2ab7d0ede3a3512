"""MTV's REINFORCE as the reference computes it: the objective a sampled head mask is scored by, the sampling
probabilities and the surrogate, apart from the module so that tests can check them against hand-computed values."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lit_tv.episodes import Episode
from lit_tv.interventions.hooks import replace_heads
from lit_tv.interventions.shared_prefix import fork_last_token, repeat_rows
from lit_tv.model.vlm import FrozenVLM
from lit_tv.prompts import PromptTemplate

SAMPLING_EPSILON = 1e-3  # the reference's eps: probability clamp and z-score denominator


def sampling_probabilities(theta: torch.Tensor) -> torch.Tensor:
    """sigmoid(theta) clamped to [eps, 1 - eps], as the reference: no head is ever ruled out or certain."""
    return torch.sigmoid(theta).clamp(min=SAMPLING_EPSILON, max=1 - SAMPLING_EPSILON)


def reinforce_surrogate(probabilities: torch.Tensor, masks: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
    """The reference's REINFORCE objective: sum over samples of log P(mask) * z(loss), the losses z-normalised
    across the samples with std + eps (a lower-loss mask gets a negative weight, so descent makes it likelier)."""
    normalised = (losses - losses.mean()) / (losses.std() + SAMPLING_EPSILON)
    log_probs = torch.distributions.Bernoulli(probs=probabilities).log_prob(masks.float()).sum((1, 2))
    return (log_probs * normalised).sum()


def mask_losses(
    vlm: FrozenVLM, template: PromptTemplate, query: Episode, means: torch.Tensor, masks: torch.Tensor, fast_path: bool
) -> torch.Tensor:
    """The objective each sampled mask `[samples, layers, heads]` is scored by: the first answer token's
    cross-entropy of `query` with the mask's heads replaced by `means`. Each sample has its own heads (per-row masks
    through the hooks); `fast_path`: the samples are copies of the last token over one prefix, else the whole
    prompt repeated per sample."""
    inputs = vlm.build_inputs([query], template)
    target = vlm.answer_token_ids([query], template).expand(len(masks))
    with torch.no_grad():
        if fast_path:
            logits = fork_last_token(vlm, inputs, len(masks)).logits(means, masks)
        else:
            with replace_heads(vlm, means, masks, policy="prompt"):
                logits = vlm.last_logits(repeat_rows(inputs, len(masks)))
    return F.cross_entropy(logits.clone(), target, reduction="none")
