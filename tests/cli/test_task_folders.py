"""``{tasks}`` in a config's paths: one folder per task set, whatever order the tasks are given in."""

from __future__ import annotations

from pathlib import Path

import yaml
from helpers import MTV_YAML
from jsonargparse import dict_to_namespace

from lit_tv.cli.task_folders import name_task_folders


def folders(tasks: list[str]) -> list[str]:
    """The MTV config's TensorBoard run, checkpoint folder and export path for a run on ``tasks``."""
    config = dict_to_namespace(yaml.safe_load(Path(MTV_YAML).read_text()))
    config.data.init_args.tasks = tasks
    name_task_folders(config)
    assert config.data.init_args.tasks == tasks, "the run keeps its tasks in the order given"
    trainer, model = config.trainer, config.model.init_args
    return [trainer.logger.init_args.name, trainer.callbacks[1].init_args.dirpath, model.export]


def test_the_same_tasks_in_another_order_name_the_same_folders():
    assert folders(["shape", "colour"]) == folders(["colour", "shape"])
    assert folders(["shape", "colour"])[2] == "logs/shapes_mtv_colour+shape/task_vector.safetensors"
    assert folders(["colour"])[0] == "shapes_mtv_colour"
