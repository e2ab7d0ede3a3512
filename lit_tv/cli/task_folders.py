"""Output folders named by the tasks a run is on: ``{tasks}`` in any string option of a config.

A one-task fit (configs/shapes/mtv.yaml) writes its TensorBoard run, checkpoints and vector under
``logs/shapes_mtv_{tasks}``: fits of different tasks never share a folder, so a later fit on another task
cannot leave its ``last.ckpt`` where a command expects the first one's. The placeholder becomes the run's
``data.init_args.tasks`` in sorted order joined by ``+`` (``colour``, ``colour+shape``) before any class is built:
a task set names one folder whatever order it is given in (a test of ``[shape, colour]`` finds the fit of
``[colour, shape]``).
"""

from __future__ import annotations

from typing import Any

from jsonargparse import Namespace

PLACEHOLDER = "{tasks}"


def fill_tasks(value: Any, tasks: str | None) -> Any:
    """`value` with ``{tasks}`` in every string replaced by `tasks` (namespaces are changed in place)."""
    if isinstance(value, str):
        if PLACEHOLDER in value and tasks is None:
            raise ValueError(
                f"option value {value!r} names its folder by {PLACEHOLDER}, but the data has no "
                "data.init_args.tasks: give the folder a plain name"
            )
        return value if tasks is None else value.replace(PLACEHOLDER, tasks)
    if isinstance(value, Namespace):
        for key, item in vars(value).items():
            setattr(value, key, fill_tasks(item, tasks))
        return value
    if isinstance(value, dict):
        return {key: fill_tasks(item, tasks) for key, item in value.items()}
    if isinstance(value, list):
        return [fill_tasks(item, tasks) for item in value]
    return value


def name_task_folders(config: Namespace) -> None:
    """Replace ``{tasks}`` in every string option of a parsed run config by the run's tasks, sorted."""
    tasks = config.get("data.init_args.tasks")  # None: the run names no tasks
    fill_tasks(config, None if tasks is None else "+".join(sorted(tasks)))
