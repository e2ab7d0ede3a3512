"""What was fitted on some tasks (a task vector, a checkpoint's heads and means) serves a run on others only
when the run says it is meant (the method's ``allow_other_task``), and then says so in one warning.

Task vectors (`lit_tv.vectors.base`) and checkpoints (`lit_tv.methods.checkpoints`) share `FittedOn`, so one switch
covers both and both name the transfer the same way.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

ALLOW_OTHER_TASK = "model.init_args.allow_other_task=true"


@dataclass(frozen=True)
class FittedOn:
    """The tasks and benchmark something was fitted on, or a run is on (None, or no tasks: not known)."""

    tasks: tuple[str, ...]
    benchmark: str | None

    @classmethod
    def of(cls, datamodule: object) -> FittedOn:
        """What a run on `datamodule` is on: its tasks and its class as the benchmark."""
        return cls(tuple(getattr(datamodule, "tasks", None) or ()), type(datamodule).__name__)

    def __str__(self) -> str:
        return f"tasks {list(self.tasks)} of {self.benchmark}"

    def serves(self, run: FittedOn) -> bool:
        """Whether `run` is on these tasks and benchmark (one not known: nothing to compare, so it is)."""
        missing = [task for task in run.tasks if self.tasks and task not in self.tasks]
        return not missing and (run.benchmark is None or self.benchmark in (None, run.benchmark))

    def check(
        self, run: FittedOn, source: str, allow_other_task: bool, error: type[Exception], detail: str = ""
    ) -> None:
        """Refuse (raise `error`) a run on other tasks, unless allowed: then warn. `source` opens the message
        (``task vector X was made for``), `detail` ends its first part (the file field it was read from)."""
        if self.serves(run):
            return
        message = f"{source} {self}; this run's tasks (data.init_args.tasks) are {list(run.tasks)} of {run.benchmark}"
        if not allow_other_task:
            raise error(f"{message}{detail}; to use it there on purpose, allow_other_task=True ({ALLOW_OTHER_TASK})")
        warnings.warn(f"{message}{detail}; used anyway (allow_other_task)", stacklevel=3)
