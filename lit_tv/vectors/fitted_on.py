"""What was fitted on some tasks (a task vector, a checkpoint's heads and means) serves a run on others only
when the run says it is meant (the method's ``allow_other_task``), and then says so in one warning.

Task vectors (`lit_tv.vectors.base`) and checkpoints (`lit_tv.methods.checkpoints`) share this check, so one switch
covers both and both name the transfer the same way.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

ALLOW_OTHER_TASK = "model.init_args.allow_other_task=true"


def other_tasks(
    fitted: Sequence[str], fitted_benchmark: str | None, tasks: Sequence[str], benchmark: str | None
) -> bool:
    """Whether a run on `tasks` of `benchmark` uses what was fitted on others (unknown fitted tasks or benchmark:
    nothing to compare, so no)."""
    missing = [task for task in tasks if fitted and task not in fitted]
    return bool(missing) or (benchmark is not None and fitted_benchmark not in (None, benchmark))


def check_fitted_tasks(
    source: str,
    fitted: Sequence[str],
    fitted_benchmark: str | None,
    tasks: Sequence[str],
    benchmark: str | None,
    allow_other_task: bool,
    error: type[Exception],
    detail: str = "",
) -> None:
    """Refuse (raise `error`) a run on other tasks than `fitted`, unless allowed: then warn. `source` opens the
    message (``task vector X was made for``), `detail` ends its first part (the file field it was read from)."""
    if not other_tasks(fitted, fitted_benchmark, tasks, benchmark):
        return
    message = (
        f"{source} tasks {list(fitted)} of {fitted_benchmark}; this run's tasks (data.init_args.tasks) are "
        f"{list(tasks)} of {benchmark}{detail}"
    )
    if not allow_other_task:
        raise error(f"{message}; to use it there on purpose, allow_other_task=True ({ALLOW_OTHER_TASK})")
    warnings.warn(f"{message}; used anyway (allow_other_task)", stacklevel=3)
