"""Function Vectors (Todd et al., ICLR 2024) as a baseline: a few causal heads' mean outputs, summed, added.

Per task: (1) mean out-projection inputs per head at the last position over clean ICL prompts;
(2) the average indirect effect (AIE) of each head on shuffled-label prompts: the rise in probability
of the correct first answer token when that head alone takes its mean activation at the last
position; (3) the FV is the sum of the top-k heads' mean activations passed through their layer's
out-projection; (4) at inference it is added to one layer's output at the query's last position, and with
``policy: every_token`` (the FV reference's generation, the paper configs) at every generated token too.
No parameter is trained: `lit-tv test` computes all of it at test start.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from typing import Literal

import torch
from lightning.pytorch.loggers import TensorBoardLogger

from lit_tv.analysis.heatmap import head_heatmap
from lit_tv.data.datamodules import Role, datamodule_of
from lit_tv.episodes import Episode
from lit_tv.interventions.averaging import mean_head_activations
from lit_tv.interventions.hooks import PatchPolicy
from lit_tv.interventions.shared_prefix import fork_last_token
from lit_tv.methods.base import FrozenVLMMethod
from lit_tv.model.layout import Layout
from lit_tv.model.loading import SHAPES_TOY, VLMOptions
from lit_tv.model.vlm import SUPPORT_SHOTS, FrozenVLM
from lit_tv.options import require_at_least
from lit_tv.prompts import PromptTemplate
from lit_tv.vectors.kinds import ResidualVector


def shuffle_labels(episode: Episode, rng: random.Random) -> Episode:
    """The episode with its shots' answers permuted among the shots: the format stays, the task mapping goes."""
    answers = [shot.answers for shot in episode.shots]
    rng.shuffle(answers)
    return Episode(
        query=episode.query,
        shots=tuple(replace(shot, answers=row) for shot, row in zip(episode.shots, answers, strict=True)),
    )


def single_head_masks(layout: Layout) -> torch.Tensor:
    """Row 0 patches nothing (the corrupted baseline), row 1 + l * heads + h patches head h of layer l alone."""
    heads = layout.num_layers * layout.num_heads
    none = torch.zeros(1, heads, dtype=torch.bool)
    return torch.cat([none, torch.eye(heads, dtype=torch.bool)]).view(1 + heads, layout.num_layers, layout.num_heads)


@torch.inference_mode()
def indirect_effects(
    vlm: FrozenVLM, template: PromptTemplate, prompt: Episode, means: torch.Tensor, rows_per_forward: int = 32
) -> torch.Tensor:
    """Each head's indirect effect on one (corrupted) prompt → fp32 `[layers, heads]`.

    The prompt's prefix runs once (`fork_last_token` with `reuse`); every head then gets one row of a
    last-token step with a per-row head mask, `rows_per_forward` rows at a time. The step is cropped
    off the cache after each chunk, so every chunk branches from the same prefix.
    """
    layout = vlm.layout
    masks = single_head_masks(layout)
    chunk = min(rows_per_forward, len(masks))
    padding = -len(masks) % chunk  # unpatched rows, so every chunk matches the cache's batch size
    masks = torch.cat([masks, masks[:1].expand(padding, -1, -1)])
    step = fork_last_token(vlm, vlm.build_inputs([prompt], template, shots_option=SUPPORT_SHOTS), chunk, reuse=True)
    target = vlm.answer_token_ids([prompt], template)[0]
    probabilities = []
    for rows in masks.split(chunk):
        probabilities.append(step.logits(means, rows).softmax(-1)[:, target])
    probability = torch.cat(probabilities)[: 1 + layout.num_layers * layout.num_heads]
    return (probability[1:] - probability[0]).view(layout.num_layers, layout.num_heads)


def top_heads(scores: torch.Tensor, k: int) -> torch.Tensor:
    """The `k` highest-scoring heads (all of them when there are fewer) → bool mask shaped like `scores`."""
    flat = scores.flatten(-2)
    chosen = flat.topk(min(k, flat.shape[-1]), dim=-1).indices
    return torch.zeros_like(flat, dtype=torch.bool).scatter(-1, chosen, True).view_as(scores)


