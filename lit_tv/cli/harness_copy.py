"""``lit-tv-harness-copy``: a run's test queries as a benchmark table in the harness's columns, so lmms-eval scores
the very queries `lit-tv test` scored.

    lit-tv-harness-copy --config configs/shapes/mtv.yaml --out shapes_colour

The folder `--out` gets the table (``val.parquet``: the split the harness's task reads) and an lmms-eval task
file: the harness's own task (``--task``, default ``vizwiz_vqa_val``: its prompts and VQA scorer) reading the
table, run as ``lmms-eval --tasks <out>`` (a folder: lmms-eval 0.7.3 refuses a task file's path given alone).
The config's ``data`` block (a lit-tv config: its other blocks are not read) draws the test queries as the run
does (same seed, same sizes); each becomes a row ``image``, ``question``, ``answers``, ``question_id`` (the
columns of the Hugging Face VizWiz-VQA copy lmms-eval's ``vizwiz_vqa_val`` reads). The VQA scorer needs ten human
answers: a query with one reference answer is written with it ten times, which the scorer counts as exact match.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import yaml
from jsonargparse import ArgumentParser
from lightning import LightningDataModule

from lit_tv.cli.command import run_as_command
from lit_tv.data.datamodules import EpisodeDataModule
from lit_tv.data.harness_tables import write_vqa_table
from lit_tv.episodes import Episode, Example
from lit_tv.files import write_atomic

# the harness's VQA tasks lit_tv has a benchmark for, by the split their data is read from
HARNESS_TASKS = {"vizwiz_vqa_val": "val", "ok_vqa_val2014": "val2014"}
VQA_ANSWERS = 10  # human answers per question in VizWiz-VQA / OK-VQA, what the official scorer averages over


def episodes_of(config: Path) -> list[Episode]:
    """The test queries of the lit-tv config `config`, drawn by its ``data`` block."""
    loaded = yaml.safe_load(config.read_text()) if config.is_file() else None
    if not isinstance(loaded, dict) or "data" not in loaded:
        raise ValueError(f"--config: {config} is not a lit-tv config with a 'data' block")
    parser = ArgumentParser()
    parser.add_subclass_arguments(LightningDataModule, "data")
    data = parser.instantiate_classes(parser.parse_object({"data": loaded["data"]})).data
    if not isinstance(data, EpisodeDataModule):
        raise ValueError(f"--config: {config}'s data block is a {type(data).__name__}, not a lit_tv DataModule")
    data.setup("test")
    return data.test_queries()


def harness_rows(episodes: Sequence[Episode]) -> list[Example]:
    """The zero-shot queries as table rows; one reference answer is repeated to the ten the VQA scorer reads."""
    rows = []
    for index, episode in enumerate(episodes):
        if episode.shots:
            raise ValueError(
                f"test query {index} has {len(episode.shots)} shots: the harness's VQA tasks ask zero-shot "
                "questions (data.init_args.test_shots: 0)"
            )
        answers = episode.query.answers
        rows.append(replace(episode.query, answers=answers * VQA_ANSWERS if len(answers) == 1 else answers))
    return rows


def write_task_file(table: Path, task: str) -> Path:
    """An lmms-eval task file beside `table`: the harness's own `task` (prompts, scorer) reading `table`'s rows
    (the table's path is relative to the file)."""
    body = {
        "task": task,
        "dataset_path": "parquet",
        "dataset_kwargs": {"data_files": {HARNESS_TASKS[task]: table.name}},
    }
    return write_atomic(
        table.with_name(f"{task}.yaml"),
        f"# lmms-eval's {task} on {table.name} (lit-tv-harness-copy)\n" + yaml.safe_dump(body),
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = ArgumentParser(prog="lit-tv-harness-copy", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, required=True, help="a lit-tv config whose test queries to write")
    parser.add_argument("--out", type=Path, required=True, help="the folder to write the table and task file in")
    parser.add_argument("--task", choices=sorted(HARNESS_TASKS), default="vizwiz_vqa_val", help="lmms-eval's task")
    parser.add_argument("--overwrite", action="store_true", help="replace the files of an earlier copy in --out")
    args = parser.parse_args(argv)
    table = args.out / f"{HARNESS_TASKS[args.task]}.parquet"
    for path in (table, table.with_name(f"{args.task}.yaml")):
        if path.exists() and not args.overwrite:
            parser.error(f"--out: {path} exists; add --overwrite to replace it")

    def write() -> None:
        rows = harness_rows(episodes_of(args.config))
        task_file = write_task_file(write_vqa_table(table, rows, overwrite=args.overwrite), args.task)
        print(
            f"wrote {table} ({len(rows)} test queries of {args.config}) and {task_file}: lmms-eval --tasks {args.out}"
        )

    run_as_command(write)
