"""Writes `lit-tv predict` answers as jsonl, each batch's as soon as it is answered."""

from __future__ import annotations

import json
from pathlib import Path

from lightning.pytorch.callbacks import BasePredictionWriter

from lit_tv.files import LineStream


class AnswersWriter(BasePredictionWriter):
    """One `{question, images, answer}` per line, in input order.

    An earlier run's file is removed when this writer is built, before the query file is read (the CLI
    builds callbacks before the DataModule), so a run that stops on a bad query file leaves no answers that
    pass for its own; each batch is written when answered, so a failure late in the query file keeps every
    answer before it.
    """

    def __init__(self, path: str = "logs/answers.jsonl") -> None:
        super().__init__(write_interval="batch")
        self.path = Path(path)
        self.path.unlink(missing_ok=True)
        self._stream: LineStream | None = None

    def on_predict_start(self, trainer, pl_module) -> None:
        if trainer.world_size > 1:
            raise RuntimeError("AnswersWriter writes from one process: run `lit-tv predict` with --trainer.devices 1")
        self._stream = LineStream(self.path)

    def write_on_batch_end(
        self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx
    ) -> None:
        assert self._stream is not None  # opened in on_predict_start
        self._stream.write(json.dumps(record) for record in prediction)

    def on_predict_end(self, trainer, pl_module) -> None:
        self._close()

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self._close()

    def _close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None
