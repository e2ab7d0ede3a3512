"""MTV (Huang et al., NeurIPS 2024): mean head activations + REINFORCE-selected heads, zero-shot use.

`theta` ([layers, heads], fp32) is the only parameter. Each training step samples head masks from
Bernoulli(sigmoid(theta)), scores every sample in one forward of the query (its last token repeated once
per sample after the shared prefix, per-sample head masks) by the first answer token's cross-entropy,
and steps Adam on the REINFORCE surrogate.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from functools import partial
from pathlib import Path
from typing import Any, Literal, cast

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.trainer.states import TrainerFn
from torch import nn
from torchmetrics import Metric

from lit_tv.analysis.heatmap import head_heatmap
from lit_tv.data.datamodules import Role, datamodule_of
from lit_tv.episodes import Episode
from lit_tv.interventions.hooks import PatchPolicy
from lit_tv.methods.base import FrozenVLMMethod
from lit_tv.methods.checkpoints import checkpoint_folders
from lit_tv.methods.mtv_checks import (
    check_fit_options,
    check_means_recomputed,
    check_transfer_data,
    head_selection_queries,
)
from lit_tv.methods.random_heads import RandomHeadsControl, answers_over_one_prefix
from lit_tv.methods.reinforce import mask_losses, reinforce_surrogate, sampling_probabilities
from lit_tv.model.loading import SHAPES_TOY, VLMOptions
from lit_tv.options import require_at_least, require_between, require_positive
from lit_tv.vectors.file import require_finite
from lit_tv.vectors.kinds import HeadVector, TaskVector

MAX_DRAW_SEED = 2**64 - 1  # what `torch.Generator.manual_seed` takes (a negative seed would alias a large one)


class MTV(FrozenVLMMethod):
    """Multimodal Task Vectors over any FrozenVLM.

    Args:
        model: which frozen model to load and how (`VLMOptions`).
        samples: Bernoulli head-mask samples per query, all in one batched forward (reference: 32).
        learning_rate / theta_init: Adam on theta (reference: 0.1 and -1).
        selection: ``best_of_samples`` (reference: the lowest-loss of `selection_samples` masks on
            `selection_queries` queries), ``pruned_best_of_samples`` (the same, heads with
            sigmoid(theta) < `threshold` never sampled: the reference's Idefics2 setting, 0.8) or
            ``threshold`` (sigmoid(theta) > `threshold`).
        selection_from: which queries score the masks: ``train_split``, the training split's first records in its
            file order (the reference's train[:50], the paper configs'; benchmarks read from files only), or
            ``reinforce_queries``, the first of the seeded REINFORCE queries.
        policy: patch the prompt's last position only, or also every generated token; None: the
            `task_vector` file's (the policy it was scored with), else ``prompt``. The exported file records it.
        fast_path: score the mask samples of a query in one forward of its prompt: the samples are
            copies of the last token after the one prefix, each seeing the prefix and itself
            (`lit_tv.interventions.shared_prefix.fork_last_token`); a model that refuses the 4-D mask gets
            the prefix's KV cache copied per sample (32 x 0.5 MB per prompt token on LLaVA-7B). Off: the full
            prompt repeated once per sample.
        test_heads: ``selected``, or ``random``: the control beside the selected heads, `random_draws` head sets
            of the selected count drawn at random (different per seed and task) and scored on the same queries;
            `test/accuracy` stays the selected heads', `test/random_heads/*` holds the draws' mean, std,
            min, max and how many draws the selected heads beat or tie. Every draw is answered over each
            query's one prefix (`answers_over_one_prefix`), checked against a generate per draw on the first batch.
        draw_seed: seeds the REINFORCE mask samples and the random-heads draws; None: the run's
            ``seed_everything``, read when the run starts (not when the module is built), so runs in one
            process do not depend on their order. Several seeds are several runs (the main job, the
            many-shot and findings commands repeat them and print mean ± std (min-max)).
        task_vector: a saved vector to test/predict with; ``transfer="heads"`` keeps its heads (the vector's or
            the ``--ckpt_path`` checkpoint's) and recomputes the means over this DataModule's support episodes
            with the `MeanActivations` callback (e.g. Flowers -> CUB, with `allow_other_task`); a run that has
            neither (predict's query file) is refused.
        allow_other_task / allow_other_model: use `task_vector` on other tasks (or another benchmark), or
            on a model with other weights of the same layout, on purpose (a warning instead of an error).
        export: where fit writes the task vector (safetensors).
    """

    export_stages = ("fit",)
    scores_per_seed = False
    vector_kind = HeadVector
    vector_method = "mtv"
    # the parameter and buffers, registered in configure_model
    theta: nn.Parameter
    mean_activations: torch.Tensor
    selected_heads: torch.Tensor
    heads_chosen: torch.Tensor

    def __init__(
        self,
        model: VLMOptions = SHAPES_TOY,
        max_new_tokens: int = 1,
        samples: int = 32,
        learning_rate: float = 0.1,
        theta_init: float = -1.0,
        selection: Literal["best_of_samples", "pruned_best_of_samples", "threshold"] = "best_of_samples",
        selection_samples: int = 10,
        selection_queries: int = 50,
        selection_from: Literal["train_split", "reinforce_queries"] = "reinforce_queries",
        threshold: float = 0.5,
        policy: PatchPolicy | None = None,
        fast_path: bool = True,
        test_heads: Literal["selected", "random"] = "selected",
        random_draws: int = 20,
        draw_seed: int | None = None,
        task_vector: str | None = None,
        transfer: Literal["all", "heads"] = "all",
        export: str | None = None,
        heatmap_every_n_steps: int = 20,
        allow_other_task: bool = False,
        allow_other_model: bool = False,
    ) -> None:
        super().__init__(model, max_new_tokens)
        self.save_hyperparameters()
        require_at_least("model.init_args.samples", samples, 2, "the losses are z-normalised across the samples")
        require_at_least("model.init_args.selection_samples", selection_samples, 1)
        require_at_least("model.init_args.selection_queries", selection_queries, 1)
        require_positive("model.init_args.learning_rate", learning_rate, "Adam's step size on theta")
        require_at_least("model.init_args.random_draws", random_draws, 2, "the control is a distribution")
        require_between("model.init_args.draw_seed", draw_seed, 0, MAX_DRAW_SEED, "a torch generator's seeds")
        if selection != "best_of_samples" and not 0 <= threshold < 1:
            raise ValueError(
                f"model.init_args.threshold={threshold} with selection {selection!r}: sigmoid(theta) lies in (0, 1), "
                "so no head would be kept; give a threshold in [0, 1)"
            )
        self.read_task_vector(task_vector)
        # Head masks come from a generator of their own, seeded when the run starts (`setup`) and saved in
        # every checkpoint: a resumed fit draws the masks the uninterrupted fit would have drawn.
        self.mask_generator = torch.Generator()
        self.random_control: RandomHeadsControl | None = None  # the last test's control (`test_heads: random`)
        self._resumed_step: int | None = None  # the global step of the checkpoint a fit resumed from
        self._finish_at_fit_end = False
        self.means_recomputed = False  # set by the `MeanActivations` callback, which fills `mean_activations`
        self.selection_episodes: list[Episode] = []  # what the final heads are scored on, drawn when a fit starts

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["mask_generator"] = self.mask_generator.get_state()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        require_finite(checkpoint["state_dict"]["mean_activations"], "mean_activations", "the checkpoint")
        if self.hparams.transfer == "heads" and self.trainer.state.fn != TrainerFn.FITTING:
            # the checkpoint's heads only: its means (of the fit's tasks) are recomputed on this run's data
            checkpoint["state_dict"]["mean_activations"].zero_()
        self.mask_generator.set_state(checkpoint["mask_generator"])
        self._resumed_step = checkpoint["global_step"]

    def configure_model(self) -> None:
        super().configure_model()
        if hasattr(self, "theta"):
            return
        layout = self.vlm.layout
        shape = (layout.num_layers, layout.num_heads)
        fp32: dict[str, Any] = {"device": self.device, "dtype": torch.float32}  # whatever dtype the VLM runs in
        self.theta = nn.Parameter(torch.full(shape, self.hparams.theta_init, **fp32))
        self.register_buffer("mean_activations", torch.zeros(*shape, layout.head_dim, **fp32))
        self.register_buffer("selected_heads", torch.zeros(shape, dtype=torch.bool, device=self.device))
        # set once the final heads are chosen: a checkpoint from the middle of REINFORCE has none yet
        self.register_buffer("heads_chosen", torch.zeros((), dtype=torch.bool, device=self.device))
        vector = self.task_vector_file
        if isinstance(vector, HeadVector):
            self.theta.data.copy_(vector.theta)
            self.selected_heads.copy_(vector.mask())
            self.heads_chosen.fill_(True)
            if self.hparams.transfer == "all":
                self.mean_activations.copy_(vector.means)

    def data_roles(self, stage: str) -> set[Role]:
        """Fit: support episodes (the means) and REINFORCE queries; test: test queries, and the support
        episodes when the means are recomputed for transferred heads."""
        if stage == "fit":
            return {"support", "train", "val"}
        return super().data_roles(stage) | ({"support"} if self.hparams.transfer == "heads" else set())

    def setup(self, stage: str) -> None:
        if stage == "fit":
            check_fit_options(self.trainer, datamodule_of(self.trainer))
            self.selection_episodes = head_selection_queries(self.hparams, datamodule_of(self.trainer))
        elif self.hparams.transfer == "heads":
            check_means_recomputed(stage, datamodule_of(self.trainer), self.means_recomputed)
        precision = str(self.trainer.precision)
        if precision.endswith("-true") and precision != "32-true":
            raise ValueError(
                f"trainer.precision={precision} would cast theta to low precision; use 32-true or bf16-mixed "
                "and set model.init_args.model.dtype (e.g. bfloat16) for the frozen VLM"
            )
        super().setup(stage)  # claims the outputs: only once the options are known to be good
        self.run_seed = self.hparams.draw_seed if self.hparams.draw_seed is not None else torch.initial_seed()
        self.mask_generator.manual_seed(self.run_seed)  # a resumed fit then restores the checkpoint's state

    def check_data(self, stage: str, data: L.LightningDataModule) -> None:
        if stage != "fit" and self.hparams.transfer == "heads":
            check_transfer_data(stage, data)

    def on_train_start(self) -> None:
        if not self.mean_activations.any():
            raise ValueError(
                "MTV has no mean activations to patch in: add their callback, "
                "--trainer.callbacks+=lit_tv.callbacks.mean_activations.MeanActivations"
            )
        require_finite(self.mean_activations, "mean_activations", "this fit")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam([self.theta], lr=self.hparams.learning_rate)

    def _losses(self, query: Episode, masks: torch.Tensor) -> torch.Tensor:
        losses = mask_losses(self.vlm, self.template, query, self.mean_activations, masks, self.hparams.fast_path)
        return losses.to(self.device)  # a dispatched model's logits may sit elsewhere

    def _sample_masks(self, probabilities: torch.Tensor, count: int) -> torch.Tensor:
        """`count` masks from Bernoulli(`probabilities`), drawn on rank 0 and shared, so every process scores
        the same samples (on the CPU: `mask_generator` lives there, and broadcast pickles, so a CUDA tensor
        would land on cuda:0)."""
        probabilities = probabilities.detach().float().cpu().expand(count, *probabilities.shape)
        masks = torch.bernoulli(probabilities, generator=self.mask_generator).bool()
        return self.trainer.strategy.broadcast(masks, src=0).to(self.device)

    def training_step(self, batch: list[Episode], batch_idx: int) -> torch.Tensor:
        self.heads_chosen.fill_(False)  # theta moves on: heads chosen before (a resumed final checkpoint) are stale
        sampling = sampling_probabilities(self.theta)
        masks = self._sample_masks(sampling, self.hparams.samples)
        losses = torch.stack([self._losses(query, masks) for query in batch]).mean(0)
        if self.trainer.world_size > 1:  # each rank scored its slice of the global batch: every rank holds the mean
            losses = cast(torch.Tensor, self.all_gather(losses)).mean(0)
        surrogate = reinforce_surrogate(sampling, masks, losses)
        probabilities = torch.sigmoid(self.theta.detach())
        self.log_dict(
            {
                "train/loss": losses.mean(),
                "train/mean_sigmoid_theta": probabilities.mean(),
                "train/heads_above_half": (probabilities > 0.5).sum().float(),
            },
            prog_bar=True,
            batch_size=len(batch),
        )
        return surrogate

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        if self.global_step % self.hparams.heatmap_every_n_steps == 0:
            self._log_heatmap()

    def on_fit_start(self) -> None:
        """A fit resumed from its final step's checkpoint, killed before the heads were chosen: Lightning
        skips the loop (and `on_train_end`), so the heads are chosen here and exported at `on_fit_end`."""
        self._finish_at_fit_end = (
            self._resumed_step is not None
            and 0 <= self.trainer.max_steps <= self._resumed_step
            and not self.heads_chosen
        )
        if self._finish_at_fit_end:
            self._choose_heads()

    def on_train_end(self) -> None:
        """Choose the heads (unless a resumed finished fit already did), export, rewrite `last.ckpt`."""
        if not self.heads_chosen:
            self._choose_heads()
        self._finish_fit()

    def on_fit_end(self) -> None:
        if self._finish_at_fit_end:
            self._finish_fit()

    def _choose_heads(self) -> None:
        heads = self.select_heads()
        if not heads.any():
            raise ValueError(
                f"selection {self.hparams.selection!r} (model.init_args.threshold={self.hparams.threshold}) kept no "
                f"head: the largest sigmoid(theta) is {torch.sigmoid(self.theta).max():.3f}; fit again with a lower "
                "--model.init_args.threshold or --model.init_args.selection=best_of_samples, and --overwrite "
                "(this fit's checkpoints are kept)"
            )
        self.selected_heads.copy_(heads)
        self.heads_chosen.fill_(True)

    def _finish_fit(self) -> None:
        self._log_heatmap()
        self.log_series("heads/selected", [int(self.selected_heads.sum())], self.global_step)
        self.export()
        # rewrite each `last.ckpt`: ModelCheckpoint saved it during the last step, before the heads were chosen
        for callback in checkpoint_folders(self.trainer):
            if callback.save_last and callback.dirpath:
                name = f"{callback.CHECKPOINT_NAME_LAST}{callback.FILE_EXTENSION}"
                self.trainer.save_checkpoint(Path(callback.dirpath) / name)

    def _log_heatmap(self) -> None:
        """sigmoid(theta) as a layer x head heatmap on a fixed 0..1 scale, the final heads boxed once chosen."""
        if not isinstance(self.logger, TensorBoardLogger) or self.global_rank != 0:
            return
        figure = head_heatmap(
            torch.sigmoid(self.theta),
            f"MTV head probabilities, step {self.global_step}",
            "sigmoid(theta)",
            self.selected_heads if self.heads_chosen else None,
            limits=(0, 1),
        )
        self.logger.experiment.add_figure("heads/sigmoid_theta", figure, self.global_step)

    @torch.no_grad()
    def select_heads(self) -> torch.Tensor:
        """The final head set: best of sampled masks (optionally only among likely heads) on the queries of
        `selection_from`, or a threshold."""
        probabilities = torch.sigmoid(self.theta)
        if self.hparams.selection == "threshold":
            return probabilities > self.hparams.threshold
        if self.hparams.selection == "pruned_best_of_samples":
            probabilities = probabilities * (probabilities >= self.hparams.threshold)
        masks = self._sample_masks(probabilities, self.hparams.selection_samples)
        losses = torch.stack([self._losses(query, masks) for query in self.selection_episodes]).mean(0)
        # an empty sample replaces nothing (it is zero-shot): chosen only when every sample is empty (refused then)
        return masks[losses.masked_fill(~masks.flatten(1).any(1), torch.inf).argmin()]

    def task_vector(self, heads: torch.Tensor | None = None) -> HeadVector:
        """The means, theta and selected heads (`heads`: another head set, e.g. a random-heads draw) as the vector
        that test patches with and fit exports; built from the buffers, which the checkpoints hold."""
        return HeadVector(
            means=self.mean_activations.float(),
            theta=self.theta.detach().float(),
            heads=HeadVector.indices(self.selected_heads if heads is None else heads),
            tasks=list(getattr(datamodule_of(self.trainer), "tasks", ())),
            method=self.vector_method,
            policy=self.patch_policy(),
        )

    def exported_vectors(self, path: str) -> dict[Path, TaskVector]:
        """The fit's vector, with how its means and heads were found."""
        data, vector = datamodule_of(self.trainer), self.task_vector()
        vector.extra = {
            "iterations": len(data.support_episodes()),
            "seed": getattr(data, "seed", None),
            "samples": self.hparams.samples,
            "steps": self.global_step,
        }
        return {Path(path): vector}

    def on_test_start(self) -> None:
        super().on_test_start()
        if not self.heads_chosen:
            raise ValueError(
                "no heads have been chosen yet: test with the task vector or the last.ckpt that "
                "`lit-tv fit` writes when it ends (model.init_args.task_vector or --ckpt_path)"
            )
        self.random_control = None
        if self.hparams.test_heads == "random":
            tasks = tuple(getattr(datamodule_of(self.trainer), "tasks", ()))
            control = RandomHeadsControl(
                self.selected_heads, self.hparams.random_draws, self.run_seed, tasks, self.make_metric
            )
            self.random_control = control.to(self.device)

    def _score(self, batch: list[Episode], stage: str) -> None:
        """The selected heads, then (the random-heads control) every random head set on the same queries."""
        super()._score(batch, stage)
        if stage == "test" and self.random_control is not None:
            references: list[Sequence[str]] = [episode.query.answers for episode in batch]
            over_prefix = partial(
                answers_over_one_prefix,
                self.vlm,
                self.template,
                batch,
                self.mean_activations,
                max_new_tokens=self.max_new_tokens,
                policy=self.patch_policy(),
            )
            self.random_control.update(
                lambda heads: self.answer(batch, self.task_vector(heads).patching(self.vlm)), references, over_prefix
            )

    def on_test_epoch_end(self) -> None:
        super().on_test_epoch_end()
        if self.random_control is not None:
            logged = self.random_control.logged(self._selected_accuracy())
            self.log_dict({f"test/random_heads/{key}": value for key, value in logged.items()})
            self.log_series("test/random_heads/draw_accuracy", self.random_control.accuracies())  # step: the draw

    def test_notes(self) -> list[str]:
        control = self.random_control
        return [] if control is None else [control.note(self._selected_accuracy())]

    def _selected_accuracy(self) -> float:
        """The test accuracy of the selected heads over every task (the control ranks its draws against it)."""
        return float(cast(Metric, self.accuracy["all"]).compute())

    def test_summary(self, task: str) -> dict[str, object]:
        return {"heads": int(self.selected_heads.sum())}

    def patching(self, batch: list[Episode]) -> AbstractContextManager:
        return self.task_vector().patching(self.vlm)
