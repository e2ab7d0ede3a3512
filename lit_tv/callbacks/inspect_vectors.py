"""Look inside a method's residual task vectors after validation and test, and show it in TensorBoard."""

from __future__ import annotations

import json
from collections import defaultdict
from itertools import combinations
from pathlib import Path
from typing import cast

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_warn
from torch.utils.tensorboard import SummaryWriter

from lit_tv.analysis.logit_lens import as_markdown, top_tokens
from lit_tv.analysis.residuals import residual_per_episode, specification
from lit_tv.analysis.similarity import cosine_by_layer
from lit_tv.analysis.token_mass import evolution_figure, token_set_mass
from lit_tv.analysis.tsne import scatter_figure, tsne_2d
from lit_tv.data.datamodules import datamodule_of
from lit_tv.episodes import Episode, Example
from lit_tv.files import write_atomic
from lit_tv.interventions.hooks import record_residual
from lit_tv.methods.residual import BARE, ResidualTaskVectors, at_last_demonstration
from lit_tv.model.vlm import FrozenVLM
from lit_tv.vectors.kinds import ResidualVector, load

TOKEN_SETS = ("input", "task", "answer")


def _name(task: str) -> str:
    return task or "all"


def first_token_ids(vlm: FrozenVLM, words: list[str]) -> set[int]:
    """First token of each word, alone and after a space (as it follows a prompt); unknown tokens dropped."""
    encoded = vlm.tokenizer([text for word in words for text in (word, " " + word)], add_special_tokens=False)
    return {ids[0] for ids in encoded.input_ids if ids} - {vlm.tokenizer.unk_token_id}


