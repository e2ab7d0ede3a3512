"""MTV's REINFORCE arithmetic as the reference computes it, apart from the module so that tests can check it
against hand-computed values."""

from __future__ import annotations

import torch

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
