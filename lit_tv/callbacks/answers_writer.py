"""Writes `lit-tv predict` answers as jsonl, each batch's as soon as it is answered."""

from __future__ import annotations

import json
from pathlib import Path

from lightning.pytorch.callbacks import BasePredictionWriter

from lit_tv.files import LineStream, OutputLock, partial_path
from lit_tv.options import require_file_path


class AnswersWriter(BasePredictionWriter):
    """One `{question, images, answer}` per line, in input order.

    Batches come in another order (queries of similar lengths together): each answer is held until every
    query before it in the file is answered. The answers go to ``<path>.partial`` in file order as they come
    (a failure late in the run keeps every answer before the first unanswered query) and become `path` only
    when every query is answered. An earlier run's `path` is replaced only with `--overwrite`, and only then (a
    run that fails or is stopped leaves it as it was); a live run writing the same path is refused
    (`OutputLock`), and so is a path the run reads.
    """

    def __init__(self, path: str = "logs/answers.jsonl") -> None:
        super().__init__(write_interval="batch")
        self.path = Path(path)
        self.overwrite_outputs = False  # set by the CLI's `--overwrite`
        self._stream: LineStream | None = None
        self._lock: OutputLock | None = None
        self._held: dict[int, dict] = {}  # answers of queries whose predecessors are not all answered yet
        self._next = 0  # the query file's index of the next line to write

    def setup(self, trainer, pl_module, stage: str) -> None:
        if stage == "predict":
            require_file_path("AnswersWriter path", self.path)
            read = (
                getattr(getattr(trainer, "datamodule", None), "path", None),  # the query file
                getattr(pl_module.hparams, "task_vector", None),
                trainer.ckpt_path,
            )
            self._lock = OutputLock(
                [self.path],
                "the AnswersWriter's path",
                overwrite=self.overwrite_outputs,
                inputs=[path for path in read if path],  # never written over, even with --overwrite
            )
            self._lock.acquire()

    def on_predict_start(self, trainer, pl_module) -> None:
        if trainer.world_size > 1:
            raise RuntimeError("AnswersWriter writes from one process: run `lit-tv predict` with --trainer.devices 1")
        self._stream, self._held, self._next = LineStream(self.path), {}, 0

    def write_on_batch_end(
        self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx
    ) -> None:
        """Hold the batch's answers by their queries' indices in the file; write those now in order."""
        assert self._stream is not None  # opened in on_predict_start
        if batch_indices is None:
            raise RuntimeError("AnswersWriter needs the queries' indices, which Lightning did not give for this batch")
        self._held.update(zip(batch_indices, prediction, strict=True))
        ready = []
        while self._next in self._held:
            ready.append(self._held.pop(self._next))
            self._next += 1
        self._stream.write(json.dumps(record) for record in ready)

    def on_predict_end(self, trainer, pl_module) -> None:
        self._close(complete=True)

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self._close(complete=False)

    def teardown(self, trainer, pl_module, stage: str) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def saved_note(self) -> str:
        """What a stopped run leaves here."""
        return f"the answers so far are in {partial_path(self.path)} (not all)"

    def _close(self, complete: bool) -> None:
        if self._stream is not None:
            self._stream.close(complete)
            self._stream = None
