"""Residual-stream task vectors (Luo, Darrell & Bar): one vector per task, patched across modalities.

A task defined by answered examples (text, image or mixed), by a bare instruction, or by both
(ensemble) becomes the mean decoder-layer output at one position over support episodes; it
replaces (or is added to) the hidden state at a query's last position at one layer, prefill only.
The layer is chosen by validation accuracy (the paper's grid search, which really runs here), and
the vectors may come from another model with the same hidden size (LLM -> VLM transfer).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Literal

import torch
from lightning.pytorch.loggers import TensorBoardLogger

from lit_tv.analysis.heatmap import layer_curve
from lit_tv.averaging import mean_recording
from lit_tv.episodes import Episode, Example
from lit_tv.interventions import patch_residual, record_residual
from lit_tv.methods.base import FrozenVLMMethod
from lit_tv.prompts import PromptTemplate
from lit_tv.task_vectors import check_layout, layout_from_config, load_vectors_by_task, save_task_vector
from lit_tv.vlm import SHAPES_TOY, FrozenVLM, VLMOptions

BARE = PromptTemplate(query="{text}", answer="")


def at_last_demonstration(episode: Episode) -> Episode:
    """The episode cut just before its last shot's answer: its last token is that shot's delimiter."""
    if not episode.shots:
        raise ValueError("extraction at the last demonstration needs episodes with at least one shot")
    return Episode(query=episode.shots[-1], shots=episode.shots[:-1])


class ResidualTaskVectors(FrozenVLMMethod):
    """Cross-modal task vectors; no trainable parameter.

    Args:
        source: ``exemplars`` (the DataModule's support episodes), ``instruction`` (the last token of
            `instructions[task]` alone; default: the DataModule's `instructions`) or ``ensemble``
            (`ensemble_weight` x instruction + (1 - weight) x exemplars).
        position: ``last_shot`` (the last demonstration's answer delimiter, as the reference code)
            or ``query`` (the support episode's final token).
        layer: patch this layer; ``None`` picks the best layer on the validation split.
        mode / scale: ``replace`` the query's hidden state, or ``add`` scale x vector.
        extractor: another model (e.g. the VLM's base LLM, `VLMOptions`) to extract the vectors in.
        task_vector: vectors exported by an earlier run (safetensors) instead of extracting; their layer
            is used unless `layer` is set.
    """

    def __init__(
        self,
        model: VLMOptions = SHAPES_TOY,
        max_new_tokens: int = 1,
        source: Literal["exemplars", "instruction", "ensemble"] = "exemplars",
        instructions: dict[str, str] | None = None,
        ensemble_weight: float = 0.5,
        position: Literal["last_shot", "query"] = "last_shot",
        layer: int | None = None,
        mode: Literal["replace", "add"] = "replace",
        scale: float = 1.0,
        extractor: VLMOptions | None = None,
        extraction_batch_size: int = 16,
        task_vector: str | None = None,
        export: str | None = None,
    ) -> None:
        super().__init__(model, max_new_tokens)
        self.save_hyperparameters()
        # jsonargparse hands an optional dataclass over as a plain dict
        self.extractor = VLMOptions(**extractor) if isinstance(extractor, dict) else extractor
        if task_vector is not None:  # refuse a file made for another model before its weights load
            check_layout(task_vector, layout_from_config(model.name, model.trust_remote_code))
        self.layer = layer
        self.vectors: dict[str, torch.Tensor] = {}

    # ---- extraction -------------------------------------------------------------------------

    def _mean_residual(self, vlm: FrozenVLM, episodes: list[Episode], template: PromptTemplate) -> torch.Tensor:
        """Mean decoder-layer outputs at the last position → `[layers, hidden]` (fp32, rank-synced)."""
        return mean_recording(self.trainer, vlm, template, episodes, record_residual,
                              self.hparams.extraction_batch_size, "task vectors")

    def extract(self) -> dict[str, torch.Tensor]:
        """One `[layers, hidden]` vector per task of the DataModule."""
        data = self.trainer.datamodule
        extractor = self.extractor
        vlm = extractor.load(str(self.device)) if extractor else self.vlm
        if vlm.layout.hidden_size != self.vlm.layout.hidden_size:
            raise ValueError(f"extractor {extractor.name} has hidden size {vlm.layout.hidden_size}, "
                             f"the patched model {self.vlm.layout.hidden_size}")
        support = data.support_episodes()
        vectors = {}
        for task in data.tasks:
            parts = {}
            if self.hparams.source in ("exemplars", "ensemble"):
                episodes = [e for e in support if e.task == task]
                if self.hparams.position == "last_shot":
                    episodes = [at_last_demonstration(e) for e in episodes]
                parts["exemplars"] = self._mean_residual(vlm, episodes, self.template)
            if self.hparams.source in ("instruction", "ensemble"):
                instruction = Episode(query=Example(self.instruction(task)))
                parts["instruction"] = self._mean_residual(vlm, [instruction], BARE)
            weight = self.hparams.ensemble_weight
            vectors[task] = (weight * parts["instruction"] + (1 - weight) * parts["exemplars"]
                             if len(parts) == 2 else next(iter(parts.values())))
        return vectors

    def instruction(self, task: str) -> str:
        """The task's instruction: from the config, else from the DataModule (e.g. the reference's)."""
        instructions = self.hparams.instructions or getattr(self.trainer.datamodule, "instructions", None) or {}
        if task not in instructions:
            raise ValueError(f"source={self.hparams.source!r} needs an instruction for task {task!r}: set "
                             f"model.init_args.instructions (has {sorted(instructions)})")
        return instructions[task]

    def _ensure_vectors(self) -> None:
        if self.vectors:
            return
        if self.hparams.task_vector is None:
            self.vectors = self.extract()
            return
        vectors, layer = load_vectors_by_task(self.hparams.task_vector, "vectors", self.trainer.datamodule.tasks)
        self.vectors = {task: vector.to(self.device) for task, vector in vectors.items()}
        if self.layer is None:
            self.layer = layer

    # ---- patching and the layer grid search ------------------------------------------------------

    def _rows(self, batch: list[Episode]) -> torch.Tensor:
        """Each query's own task vector, stacked → `[batch, layers, hidden]`."""
        return torch.stack([self.vectors[episode.task] for episode in batch])

    def _patch(self, batch: list[Episode], layer: int) -> AbstractContextManager:
        return patch_residual(self.vlm, layer, self._rows(batch)[:, layer], mode=self.hparams.mode,
                              scale=self.hparams.scale)

    def test_summary(self, task: str) -> dict[str, object]:
        return {"layer": self.layer}

    def patching(self, batch: list[Episode]) -> AbstractContextManager:
        return self._patch(batch, self.layer)

    @torch.no_grad()
    def layer_hits(self, batch: list[Episode]) -> torch.Tensor:
        """First-token hits of the batch with the vector patched at each layer → `[layers]`."""
        inputs = self.vlm.build_inputs(batch, self.template)
        targets = self.vlm.answer_token_ids(batch, self.template)
        hits = []
        for layer in range(self.vlm.layout.num_layers):
            with self._patch(batch, layer):
                hits.append((self.vlm.last_logits(inputs).argmax(-1) == targets).sum())
        return torch.stack(hits).float().to(self.device)

    def _choose_layer(self, hits: torch.Tensor, queries: torch.Tensor) -> None:
        """Keep the layer with the best validation accuracy; log the whole curve."""
        accuracy = hits / queries
        self.layer = int(accuracy.argmax())
        if isinstance(self.logger, TensorBoardLogger) and self.global_rank == 0:
            for layer, value in enumerate(accuracy.tolist()):
                self.logger.experiment.add_scalar("val/accuracy_by_layer", value, layer)
            self.logger.experiment.add_scalar("val/best_layer", self.layer, self.global_step)
            self.logger.experiment.add_scalar("val/best_accuracy", accuracy.max(), self.global_step)
            self.logger.experiment.add_figure(
                "val/accuracy_by_layer_plot",
                layer_curve(accuracy.tolist(), "validation accuracy with the vector at each layer", best=self.layer),
                self.global_step)

    def on_validation_start(self) -> None:
        self._ensure_vectors()
        self.grid_hits = torch.zeros(self.vlm.layout.num_layers, device=self.device)
        self.grid_queries = torch.zeros((), device=self.device)

    def validation_step(self, batch: list[Episode], batch_idx: int) -> None:
        self.grid_hits += self.layer_hits(batch)
        self.grid_queries += len(batch)

    def on_validation_epoch_end(self) -> None:
        self._reduce_and_choose()
        self._export()

    def _reduce_and_choose(self) -> None:
        if not self.grid_queries:
            raise ValueError("the layer grid search needs validation queries: set data.init_args.val_size > 0 "
                             "or fix model.init_args.layer")
        strategy = self.trainer.strategy
        self._choose_layer(strategy.reduce(self.grid_hits, reduce_op="sum"),
                           strategy.reduce(self.grid_queries, reduce_op="sum"))

    def on_test_start(self) -> None:
        """Vectors from the support episodes, then (without a fixed layer) the grid search on validation."""
        super().on_test_start()
        self._ensure_vectors()
        if self.layer is None:
            self.on_validation_start()
            for index, batch in enumerate(self.trainer.datamodule.val_dataloader()):
                self.validation_step(batch, index)
            self._reduce_and_choose()
        self._export()

    def _export(self) -> None:
        if self.hparams.export and self.global_rank == 0:
            self.export(self.hparams.export)

    def export(self, path: str) -> None:
        data = self.trainer.datamodule
        tasks = list(self.vectors)
        save_task_vector(path, {"vectors": torch.stack([self.vectors[task] for task in tasks])},
                         {"method": "residual", "model": self.model_name,
                          "extractor": self.extractor.name if self.extractor else "", "tasks": tasks,
                          "layer": self.layer, "source": self.hparams.source,
                          "position": self.hparams.position, "mode": self.hparams.mode,
                          "scale": self.hparams.scale, "layout": self.vlm.layout.signature(),
                          "benchmark": type(data).__name__, "seed": getattr(data, "seed", None)})
