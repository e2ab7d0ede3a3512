"""Per-episode residual vectors (not averaged), for maps and comparisons of how a task was specified."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from lit_tv.episodes import Episode
from lit_tv.interventions.hooks import record_residual
from lit_tv.model.vlm import SUPPORT_SHOTS, FrozenVLM
from lit_tv.prompts import PromptTemplate


@torch.no_grad()
def residual_per_episode(
    vlm: FrozenVLM, template: PromptTemplate, episodes: Sequence[Episode], batch_size: int = 16
) -> torch.Tensor:
    """Every decoder layer's output at each support episode's last token → fp32 `[episodes, layers, hidden]`."""
    rows = []
    for start in range(0, len(episodes), batch_size):
        with record_residual(vlm) as recording:
            vlm.last_logits(
                vlm.build_inputs(episodes[start : start + batch_size], template, shots_option=SUPPORT_SHOTS)
            )
        rows.append(recording.value.float())
    return torch.cat(rows)


def specification(episode: Episode) -> str:
    """How an episode shows its task: ``image`` or ``text`` exemplars, ``mixed``, or ``none`` (no shots)."""
    kinds = {"image" if shot.images else "text" for shot in episode.shots}
    return kinds.pop() if len(kinds) == 1 else "mixed" if kinds else "none"
