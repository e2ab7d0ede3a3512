"""MTV's random-heads control as a distribution: many head sets of the selected count, each scored on the same
test queries, so a reader sees where the selected heads fall among them (one draw cannot say whether selection
matters: on the shapes toy single draws range from chance to MTV's own accuracy).

Answered one generate per head set, the control costs `random_draws` times the test. Only the last prompt
position (and, patched every token, the generated ones) differs between head sets, so each query's prefix runs
once and the sets answer as rows over it (`answers_over_one_prefix`): with one new token (the shapes world, the
cross-modal tasks) each set patches its own copy of the last token (the REINFORCE fast path), with more (the VQA
configs' 10) the sets generate together over the prefix's cache; checked once per run against generate's
answers, and generate is used on any mismatch.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from typing import cast

import torch
from torch import nn
from torchmetrics import Metric

from lit_tv.episodes import Episode
from lit_tv.interventions.hooks import PatchPolicy
from lit_tv.interventions.prefix_rows import cache_prefix
from lit_tv.interventions.shared_prefix import fork_last_token
from lit_tv.model.vlm import FrozenVLM
from lit_tv.prompts import PromptTemplate
from lit_tv.spread import format_rank, format_spread, rank_among, spread

LOGGER = logging.getLogger(__name__)
# every head set's answers to a batch, per set: computed over each query's one prefix
AnswersOverOnePrefix = Callable[[list[torch.Tensor]], list[list[str]]]


def random_head_sets(selected: torch.Tensor, count: int, seed: int, tasks: Sequence[str]) -> list[torch.Tensor]:
    """`count` sets of as many heads as `selected`, each drawn uniformly at random; the generator is seeded per run
    seed and task set, so the draws differ per task and per seed, reproducibly."""
    digest = hashlib.sha256(f"random heads/{seed}/{','.join(tasks)}".encode()).digest()
    generator = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))
    head_sets = []
    for _ in range(count):
        mask = torch.zeros(selected.numel(), dtype=torch.bool)
        mask[torch.randperm(selected.numel(), generator=generator)[: int(selected.sum())]] = True
        head_sets.append(mask.view_as(selected).to(selected.device))
    return head_sets


@torch.inference_mode()
def answers_over_one_prefix(
    vlm: FrozenVLM,
    template: PromptTemplate,
    batch: Sequence[Episode],
    values: torch.Tensor,
    head_sets: list[torch.Tensor],
    max_new_tokens: int = 1,
    policy: PatchPolicy = "prompt",
) -> list[list[str]]:
    """Each query's greedy answer under every head set (`head_sets[i]` replaced by `values` under `policy`), per
    set, as `FrozenVLM.generate` gives it: the query's prefix runs once. One new token: one copy of its last
    token per set, over the uncached prefix (`fork_last_token`); more: one row per set, generated together over
    the prefix's cache (`cache_prefix`)."""
    per_query, heads = [], torch.stack(head_sets)
    for episode in batch:
        inputs = vlm.build_inputs([episode], template, new_tokens=max_new_tokens)
        if max_new_tokens == 1:
            logits = fork_last_token(vlm, inputs, len(head_sets)).logits(values, heads)
            per_query.append(vlm.one_token_answers(logits))
        else:
            per_query.append(cache_prefix(vlm, inputs, len(head_sets)).generate(max_new_tokens, values, heads, policy))
    return [list(answers) for answers in zip(*per_query, strict=True)]


class RandomHeadsControl(nn.Module):
    """The control of one test run: its random head sets and one accuracy metric per set."""

    def __init__(
        self, selected: torch.Tensor, count: int, seed: int, tasks: Sequence[str], make_metric: Callable[[], Metric]
    ) -> None:
        super().__init__()
        self.head_sets = random_head_sets(selected, count, seed, tasks)
        self.heads = int(selected.sum())
        self.accuracy = nn.ModuleList([make_metric() for _ in self.head_sets])
        self.shares_prefix: bool | None = None  # whether `over_one_prefix` answers as generate does (checked once)

    def update(
        self,
        answer: Callable[[torch.Tensor], list[str]],
        references: list[Sequence[str]],
        over_one_prefix: AnswersOverOnePrefix | None = None,
    ) -> None:
        """Score every head set's answers to the batch: `answer(heads)` (a generate with those heads replaced),
        or with `over_one_prefix` all sets at once, once its answers of the first set matched `answer`'s on
        the first batch."""
        by_set = None
        if over_one_prefix is not None and self.shares_prefix is not False:
            by_set = self._try_first(over_one_prefix) if self.shares_prefix is None else over_one_prefix(self.head_sets)
            if by_set is not None and self.shares_prefix is None:
                generated = answer(self.head_sets[0])
                self.shares_prefix = by_set[0] == generated
                if self.shares_prefix:
                    LOGGER.info("random heads: the answers over one prefix match generate's, every set is answered so")
                else:
                    LOGGER.warning(
                        "random heads: the answers over one prefix differ from generate's (%s vs %s): every head "
                        "set is answered by generate instead",
                        by_set[0][:4],
                        generated[:4],
                    )
                    by_set = [generated, *(answer(heads) for heads in self.head_sets[1:])]
        if by_set is None:
            by_set = [answer(heads) for heads in self.head_sets]
        for answers, metric in zip(by_set, self.metrics(), strict=True):
            metric.update(answers, references)

    def _try_first(self, over_one_prefix: AnswersOverOnePrefix) -> list[list[str]] | None:
        """The first batch's answers over one prefix, or None (and generate from now on) where the model refuses
        to continue from a cache it was handed."""
        try:
            return over_one_prefix(self.head_sets)
        except (TypeError, ValueError, RuntimeError, IndexError) as error:
            LOGGER.warning(
                "random heads: answering over one prefix failed (%s): every head set is answered by generate instead",
                error,
            )
            self.shares_prefix = False
            return None

    def metrics(self) -> list[Metric]:
        """The per-set metrics, typed (a ModuleList yields plain modules)."""
        return [cast(Metric, metric) for metric in self.accuracy]

    def accuracies(self) -> list[float]:
        return [float(metric.compute()) for metric in self.metrics()]

    def logged(self, selected: float) -> dict[str, float]:
        """The scalars to log under `test/random_heads/`: the draws' spread and where `selected` falls."""
        summary, rank = spread(self.accuracies()), rank_among(selected, self.accuracies())
        return {
            "accuracy": summary["mean"],
            **{f"accuracy_{key}": summary[key] for key in ("std", "min", "max")},
            "draws": float(rank["draws"]),
            "draws_below_selected": float(rank["above"]),
            "draws_tied": float(rank["tied"]),
        }

    def note(self, selected: float) -> str:
        """One printed line: the draws' spread, and e.g. ``the selected heads (0.967) above 20 of 20``."""
        draws = self.accuracies()
        return (
            f"random heads ({len(draws)} draws of {self.heads} heads): {format_spread(draws)}; "
            f"the selected heads ({selected:.3f}) {format_rank(rank_among(selected, draws))}"
        )
