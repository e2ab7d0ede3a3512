"""What `lit-tv` prints: the libraries' advertising and per-load bars silenced, a per-task table at the end of test.

`quiet_libraries` is called once by the CLI, the main job, the many-shot and the findings commands. It drops only
messages that carry no information about the run: Lightning's cloud tips (litlogger / litmodels), its
note on `weights_only` when saving a checkpoint, its warning that the CLI was built from Python (the
main job does that on purpose), its internal pytree deprecation warning, torchmetrics' warning that a
metric was computed before any update (a task that got no query: its accuracy is NaN in TensorBoard and `-`
in the table, which say it), and transformers' "Loading
weights" bar of every model load (downloads keep their bars; warnings and load reports are untouched).
Long passes keep their one progress bar each.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from transformers.utils import logging as transformers_logging

SILENCED_PREFIXES = ("💡 Tip:", "`weights_only` was not set")
SILENCED_LOGGERS = (
    "lightning.pytorch.utilities.rank_zero",
    "lightning.pytorch.trainer.connectors.checkpoint_connector",
)
WEIGHT_BAR = "Loading weights"


class _DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(SILENCED_PREFIXES)


def _no_weight_bars(factory: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
    """transformers' tqdm hook: the per-load "Loading weights" bar is disabled, every other bar kept."""
    if kwargs.get("desc") == WEIGHT_BAR:
        kwargs = {**kwargs, "disable": True}
    return factory(*args, **kwargs)


def quiet_libraries() -> None:
    """Silence the messages listed in the module doc (idempotent)."""
    for name in SILENCED_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(existing, _DropNoise) for existing in logger.filters):
            logger.addFilter(_DropNoise())
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended to run from within Python")
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
    warnings.filterwarnings("ignore", message=r"The ``compute`` method of metric \w+ was called before the ``update``")
    transformers_logging.set_tqdm_hook(_no_weight_bars)


@contextmanager
def lightning_warnings_only() -> Iterator[None]:
    """Lightning's per-run banners ("Seed set to 0", "GPU available: ...") off, its warnings kept: for a job
    that runs many Trainers and prints one table of its own (the main job)."""
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def task_table(rows: Mapping[str, Mapping[str, object]], columns: Sequence[str], first: str = "task") -> str:
    """A plain-text table, one row per task (`rows[task][column]`; `first` heads the row names); floats with 3
    decimals, missing cells '-'."""

    def cell(value: object) -> str:
        if value is None:
            return "-"
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    width = max(len(first), *(len(task) for task in rows))
    lines = [f"{first:<{width}}" + "".join(f"{column:>10}" for column in columns)]
    lines += [
        f"{task:<{width}}" + "".join(f"{cell(values.get(column)):>10}" for column in columns)
        for task, values in rows.items()
    ]
    return "\n".join(lines)
