"""``lit-tv-harness-copy``: a run's test queries as a benchmark table in the harness's columns, so lmms-eval scores
the very queries `lit-tv test` scored.

    lit-tv-harness-copy --config configs/shapes/mtv.yaml --out shapes_colour.parquet

The config's ``data`` block (a lit-tv config: its other blocks are not read) draws the test queries as the run
does (same seed, same sizes); each becomes a row ``image``, ``question``, ``answers``, ``question_id`` (the
columns of the Hugging Face VizWiz-VQA copy lmms-eval's ``vizwiz_vqa_val`` reads). The VQA scorer needs ten human
answers: a query with one reference answer is written with it ten times, which the scorer counts as exact match.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import datasets
import yaml
from jsonargparse import ArgumentParser
from lightning import LightningDataModule

from lit_tv.cli.command import run_as_command
from lit_tv.data.datamodules import EpisodeDataModule
from lit_tv.data.harness_tables import write_vqa_table
from lit_tv.episodes import Episode, Example

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


def main(argv: Sequence[str] | None = None) -> None:
    parser = ArgumentParser(prog="lit-tv-harness-copy", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, required=True, help="a lit-tv config whose test queries to write")
    parser.add_argument("--out", type=Path, required=True, help="the .parquet file to write")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    args = parser.parse_args(argv)
    if args.out.suffix != ".parquet":
        parser.error(f"--out must name a .parquet file, got {args.out}")

    def write() -> None:
        written = write_vqa_table(args.out, harness_rows(episodes_of(args.config)), overwrite=args.overwrite)
        print(f"wrote {written} ({datasets.Dataset.from_parquet(str(written)).num_rows} test queries of {args.config})")

    run_as_command(write)
