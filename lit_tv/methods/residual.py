"""Residual-stream task vectors (Luo, Darrell & Bar): one vector per task, patched across modalities.

A task defined by answered examples (text, image or mixed), by a bare instruction, or by both
(ensemble) becomes the mean decoder-layer output at one position over support episodes; it
replaces (or is added to) the hidden state at a query's last position at one layer, prefill only.
The layer is chosen by validation accuracy (the paper's grid search, which really runs here), and
the vectors may come from another model with the same hidden size (LLM -> VLM transfer).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import replace
from pathlib import Path
from typing import Literal

import torch
from lightning.pytorch.loggers import TensorBoardLogger

from lit_tv.analysis.heatmap import layer_curve
from lit_tv.console import task_table
from lit_tv.data.datamodules import Role, datamodule_of
from lit_tv.episodes import Episode, Example
from lit_tv.interventions.averaging import mean_recording
from lit_tv.interventions.hooks import record_residual
from lit_tv.methods.base import FrozenVLMMethod
from lit_tv.model.loading import SHAPES_TOY, VLMOptions
from lit_tv.model.vlm import FrozenVLM
from lit_tv.prompts import PromptTemplate
from lit_tv.vectors.kinds import ResidualVector, TaskVector

BARE = PromptTemplate(query="{text}", answer="")
Group = tuple[int, str]  # (data seed, task)


def seed_path(path: str | Path, seed: int, seeds: list[int]) -> Path:
    """Where one data seed's vectors go: `path` itself for one seed, else `<stem>.seed<N>.<ext>`."""
    return Path(path) if len(seeds) == 1 else Path(path).with_suffix(f".seed{seed}{Path(path).suffix}")


