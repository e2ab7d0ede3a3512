"""What every method shares: a lazily loaded frozen VLM kept out of state_dict, and scored test steps."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import lightning as L
from torch import nn

from lit_tv.console import task_table
from lit_tv.episodes import Episode
from lit_tv.metrics import ExactMatch
from lit_tv.prompts import PromptTemplate
from lit_tv.vlm import SHAPES_TOY, FrozenVLM, ModelLoadError, VLMOptions, resolve_model_path


class FrozenVLMMethod(L.LightningModule):
    """Base of the methods.

    The VLM is not a registered submodule: its weights never enter a checkpoint, an optimizer or
    DDP's broadcast, and it is loaded in `configure_model` directly on the right device.
    """

    def __init__(self, model: VLMOptions = SHAPES_TOY, max_new_tokens: int = 10) -> None:
        super().__init__()
        resolve_model_path(model.name)  # a bad path fails here, before any data or weights are touched
        self.model_options = model
        self.model_name = model.name
        self.max_new_tokens = max_new_tokens
        self._vlm: FrozenVLM | None = None
        self.strict_loading = False

    @property
    def vlm(self) -> FrozenVLM:
        if self._vlm is None:
            raise ModelLoadError("the VLM is loaded in configure_model(); run through a Trainer or call it first")
        return self._vlm

    def configure_model(self) -> None:
        if self._vlm is None:
            vlm = self.model_options.load(str(self.device))
            object.__setattr__(self, "_vlm", vlm)  # bypass nn.Module registration on purpose (see class doc)

    def setup(self, stage: str) -> None:
        """The prompt format belongs to the benchmark: take it from the DataModule."""
        self.template: PromptTemplate = self.trainer.datamodule.template

    def patching(self, batch: list[Episode]) -> AbstractContextManager:
        """The intervention active while answering these queries (none for plain ICL)."""
        return nullcontext()

    def answer(self, batch: list[Episode]) -> list[str]:
        """Greedy answers to a batch of episodes with the method's intervention active."""
        inputs = self.vlm.build_inputs(batch, self.template)
        with self.patching(batch):
            return self.vlm.generate(inputs, max_new_tokens=self.max_new_tokens)

    def _start_scoring(self) -> None:
        """One metric overall and one per task; the DataModule may name its metric (default ExactMatch)."""
        data = self.trainer.datamodule
        make_metric = getattr(data, "metric", ExactMatch)
        self.accuracy = nn.ModuleDict({key: make_metric() for key in ("all", *getattr(data, "tasks", ()))})
        self.accuracy.to(self.device)

    def _score(self, batch: list[Episode], stage: str) -> None:
        answers = self.answer(batch)
        for key, metric in self.accuracy.items():
            rows = [i for i, episode in enumerate(batch) if key in ("all", episode.task)]
            if rows:
                metric.update([answers[i] for i in rows], [batch[i].query.answers for i in rows])
            suffix = "" if key == "all" else f"/{key}"
            self.log(f"{stage}/accuracy{suffix}", metric, on_step=False, on_epoch=True, batch_size=len(batch),
                     metric_attribute=f"accuracy.{key}")
            # how many queries were scored over all processes: a duplicated or dropped query shows here
            self.log(f"{stage}/queries{suffix}", float(len(rows)), on_step=False, on_epoch=True, reduce_fx="sum",
                     sync_dist=True, batch_size=len(batch))

    def on_validation_start(self) -> None:
        self._start_scoring()

    def on_test_start(self) -> None:
        self._start_scoring()

    def test_summary(self, task: str) -> dict[str, object]:
        """Extra columns of the end-of-test table for one task ("all" = every task): e.g. heads used, layer."""
        return {}

    def on_test_end(self) -> None:
        """Print the per-task table once (rank 0) in place of Lightning's metric dump, unless run quietly."""
        loop = self.trainer.test_loop
        if not loop.verbose or not self.trainer.is_global_zero:
            return
        metrics = self.trainer.callback_metrics
        rows = {}
        for key in self.accuracy:
            suffix = "" if key == "all" else f"/{key}"
            rows[key] = {"accuracy": float(metrics[f"test/accuracy{suffix}"]),
                         "queries": int(metrics[f"test/queries{suffix}"]), **self.test_summary(key)}
        columns = list(dict.fromkeys(column for row in rows.values() for column in row))
        print(f"\n{type(self).__name__} on {type(self.trainer.datamodule).__name__} ({self.model_name}), test split\n"
              + task_table(rows, columns))
        loop.verbose = False  # the table above replaces Lightning's, which the loop prints after this hook

    def validation_step(self, batch: list[Episode], batch_idx: int) -> None:
        self._score(batch, "val")

    def test_step(self, batch: list[Episode], batch_idx: int) -> None:
        self._score(batch, "test")

    def predict_step(self, batch: list[Episode], batch_idx: int) -> list[dict]:
        """Answers with the question and images they answer, for the answers file."""
        answers = self.answer(batch)
        return [{"question": episode.query.text, "images": [str(image) for image in episode.query.images],
                 "answer": answer} for episode, answer in zip(batch, answers, strict=True)]