class InspectVectors(Callback):
    """Logit lens, representation evolution, t-SNE and cosine similarity of `ResidualTaskVectors.vectors`.

    Runs on rank 0 at the end of validation and test (the vectors and the layer are chosen by then).

    Args:
        top_k: tokens per layer in the logit-lens table (TensorBoard text and ``logit_lens_{stage}.json``).
        queries: queries per task whose last-token logit lens is followed over layers, vector patched.
        task_words: words that name each task (the "task" token set; default the task's name).
        layers: layers of the t-SNE maps (default: the layer the method patches).
        perplexity: t-SNE perplexity (lowered when there are few vectors).
        reference: a task-vector file exported by ResidualTaskVectors (e.g. from the base LLM), compared
            with this run's vectors layer by layer.
        batch_size: episodes per forward.
    """

    def __init__(
        self,
        top_k: int = 10,
        queries: int = 8,
        task_words: dict[str, list[str]] | None = None,
        layers: list[int] | None = None,
        perplexity: float = 30.0,
        reference: str | None = None,
        batch_size: int = 16,
    ) -> None:
        self.top_k = top_k
        self.queries = queries
        self.task_words = task_words or {}
        self.layers = layers
        self.perplexity = perplexity
        self.reference = reference
        self.batch_size = batch_size

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if not isinstance(pl_module, ResidualTaskVectors):
            raise TypeError(
                f"InspectVectors inspects residual task vectors: the model must be a "
                f"lit_tv.methods.residual.ResidualTaskVectors, got {type(pl_module).__name__}"
            )
        if not isinstance(trainer.logger, TensorBoardLogger):
            rank_zero_warn(
                "InspectVectors writes to TensorBoard and trainer.logger is not a TensorBoardLogger: "
                "nothing will be inspected"
            )

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.inspect(trainer, cast(ResidualTaskVectors, pl_module), "val")  # checked in setup

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.inspect(trainer, cast(ResidualTaskVectors, pl_module), "test")

    def inspect(self, trainer: L.Trainer, pl_module: ResidualTaskVectors, stage: str) -> None:
        if not trainer.is_global_zero or not isinstance(trainer.logger, TensorBoardLogger):
            return
        writer, step = trainer.logger.experiment, trainer.global_step
        prefix = f"inspect/{stage}"
        self.log_logit_lens(pl_module, writer, step, prefix, Path(trainer.logger.log_dir) / f"logit_lens_{stage}.json")
        self.log_evolution(pl_module, writer, step, prefix, stage)
        vectors, tasks, specs = self.episode_vectors(pl_module)
        self.log_tsne(pl_module, vectors, tasks, specs, writer, step, prefix)
        for tag, values in self.cosines(pl_module, vectors, tasks, specs).items():
            for layer, value in enumerate(values.tolist()):
                writer.add_scalar(f"{prefix}/cosine/{tag}", value, layer)

    # ---- logit lens --------------------------------------------------------------------------

    def log_logit_lens(
        self, pl_module: ResidualTaskVectors, writer: SummaryWriter, step: int, prefix: str, path: Path
    ) -> None:
        tables = {
            task: top_tokens(pl_module.vlm, vector, self.top_k) for task, vector in pl_module.vectors_of_seed().items()
        }
        for task, table in tables.items():
            writer.add_text(f"{prefix}/logit_lens/{_name(task)}", as_markdown(table), step)
        records = {
            _name(task): [[{"token": token, "probability": probability} for token, probability in row] for row in table]
            for task, table in tables.items()
        }
        write_atomic(path, json.dumps(records, indent=1))

    # ---- representation evolution --------------------------------------------------------------

    def log_evolution(
        self, pl_module: ResidualTaskVectors, writer: SummaryWriter, step: int, prefix: str, stage: str
    ) -> None:
        """Mean logit-lens mass on input / task / answer tokens at the query's last token, per layer and task."""
        data = datamodule_of(pl_module.trainer)
        split = data.val_queries() if stage == "val" else data.test_queries()
        by_task: dict[str, list[Episode]] = defaultdict(list)
        for episode in split:
            by_task[episode.task].append(episode)
        for task, episodes in by_task.items():
            mass = self.token_mass(pl_module, episodes[: self.queries], episodes)
            writer.add_figure(
                f"{prefix}/evolution/{_name(task)}",
                evolution_figure(mass, TOKEN_SETS, f"{_name(task)}: query's last token"),
                step,
            )

    def token_mass(
        self, pl_module: ResidualTaskVectors, queries: list[Episode], task_queries: list[Episode]
    ) -> torch.Tensor:
        """`[layers, 3]`: answers = every first answer token of the task's queries; task = its words; input =
        the query's own tokens that are neither (special tokens left out)."""
        vlm, template = pl_module.vlm, pl_module.template
        task = queries[0].task
        answers = set(vlm.answer_token_ids(task_queries, template).tolist())
        task_ids = first_token_ids(vlm, self.task_words.get(task, [task])) - answers
        special = set(vlm.tokenizer.all_special_ids)
        total = torch.zeros(vlm.layout.num_layers, len(TOKEN_SETS))
        for start in range(0, len(queries), self.batch_size):
            batch = queries[start : start + self.batch_size]
            inputs = vlm.build_inputs(batch, template)
            with torch.no_grad(), pl_module.patching(batch), record_residual(vlm) as recording:
                vlm.last_logits(inputs)
            for row, hidden in enumerate(recording.value):
                ids = set(inputs["input_ids"][row][inputs["attention_mask"][row].bool()].tolist())
                sets = {
                    "input": sorted(ids - special - answers - task_ids),
                    "task": sorted(task_ids),
                    "answer": sorted(answers),
                }
                total += token_set_mass(vlm, hidden, sets).cpu()
        return total / len(queries)

    # ---- vectors of single episodes: t-SNE and cosine ---------------------------------------------

    def episode_vectors(self, pl_module: ResidualTaskVectors) -> tuple[torch.Tensor, list[str], list[str]]:
        """One `[layers, hidden]` vector per support episode (and per instruction), with its task and specification.

        Taken where the method extracts (`position`), in the patched model.
        """
        vlm, hparams = pl_module.vlm, pl_module.hparams
        support = datamodule_of(pl_module.trainer).support_episodes()
        episodes = [at_last_demonstration(e) for e in support] if hparams.position == "last_shot" else support
        vectors = [residual_per_episode(vlm, pl_module.template, episodes, self.batch_size)]
        tasks, specs = [e.task for e in support], [specification(e) for e in support]
        if hparams.source != "exemplars":
            own = list(pl_module.vectors_of_seed())
            instructions = [Episode(query=Example(pl_module.instruction(task))) for task in own]
            vectors.append(residual_per_episode(vlm, BARE, instructions, self.batch_size))
            tasks += own
            specs += ["instruction"] * len(instructions)
        return torch.cat(vectors), tasks, specs

    def log_tsne(
        self,
        pl_module: ResidualTaskVectors,
        vectors: torch.Tensor,
        tasks: list[str],
        specs: list[str],
        writer: SummaryWriter,
        step: int,
        prefix: str,
    ) -> None:
        for layer in self.layers if self.layers is not None else [cast(int, pl_module.layer)]:  # chosen by now
            if not 0 <= layer < vectors.shape[1]:
                raise ValueError(f"InspectVectors layers: layer {layer} is out of range (0 to {vectors.shape[1] - 1})")
            coordinates = tsne_2d(vectors[:, layer], self.perplexity)
            figure = scatter_figure(coordinates, [_name(t) for t in tasks], specs, f"task vectors, layer {layer}")
            writer.add_figure(f"{prefix}/tsne/layer_{layer}", figure, step)

    def cosines(
        self, pl_module: ResidualTaskVectors, vectors: torch.Tensor, tasks: list[str], specs: list[str]
    ) -> dict[str, torch.Tensor]:
        """`[layers]` cosines by tag: per task, between the mean vectors of each pair of specifications (text vs
        image, ...) and between the method's vector and the reference file's (e.g. LLM vs VLM)."""
        groups: dict[tuple[str, str], list[int]] = defaultdict(list)
        for index, key in enumerate(zip(tasks, specs, strict=True)):
            groups[key].append(index)
        means = {key: vectors[rows].mean(0) for key, rows in groups.items()}
        results = {}
        for task in dict.fromkeys(tasks):
            task_specs = sorted(spec for t, spec in means if t == task)
            for first, second in combinations(task_specs, 2):
                results[f"{_name(task)}/{first}_vs_{second}"] = cosine_by_layer(means[task, first], means[task, second])
        if self.reference is not None:
            own = pl_module.vectors_of_seed()
            reference = cast(ResidualVector, load(self.reference, kind=ResidualVector))  # load checks the kind
            for task, vector in zip(reference.tasks, reference.vectors, strict=True):
                if task in own:
                    results[f"{_name(task)}/vs_reference"] = cosine_by_layer(own[task], vector.to(vectors))
        return results
