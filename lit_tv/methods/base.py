"""What every method shares: a lazily loaded frozen VLM kept out of state_dict, and scored test steps."""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import ClassVar, cast

import lightning as L
from lightning.fabric.utilities.data import AttributeDict
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import nn
from torchmetrics import Metric

from lit_tv.console import task_table
from lit_tv.data.datamodules import Role, datamodule_of
from lit_tv.episodes import Episode
from lit_tv.files import OutputLock
from lit_tv.interventions.hooks import PatchPolicy
from lit_tv.methods.checkpoints import check_identity, checkpoint_entry, checkpoint_folders, fitted_on
from lit_tv.metrics import ExactMatch
from lit_tv.model.loading import SHAPES_TOY, ModelLoadError, VLMOptions
from lit_tv.model.vlm import FrozenVLM
from lit_tv.options import require_at_least, require_file_path
from lit_tv.prompts import PromptTemplate
from lit_tv.spread import format_spread, spread
from lit_tv.vectors.base import config_block
from lit_tv.vectors.file import layout_from_config
from lit_tv.vectors.fingerprint import model_fingerprint
from lit_tv.vectors.fitted_on import FittedOn
from lit_tv.vectors.kinds import TaskVector, load
from lit_tv.vectors.scores import SCORES_FILE, write_scores

_SEED = "seed_"


def _seed_key(seed: int) -> str:
    return f"{_SEED}{seed}"