@torch.no_grad()
def function_vector(vlm: FrozenVLM, means: torch.Tensor, heads: torch.Tensor) -> torch.Tensor:
    """Sum over the selected heads of out_proj(that head's mean alone) - out_proj(0) → fp32 `[hidden]`.

    Subtracting out_proj(0) keeps a projection bias out: it is not any head's contribution.
    """
    layout = vlm.layout
    total = torch.zeros(layout.hidden_size, device=vlm.device)
    dtype = vlm.dtype
    for layer, head in heads.nonzero().tolist():
        alone = torch.zeros(2, layout.num_heads, layout.head_dims[layer], device=vlm.device, dtype=dtype)
        alone[0, head] = layout.narrow_heads(layer, means[layer, head])
        output = layout.out_projections[layer](alone.flatten(-2)).float().to(total.device)
        total += output[0] - output[1]
    return total


class FunctionVectors(FrozenVLMMethod):
    """One function vector per task of the DataModule, added to each query's last position at one layer.

    Args:
        layer: the layer whose output the FV is added to (default num_layers // 3, as the paper).
        top_k: heads summed into the FV (reference: 10; fewer when the model has fewer heads).
        heads: ``shared`` (the paper's universal heads: top-k of the AIE averaged over tasks) or
            ``per_task`` (top-k of each task's own AIE).
        aie_prompts: shuffled-label prompts per task (reference: 25), the task's first support episodes.
        rows_per_forward: heads (+1 unpatched row) per batched last-token step of the AIE. Each row holds
            a copy of the prompt's KV cache (LLaVA-7B: 0.5 MB per token), so this bounds the memory.
        mean_batch_size: episodes per forward for the mean activations.
        seed: seeds the label shuffles.
        policy: add the FV at the prompt's last position only (``prompt``) or also at every generated token
            (``every_token``, as the FV reference generates); None: the `task_vector` file's (the policy it was
            scored with), else ``prompt``. The exported file records it, so `apply_task_vector` repeats it.
        export: where the FVs, heads, AIE and means are written (safetensors).
        task_vector: FVs exported by an earlier run to use instead of computing them (their layer and policy
            too, unless `layer` / `policy` is set).
        allow_other_task / allow_other_model: use a one-task `task_vector` on other tasks, or a vector made
            on a model with other weights of the same layout, on purpose (a warning instead of an error).
    """

    export_stages = ("validate", "test")
    vector_kind = ResidualVector
    vector_method = "function_vectors"

    def __init__(
        self,
        model: VLMOptions = SHAPES_TOY,
        max_new_tokens: int = 1,
        layer: int | None = None,
        top_k: int = 10,
        heads: Literal["shared", "per_task"] = "shared",
        aie_prompts: int = 25,
        rows_per_forward: int = 32,
        mean_batch_size: int = 16,
        seed: int = 0,
        policy: PatchPolicy | None = None,
        task_vector: str | None = None,
        export: str | None = None,
        allow_other_task: bool = False,
        allow_other_model: bool = False,
    ) -> None:
        super().__init__(model, max_new_tokens)
        for name, value in (("top_k", top_k), ("aie_prompts", aie_prompts), ("rows_per_forward", rows_per_forward)):
            require_at_least(f"model.init_args.{name}", value, 1)
        if heads not in ("shared", "per_task"):
            raise ValueError(f"model.init_args.heads must be 'shared' or 'per_task', got {heads!r}")
        self.save_hyperparameters()
        self.read_task_vector(task_vector)
        self.layer = layer
        self.vector: ResidualVector | None = None  # one FV per task: computed at test start, or the file's

    scores_per_seed = False

    def data_roles(self, stage: str) -> set[Role]:
        """Support episodes (means and shuffled-label prompts) besides the scored queries."""
        return super().data_roles(stage) | ({"support"} if self.hparams.task_vector is None else set())

    def configure_model(self) -> None:
        super().configure_model()
        layers = self.vlm.layout.num_layers
        if self.layer is None and isinstance(self.task_vector_file, ResidualVector):
            self.layer = self.task_vector_file.layer
        if self.layer is None:
            self.layer = layers // 3
        if not 0 <= self.layer < layers:
            raise ValueError(
                f"model.init_args.layer={self.layer} is out of range: {self.model_name} has {layers} "
                f"layers (0 to {layers - 1})"
            )

    # ---- computing the vectors ---------------------------------------------------------------

    def average_indirect_effect(self, prompts: Sequence[Episode], means: torch.Tensor) -> torch.Tensor:
        """Mean indirect effect over `prompts` → `[layers, heads]`; ranks share the prompts and sum."""
        layout = self.vlm.layout
        total = torch.zeros(layout.num_layers, layout.num_heads, device=self.device)
        for prompt in prompts[self.global_rank :: self.trainer.world_size]:
            total += indirect_effects(self.vlm, self.template, prompt, means, self.hparams.rows_per_forward).to(total)
        return self.trainer.strategy.reduce(total, reduce_op="sum") / len(prompts)

    def compute_vectors(self) -> None:
        """Means, AIE, heads and FV of every task of the DataModule (one unnamed task when it has none)."""
        data = datamodule_of(self.trainer)
        support = data.support_episodes()
        self.tasks = tuple(getattr(data, "tasks", ())) or ("",)
        means, effects = [], []
        for task in self.tasks:
            episodes = [episode for episode in support if episode.task == task]
            if not episodes:
                raise ValueError(f"no support episodes of task {task!r}: raise data.init_args.support_size")
            means.append(
                mean_head_activations(self.trainer, self.vlm, self.template, episodes, self.hparams.mean_batch_size)
            )
            rng = random.Random(f"{self.hparams.seed}:{task}")
            corrupted = [shuffle_labels(episode, rng) for episode in episodes[: self.hparams.aie_prompts]]
            effects.append(self.average_indirect_effect(corrupted, means[-1]))
        self.means, self.aie = torch.stack(means), torch.stack(effects)
        scores = self.aie.mean(0, keepdim=True).expand_as(self.aie) if self.hparams.heads == "shared" else self.aie
        self.selected_heads = top_heads(scores, self.hparams.top_k)
        fvs = [function_vector(self.vlm, self.means[i], self.selected_heads[i]) for i in range(len(self.tasks))]
        self.vector = ResidualVector(
            vectors=torch.stack(fvs),
            layer=self.layer,
            mode="add",
            policy=self.patch_policy(),
            provenance={"heads": self.selected_heads.to(torch.uint8), "aie": self.aie, "mean_activations": self.means},
            tasks=list(self.tasks),
            method=self.vector_method,
            extra={key: self.hparams[key] for key in ("top_k", "heads", "aie_prompts", "seed")},
        )
        if self.global_rank == 0:
            self._log_aie()
        self.export()

    def _log_aie(self) -> None:
        """Each task's AIE as a layer x head heatmap (diverging scale around 0), the FV's heads boxed."""
        if not isinstance(self.logger, TensorBoardLogger):
            return
        for index, task in enumerate(self.tasks):
            figure = head_heatmap(
                self.aie[index],
                f"average indirect effect: {task or 'all'}",
                "AIE (probability of the answer)",
                self.selected_heads[index],
                diverging=True,
            )
            self.logger.experiment.add_figure(f"fv/aie/{task or 'all'}", figure, self.global_step)

    def task_vector(self) -> ResidualVector:
        if self.vector is None:
            raise ValueError("function vectors are computed at the start of `lit-tv test` or `validate`")
        return self.vector

    # ---- using them ------------------------------------------------------------------------

    def on_validation_start(self) -> None:
        super().on_validation_start()
        if self.vector is None:
            self.compute_vectors()

    def on_test_start(self) -> None:
        super().on_test_start()
        if self.vector is None and isinstance(self.task_vector_file, ResidualVector):
            self.vector = self.task_vector_file
        elif self.vector is None:
            self.compute_vectors()

    def test_summary(self, task: str) -> dict[str, object]:
        """The heads summed into this task's FV as the vector records them (another task: their union) and the layer."""
        vector = self.task_vector()
        heads = vector.provenance.get("heads")
        if heads is not None:
            heads = heads[vector.tasks.index(task)] if task in vector.tasks else heads.any(0)
        return {"heads": None if heads is None else int(heads.sum()), "layer": self.layer}

    def patching(self, batch: list[Episode]) -> AbstractContextManager:
        """Each query's own task's FV at `layer`, with the run's policy (the option, or the file's)."""
        vector = self.task_vector()
        rows = [vector.task_index(episode.task, self.hparams.allow_other_task) for episode in batch]
        return vector.patching(self.vlm, rows, self.patch_policy(), self.layer)