def at_last_demonstration(episode: Episode) -> Episode:
    """The episode cut just before its last shot's answer: its last token is that shot's delimiter."""
    if not episode.shots:
        raise ValueError("extraction at the last demonstration needs episodes with at least one shot")
    return Episode(query=episode.shots[-1], shots=episode.shots[:-1], seed=episode.seed)


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
        allow_other_task / allow_other_model: use a one-task `task_vector` on other tasks, or a vector made
            on a model with other weights of the same layout, on purpose (a warning instead of an error).
    """

    export_stages = ("validate", "test")
    vector_kind = ResidualVector
    vector_method = "residual"

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
        allow_other_task: bool = False,
        allow_other_model: bool = False,
    ) -> None:
        super().__init__(model, max_new_tokens)
        self.save_hyperparameters()
        # jsonargparse hands an optional dataclass over as a plain dict
        self.extractor = VLMOptions(**extractor) if isinstance(extractor, dict) else extractor
        self.read_task_vector(task_vector)
        self.layer = layer
        self.vector: ResidualVector | None = None  # one row per (data seed, task) of `groups()`, extracted or read

    def data_roles(self, stage: str) -> set[Role]:
        """Support episodes (the vectors), validation queries for the grid search, test queries."""
        if stage == "validate":
            return {"support", "val"}
        roles: set[Role] = {"support", "test"}
        if self.layer is None:
            roles.add("val")  # the layer search's queries
        return roles

    # ---- extraction -------------------------------------------------------------------------

    def _mean_residual(self, vlm: FrozenVLM, episodes: list[Episode], template: PromptTemplate) -> torch.Tensor:
        """Mean decoder-layer outputs at the last position → `[layers, hidden]` (fp32, rank-synced)."""
        return mean_recording(
            self.trainer, vlm, template, episodes, record_residual, self.hparams.extraction_batch_size, "task vectors"
        )

    def extract(self) -> dict[Group, torch.Tensor]:
        """One `[layers, hidden]` vector per data seed and task of the DataModule."""
        data = datamodule_of(self.trainer)
        extractor = self.extractor
        vlm = FrozenVLM.from_options(extractor, str(self.device)) if extractor else self.vlm
        if extractor is not None and vlm.layout.hidden_size != self.vlm.layout.hidden_size:
            raise ValueError(
                f"extractor {extractor.name} has hidden size {vlm.layout.hidden_size}, "
                f"the patched model {self.vlm.layout.hidden_size}"
            )
        support = data.support_episodes()
        instructions = (
            {
                task: self._mean_residual(vlm, [Episode(query=Example(self.instruction(task)))], BARE)
                for task in data.tasks
            }
            if self.hparams.source in ("instruction", "ensemble")
            else {}
        )
        vectors = {}
        for seed, task in self.groups():
            parts = {}
            if self.hparams.source in ("exemplars", "ensemble"):
                episodes = [e for e in support if (e.seed, e.task) == (seed, task)]
                if not episodes:
                    raise ValueError(
                        f"no support episodes of task {task!r} (seed {seed}): raise data.init_args.support_size"
                    )
                if self.hparams.position == "last_shot":
                    episodes = [at_last_demonstration(e) for e in episodes]
                parts["exemplars"] = self._mean_residual(vlm, episodes, self.template)
            if instructions:
                parts["instruction"] = instructions[task]
            weight = self.hparams.ensemble_weight
            vectors[seed, task] = (
                weight * parts["instruction"] + (1 - weight) * parts["exemplars"]
                if len(parts) == 2
                else next(iter(parts.values()))
            )
        return vectors

    def vectors_of_seed(self, seed: int | None = None) -> dict[str, torch.Tensor]:
        """{task: vector} of one data seed (default: the run's first), e.g. to inspect or compare them."""
        vectors = self.task_vector().vectors
        seed = min(self.data_seeds) if seed is None else seed
        return {task: row for (row_seed, task), row in zip(self.groups(), vectors, strict=True) if row_seed == seed}

    def groups(self) -> list[Group]:
        """(data seed, task) pairs, in a fixed order: one vector and one grid-search accuracy each."""
        return [(seed, task) for seed in self.data_seeds for task in datamodule_of(self.trainer).tasks]

    def instruction(self, task: str) -> str:
        """The task's instruction: from the config, else from the DataModule (e.g. the reference's)."""
        instructions = self.hparams.instructions or getattr(datamodule_of(self.trainer), "instructions", None) or {}
        if task not in instructions:
            raise ValueError(
                f"source={self.hparams.source!r} needs an instruction for task {task!r}: set "
                f"model.init_args.instructions (has {sorted(instructions)})"
            )
        return instructions[task]

    def _ensure_vectors(self) -> None:
        """Every group's vector, read (with its layer unless `layer` is set) or extracted, patched as `mode` says."""
        if self.vector is not None:
            return
        file, groups = self.task_vector_file, self.groups()
        if isinstance(file, ResidualVector):
            seeds = self.data_seeds
            if len(seeds) > 1:
                raise ValueError(
                    f"model.init_args.task_vector holds the vectors of one data seed; data.init_args.seeds "
                    f"is {seeds}: run once per seed, each with its own file"
                )
            vectors = file.vectors[[file.task_index(task, self.hparams.allow_other_task) for _, task in groups]]
            self.layer = file.layer if self.layer is None else self.layer
        else:
            extracted = self.extract()
            vectors = torch.stack([extracted[group] for group in groups])
        self.vector = ResidualVector(
            vectors=vectors,
            layer=self.layer,
            mode=self.hparams.mode,
            scale=self.hparams.scale,
            policy=self.patch_policy(),
            tasks=[task for _, task in groups],
            method=self.vector_method,
            extra={
                "extractor": self.extractor.name if self.extractor else "",
                "extractor_revision": self.extractor.revision if self.extractor else None,
                "source": self.hparams.source,
                "position": self.hparams.position,
            },
        )

    def task_vector(self) -> ResidualVector:
        assert self.vector is not None, "the vectors are read or extracted when validate or test starts"
        return self.vector

    # ---- patching and the layer grid search ------------------------------------------------------

    def _patch(self, batch: list[Episode], layer: int) -> AbstractContextManager:
        """Each query's own vector (its seed's and task's) at `layer`."""
        groups = self.groups()
        return self.task_vector().patching(self.vlm, [groups.index((e.seed, e.task)) for e in batch], layer=layer)

    def test_summary(self, task: str) -> dict[str, object]:
        return {"layer": self.layer}

    def patching(self, batch: list[Episode]) -> AbstractContextManager:
        assert self.layer is not None  # given, read from the vector, or found by the layer search before test
        return self._patch(batch, self.layer)

    @torch.no_grad()
    def layer_scores(self, batch: list[Episode]) -> torch.Tensor:
        """Scores of the batch's answers with the vector patched at each layer → `[batch, layers]`.

        Answers are generated and scored exactly as the test does (the DataModule's metric, e.g. the prefix
        match), so the chosen layer is the best one by the test's own rule.
        """
        inputs = self.vlm.build_inputs(batch, self.template, self.max_new_tokens)
        metric = datamodule_of(self.trainer).metric()
        columns = []
        for layer in range(self.vlm.layout.num_layers):
            with self._patch(batch, layer):
                answers = self.vlm.generate(inputs, max_new_tokens=self.max_new_tokens)
            columns.append(
                [metric.score(answer, episode.query.answers) for answer, episode in zip(answers, batch, strict=True)]
            )
        return torch.tensor(columns, device=self.device).T

    def _choose_layer(self, hits: torch.Tensor, queries: torch.Tensor) -> None:
        """The first layer of best accuracy averaged over (seed, task) groups (the reference's rule); log the curve.

        `hits` is `[groups, layers]`, `queries` `[groups]`; groups without validation queries are left out.
        """
        present = queries > 0
        by_group = hits[present] / queries[present, None]
        accuracy = by_group.mean(0)
        self.layer = int(accuracy.argmax())  # torch.argmax returns the first maximum
        self._print_grid(present, by_group, accuracy)
        self.log_series("val/accuracy_by_layer", accuracy.tolist())  # step: the layer
        self.log_series("val/best_layer", [self.layer], self.global_step)
        self.log_series("val/best_accuracy", [float(accuracy.max())], self.global_step)
        if isinstance(self.logger, TensorBoardLogger) and self.global_rank == 0:
            self.logger.experiment.add_figure(
                "val/accuracy_by_layer_plot",
                layer_curve(accuracy.tolist(), "validation accuracy with the vector at each layer", best=self.layer),
                self.global_step,
            )

    def _print_grid(self, present: torch.Tensor, by_group: torch.Tensor, accuracy: torch.Tensor) -> None:
        """`lit-tv validate` (the grid search alone) prints every layer's accuracy and the layer chosen; a test
        prints the chosen layer in its own table."""
        trainer = self._trainer  # private: no public "attached to a Trainer?"; None when called directly (tests)
        if trainer is None or trainer.state.fn != "validate" or not trainer.validate_loop.verbose or self.global_rank:
            return
        groups: list[Group] = [group for group, kept in zip(self.grid_groups, present.tolist(), strict=True) if kept]
        one_seed = len({seed for seed, _ in groups}) == 1
        labels = [task if one_seed else f"{task}@{seed}" for seed, task in groups]
        rows = {
            str(layer): {
                "accuracy": float(accuracy[layer]),
                **{label: float(by_group[row, layer]) for row, label in enumerate(labels)},
                "chosen": "<-" if layer == self.layer else "",
            }
            for layer in range(len(accuracy))
        }
        print(
            f"\n{type(self).__name__} on {type(datamodule_of(self.trainer)).__name__} ({self.model_name}), validation "
            f"accuracy with the vectors at each layer: layer {self.layer} chosen\n"
            + task_table(rows, ["accuracy", *labels, "chosen"], first="layer")
        )

    def on_validation_start(self) -> None:
        self._ensure_vectors()
        self.grid_groups = self.groups()
        self.grid_hits = torch.zeros(len(self.grid_groups), self.vlm.layout.num_layers, device=self.device)
        self.grid_queries = torch.zeros(len(self.grid_groups), device=self.device)

    def validation_step(self, batch: list[Episode], batch_idx: int) -> None:
        rows = torch.tensor([self.grid_groups.index((e.seed, e.task)) for e in batch], device=self.device)
        self.grid_hits.index_add_(0, rows, self.layer_scores(batch))
        self.grid_queries.index_add_(0, rows, torch.ones(len(batch), device=self.device))

    def on_validation_epoch_end(self) -> None:
        self._reduce_and_choose()
        self.export()

    def _reduce_and_choose(self) -> None:
        if not self.grid_queries.sum():
            raise ValueError(
                "the layer grid search needs validation queries: set data.init_args.val_size > 0 "
                "or fix model.init_args.layer"
            )
        strategy = self.trainer.strategy
        self._choose_layer(
            strategy.reduce(self.grid_hits, reduce_op="sum"), strategy.reduce(self.grid_queries, reduce_op="sum")
        )

    def on_test_start(self) -> None:
        """Vectors from the support episodes, then (without a fixed layer) the grid search on validation."""
        super().on_test_start()
        self._ensure_vectors()
        if self.layer is None:
            self.on_validation_start()
            for index, batch in enumerate(datamodule_of(self.trainer).val_dataloader()):
                self.validation_step(batch, index)
            self._reduce_and_choose()
        self.export()

    def outputs(self, stage: str) -> list[Path]:
        """The export is one file per data seed: the run claims each of them (an earlier run's is refused)."""
        export, seeds = self.hparams.export, self.data_seeds
        return [
            target
            for path in super().outputs(stage)
            for target in ([seed_path(path, seed, seeds) for seed in seeds] if str(path) == str(export) else [path])
        ]

    def exported_vectors(self, path: str) -> dict[Path, TaskVector]:
        """One file of per-task vectors per data seed (`seed_path`), at the layer the run used."""
        vector, seeds = self.task_vector(), self.data_seeds
        by_seed = {seed: self.vectors_of_seed(seed) for seed in seeds}
        return {
            seed_path(path, seed, seeds): replace(
                vector,
                vectors=torch.stack(list(rows.values())),
                tasks=list(rows),
                layer=self.layer,
                extra={**vector.extra, "seed": seed},
            )
            for seed, rows in by_seed.items()
        }