class FrozenVLMMethod(L.LightningModule):
    """Base of the methods.

    The VLM is not a registered submodule: its weights never enter a checkpoint, an optimizer or
    DDP's broadcast, and it is loaded in `configure_model` directly on the right device. So Lightning
    never moves or wraps it, which a model dispatched over several devices (`device_map`) relies on.

    `max_new_tokens` defaults to 1: the built-in shapes world's answers (and the cross-modal tasks') are one
    word, and text generated past it fails their exact or prefix match; open VQA sets 10, the MTV reference's
    limit (every VQA config says so).
    """

    scores_per_seed: ClassVar[bool] = True  # whether a run over several data seeds is meaningful
    vector_kind: ClassVar[type[TaskVector] | None] = None  # the kind of task vector the method reads and exports
    vector_method: ClassVar[str] = ""  # the method name its vectors carry

    def __init__(self, model: VLMOptions = SHAPES_TOY, max_new_tokens: int = 1) -> None:
        super().__init__()
        model.path  # noqa: B018  # resolved now: a bad path fails here, before any data or weights are touched
        require_at_least("model.init_args.max_new_tokens", max_new_tokens, 1)
        self.model_options = model
        self.model_name = model.name
        self.max_new_tokens = max_new_tokens
        self._vlm: FrozenVLM | None = None
        self.strict_loading = False
        self.task_vector_file: TaskVector | None = None
        self.exported_files: list[Path] = []  # the vector files this process's `export` wrote
        self.overwrite_outputs = False  # `--overwrite`: this run may replace an earlier run's outputs
        self.resumes_fit = False  # `fit --ckpt_path`: the checkpoint folder holds this fit's own checkpoints
        self.checkpoint_fitted_on: FittedOn | None = None  # of the fit whose checkpoint was loaded

    def read_task_vector(self, path: str | None) -> None:
        """The `task_vector` option: read (checksums) and checked against the model's layout and this method
        now, before any weights load; against the run's tasks at setup and the model's weights once loaded."""
        if path is not None:
            self.task_vector_file = load(path, kind=self.vector_kind, option="model.init_args.task_vector")
            self.task_vector_file.check(layout_from_config(self.model_options), method=self.vector_method)

    def patch_policy(self) -> PatchPolicy:
        """The run's `policy` option when it sets one (explicit, so it wins, as `apply`'s argument does), else
        the `task_vector` file's (the policy it was scored with), else ``prompt``."""
        policy = getattr(self.hparams, "policy", None)
        file = self.task_vector_file
        return policy or (file.policy if file is not None else "prompt")

    def task_vector(self) -> TaskVector:
        """The vector the method patches its queries with (through its `patching`) and exports."""
        raise NotImplementedError(f"{type(self).__name__} makes no task vector")

    def exported_vectors(self, path: str) -> dict[Path, TaskVector]:
        """The files `export` writes: the method's vector at `path`."""
        return {Path(path): self.task_vector()}

    def export(self) -> None:
        """Write the `export` option's file(s), each vector stamped with the model and data it was made on
        (rank 0; the run's output lock cleared the paths, so an earlier run's file is replaced)."""
        path = getattr(self.hparams, "export", None)
        if not path or self.global_rank:
            return
        data = datamodule_of(self.trainer)
        made = {
            **self.usage(),
            "benchmark": type(data).__name__,
            "shots": getattr(data, "shots", None),
            "config": {"model": config_block(self.hparams), "data": config_block(getattr(data, "hparams", {}))},
        }
        for target, vector in self.exported_vectors(path).items():
            vector.extra = {**made, **vector.extra}
            vector.with_model(self.vlm.model, self.model_name, self.model_options.revision).save(target, overwrite=True)
            self.exported_files.append(target)

    def usage(self) -> dict[str, object]:
        """How this run prompts and answers, as a vector file records it (`TaskVector.usage`)."""
        return {
            "prompt": asdict(self.template),
            "prompt_wrap": self.model_options.prompt_wrap,
            "image_placeholder": self.vlm.image_placeholder,
            "max_new_tokens": self.max_new_tokens,
            "patch_position": "last_prompt_token",  # where every lit_tv method patches (and `apply` does)
        }

    @property
    def hparams(self) -> AttributeDict:
        """Lightning's, typed as what `save_hyperparameters` stores (it declares a plain MutableMapping)."""
        return cast(AttributeDict, super().hparams)

    @property
    def vlm(self) -> FrozenVLM:
        if self._vlm is None:
            raise ModelLoadError("the VLM is loaded in configure_model(); run through a Trainer or call it first")
        return self._vlm

    def configure_model(self) -> None:
        if self._vlm is None:
            template = getattr(self, "template", None)  # set in setup(); absent when configured outside a run
            vlm = FrozenVLM.from_options(self.model_options, str(self.device), chat=bool(template and template.chat))
            object.__setattr__(self, "_vlm", vlm)  # bypass nn.Module registration on purpose (see class doc)
            if self.task_vector_file is not None:
                self.task_vector_file.check_model(vlm.model, self.hparams.allow_other_model)
                self._compare_usage(self.task_vector_file)

    def _compare_usage(self, vector: TaskVector) -> None:
        """A vector patched into prompts of another form than it was made with is a different intervention: say
        which fields differ (the run's options win), or which the file does not record."""
        if not hasattr(self, "template"):  # configured outside a run (no DataModule): nothing to compare yet
            return
        run = self.usage()
        differences = vector.differences(run)
        if differences:
            rank_zero_warn(
                f"{vector.where} was made with another prompt or generation than this run's (file's -> run's): "
                f"{'; '.join(differences)}; the run's are used"
            )
        unknown = [name for name in run if name not in vector.usage]
        if unknown:
            rank_zero_info(
                f"{vector.where} does not record its {', '.join(unknown)} (exported by an earlier lit_tv): unchecked"
            )

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        layout, fingerprint = self.vlm.layout.signature(), model_fingerprint(self.vlm.model)
        checkpoint["lit_tv"] = checkpoint_entry(self, layout, fingerprint, datamodule_of(self.trainer))

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """The CLI checks method and layout before the model loads; the weights are checked here, once loaded
        (and all of it for a checkpoint handed to a Trainer directly)."""
        path = self.trainer.ckpt_path or "checkpoint"
        check_identity(checkpoint, path, self, self.vlm.layout.signature(), self.vlm.model)
        self.checkpoint_fitted_on = fitted_on(checkpoint)

    def fitted_elsewhere(self) -> FittedOn | None:
        """What the loaded checkpoint or task vector was fitted on when this run is on other tasks
        (`allow_other_task`): the test table's title names it."""
        fitted = self.task_vector_file.fitted_on if self.task_vector_file is not None else self.checkpoint_fitted_on
        return fitted if fitted is not None and not fitted.serves(FittedOn.of(datamodule_of(self.trainer))) else None

    # the stages in which the method writes `export` (its task vector)
    export_stages: ClassVar[tuple[str, ...]] = ()

    def outputs(self, stage: str) -> list[Path]:
        """Files and folders this run writes that no other run may write at the same time."""
        export = getattr(self.hparams, "export", None)
        paths = [Path(export)] if export and stage in self.export_stages else []
        if stage == "fit":
            paths += [Path(callback.dirpath) for callback in checkpoint_folders(self.trainer) if callback.dirpath]
        return paths + [scores] if (scores := self.scores_path(stage)) else paths

    def scores_path(self, stage: str) -> Path | None:
        """Where a test that uses or exports a task vector writes its scores: its logger's run folder (a run
        without a logger writes none)."""
        log_dir = getattr(self.logger, "log_dir", None)
        export = getattr(self.hparams, "export", None) and "test" in self.export_stages
        uses = self.task_vector_file is not None or self.exported_files or export
        return Path(log_dir) / SCORES_FILE if stage == "test" and uses and isinstance(log_dir, str) else None

    @property
    def data_seeds(self) -> list[int]:
        """The DataModule's data seeds (one for a DataModule without them, e.g. a query file)."""
        return list(getattr(datamodule_of(self.trainer), "seeds", [0]))

    def setup(self, stage: str) -> None:
        """The prompt format belongs to the benchmark: take it from the DataModule. Outputs are claimed
        (refused if a live run is writing them) before any data pass or weights load."""
        self.template: PromptTemplate = datamodule_of(self.trainer).template
        seeds = self.data_seeds
        if len(seeds) > 1 and not self.scores_per_seed:
            raise ValueError(
                f"data.init_args.seeds={seeds}: {type(self).__name__} runs one data seed per fit (its "
                "vectors would mix seeds); run once per seed, --data.init_args.seed=N"
            )
        if self.model_options.device_map is not None and self.trainer.world_size > 1:  # before configure_model
            raise ValueError(
                f"model.device_map={self.model_options.device_map!r} spreads one model over this node's devices, "
                f"but the trainer runs {self.trainer.world_size} processes, each of which would load its own "
                "copy over the same devices: run a dispatched model in one process (trainer.devices: 1, no "
                "ddp), or drop model.device_map and use DDP with one model per GPU"
            )
        if self.task_vector_file is not None and stage != "predict":  # predict answers the user's own queries
            self.task_vector_file.check_tasks(FittedOn.of(datamodule_of(self.trainer)), self.hparams.allow_other_task)
        export = getattr(self.hparams, "export", None)
        if export and stage in self.export_stages:
            require_file_path("model.init_args.export", export)
        self._output_lock = OutputLock(
            self.outputs(stage) if self.global_rank == 0 else [],
            "model.init_args.export, the ModelCheckpoint dirpath, or run it elsewhere",
            overwrite=self.overwrite_outputs,
            inputs=[self.task_vector_file.path] if self.task_vector_file and self.task_vector_file.path else [],
            continued=[folder.dirpath for folder in checkpoint_folders(self.trainer) if folder.dirpath]
            if self.resumes_fit
            else [],
        )
        self._output_lock.acquire()

    def teardown(self, stage: str) -> None:
        self._output_lock.release()

    def check_data(self, stage: str, data: L.LightningDataModule) -> None:
        """Refuse data this method cannot use in `stage`; the CLI calls it before any callback claims an output."""

    def data_roles(self, stage: str) -> set[Role]:
        """The episode roles this method uses in `stage`: the DataModule draws only these, so a role it does
        not use (REINFORCE queries in an ICL test) takes no records from the others."""
        by_stage: dict[str, set[Role]] = {"fit": {"train", "val"}, "validate": {"val"}}
        return by_stage.get(stage, {"test"})

    def patching(self, batch: list[Episode]) -> AbstractContextManager:
        """The intervention active while answering these queries (none for plain ICL)."""
        return nullcontext()

    def answer(self, batch: list[Episode], patching: AbstractContextManager | None = None) -> list[str]:
        """Greedy answers to a batch of episodes with the method's intervention (or `patching`) active."""
        inputs = self.vlm.build_inputs(batch, self.template, self.max_new_tokens)
        with patching or self.patching(batch):
            return self.vlm.generate(inputs, max_new_tokens=self.max_new_tokens)

    def _start_scoring(self) -> None:
        """One metric overall, one per task and (over several data seeds) one per seed; the DataModule may name
        its metric (default ExactMatch), which MTV's random-heads control scores with too."""
        data = datamodule_of(self.trainer)
        self.make_metric = getattr(data, "metric", ExactMatch)
        seeds = self.data_seeds
        keys = ("all", *getattr(data, "tasks", ()), *(_seed_key(seed) for seed in seeds if len(seeds) > 1))
        self.accuracy = nn.ModuleDict({key: self.make_metric() for key in keys})
        self.accuracy.to(self.device)

    on_validation_start = on_test_start = _start_scoring

    def _log_spread_over_seeds(self, stage: str) -> None:
        """Mean and standard deviation of the per-seed accuracies (the cross-modal paper reports both)."""
        values = [
            float(metric.compute())
            for key, metric in getattr(self, "accuracy", {}).items()
            if key.startswith(_SEED) and metric.update_called
        ]
        if len(values) > 1:
            summary = spread(values)
            self.log_dict({f"{stage}/accuracy_{key}_over_seeds": summary[key] for key in ("mean", "std", "min", "max")})
            rank_zero_info(f"{stage} accuracy over {len(values)} seeds: {format_spread(values, 4)}")

    def on_validation_epoch_end(self) -> None:
        self._log_spread_over_seeds("val")

    def on_test_epoch_end(self) -> None:
        self._log_spread_over_seeds("test")
        self.log_dict(  # the end-of-test table's other columns (heads, layer), for loggers that never see the print
            {
                f"test/{column}{'' if key == 'all' else f'/{key}'}": float(value)
                for key in getattr(self, "accuracy", {})
                for column, value in self.test_summary(key).items()
                if isinstance(value, (int, float))
            }
        )

    def log_series(self, name: str, values: Iterable[float], step: int | None = None) -> None:
        """Scalars outside Lightning's per-epoch logging (a value per layer, per draw, at the end of a fit), to every
        logger the run has (TensorBoard, CSV, ...): at `step`, or one value per step 0, 1, ... when `step` is None."""
        for index, value in enumerate(values):
            for logger in self.loggers:
                logger.log_metrics({name: float(value)}, index if step is None else step)

    def _score(self, batch: list[Episode], stage: str) -> None:
        answers = self.answer(batch)
        for key, metric in cast(Iterable[tuple[str, Metric]], self.accuracy.items()):
            rows = [i for i, episode in enumerate(batch) if key in ("all", episode.task, _seed_key(episode.seed))]
            if rows:
                metric.update([answers[i] for i in rows], [batch[i].query.answers for i in rows])
            suffix = "" if key == "all" else f"/{key}"
            self.log(
                f"{stage}/accuracy{suffix}",
                metric,
                on_step=False,
                on_epoch=True,
                batch_size=len(batch),
                metric_attribute=f"accuracy.{key}",
            )
            # how many queries were scored over all processes: a duplicated or dropped query shows here
            self.log(
                f"{stage}/queries{suffix}",
                float(len(rows)),
                on_step=False,
                on_epoch=True,
                reduce_fx="sum",
                sync_dist=True,
                batch_size=len(batch),
            )

    def test_summary(self, task: str) -> dict[str, object]:
        """Extra columns of the end-of-test table for one task ("all" = every task): e.g. heads used, layer."""
        return {}

    def test_notes(self) -> list[str]:
        """Lines printed under the end-of-test table (e.g. MTV's random-heads control)."""
        return []

    def on_test_end(self) -> None:
        """Write the scores of a task vector (`scores_path`), and print the per-task table once (rank 0) in place of
        Lightning's metric dump, unless run quietly."""
        loop = self.trainer.test_loop
        if not self.trainer.is_global_zero:
            return
        metrics = self.trainer.callback_metrics
        rows = {}
        for key in self.accuracy:
            suffix = "" if key == "all" else f"/{key}"
            queries = int(metrics[f"test/queries{suffix}"])
            rows[key] = {
                "accuracy": float(metrics[f"test/accuracy{suffix}"]) if queries else None,  # '-': nothing scored
                "queries": queries,
                **self.test_summary(key),
            }
        self._write_scores(rows)
        if not loop.verbose:
            return
        columns = list(dict.fromkeys(column for row in rows.values() for column in row))
        fitted = self.fitted_elsewhere()
        elsewhere = f", fitted on {fitted}" if fitted is not None else ""
        data = type(datamodule_of(self.trainer)).__name__
        print(
            f"\n{type(self).__name__} on {data} ({self.model_name}{elsewhere}), test split\n"
            + task_table(rows, columns)
            + "".join(f"\n{line}" for line in self.test_notes())
        )
        loop.verbose = False  # the table above replaces Lightning's, which the loop prints after this hook

    def _write_scores(self, rows: dict[str, dict[str, object]]) -> None:
        """The test table's accuracies and queries, with the vector files they score and the run's config."""
        path, file, data = self.scores_path("test"), self.task_vector_file, datamodule_of(self.trainer)
        if path is None:
            return
        write_scores(
            path,
            {file.path: file.hub} if file is not None and file.path else dict.fromkeys(self.exported_files),
            **{column: {key: row[column] for key, row in rows.items()} for column in ("accuracy", "queries")},
            seeds=self.data_seeds,
            method=self.vector_method,
            model=self.model_name,
            revision=self.model_options.revision,
            tasks=list(getattr(data, "tasks", ())),
            benchmark=type(data).__name__,
            config=str(path.parent / "config.yaml") if (path.parent / "config.yaml").is_file() else None,
        )

    def validation_step(self, batch: list[Episode], batch_idx: int) -> None:
        self._score(batch, "val")

    def test_step(self, batch: list[Episode], batch_idx: int) -> None:
        self._score(batch, "test")

    def predict_step(self, batch: list[Episode], batch_idx: int) -> list[dict]:
        """Answers with the question and images they answer, for the answers file."""
        answers = self.answer(batch)
        return [
            {"question": episode.query.text, "images": [str(image) for image in episode.query.images], "answer": answer}
            for episode, answer in zip(batch, answers, strict=True)
        ]
