"""`lit-tv <subcommand>`'s LightningCLI over the method modules and benchmark DataModules: what it adds is the
seeds/overwrite options, checkpoint-path checks, short runs written under smoke/, per-task folder names and what a
stopped run saved. `lit_tv.cli.command` runs it as a command (errors and signals as one line).

    lit-tv fit  --config configs/shapes/mtv.yaml
    lit-tv test --config configs/shapes/mtv.yaml --ckpt_path logs/.../checkpoints/....ckpt

`--overwrite` lets a run replace an earlier run's outputs (`lit_tv.files.OutputLock`).
"""

from __future__ import annotations

import re
import sys
from argparse import ArgumentError
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from lightning.pytorch import Trainer
from lightning.pytorch.cli import ArgsType, LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.exceptions import MisconfigurationException

from lit_tv.callbacks.replace_on_success import ReplaceOnSuccess
from lit_tv.cli.interrupts import RunInterrupted
from lit_tv.cli.run_checks import check_data_split, check_trainer_options
from lit_tv.cli.task_folders import name_task_folders
from lit_tv.methods.base import FrozenVLMMethod
from lit_tv.methods.checkpoints import (
    AtomicCheckpointIO,
    CheckpointMismatchError,
    check_checkpoint,
    checkpoint_folders,
    resolve_checkpoint,
)

# `--a.init_args.b.c=null`: jsonargparse passes the null of a nested field on as the string "None"
_NESTED_NULL = re.compile(r"--(\w+\.init_args\.\w+)\.(\w+)(=null)?")
DESCRIPTION = (
    "lit_tv: task vectors for frozen vision-language models (MTV, cross-modal vectors, Function Vectors, ICL). "
    "`lit-tv fit|validate|test|predict --config configs/...yaml`; `lit-tv` with no arguments runs the shapes "
    "world's main job (README.md)."
)
MAX_SEED = 2**32 - 1  # numpy's seeds, which Lightning's `seed_everything` sets too
# trainer options that, given on the command line, cut a run short: a check that it runs, not the config's run
SHORTENING = ("fast_dev_run", "max_steps", *(f"limit_{loop}_batches" for loop in ("train", "val", "test", "predict")))


def spell_nested_nulls(args: Sequence[str]) -> list[str]:
    """`--model.init_args.model.quantization null` (or `=null`) as `--model.init_args.model={quantization: null}`,
    which jsonargparse parses as meant (merged into the block's other values)."""
    spelled: list[str] = []
    index = 0
    while index < len(args):
        match = _NESTED_NULL.fullmatch(args[index])
        if match and (match[3] or (index + 1 < len(args) and args[index + 1] == "null")):
            spelled.append(f"--{match[1]}={{{match[2]}: null}}")
            index += 1 if match[3] else 2
        else:
            spelled.append(args[index])
            index += 1
    return spelled


def given_options(args: Sequence[str]) -> set[str]:
    """The options a command line sets itself (`--a.b=1` and `--a.b 1` alike), as opposed to its config files."""
    return {arg.split("=", 1)[0][2:] for arg in args if arg.startswith("--")}


def shortens(value: object) -> bool:
    """A trainer length option's value that cuts a run short: a count (fast_dev_run's True too) or a share below 1."""
    return value is True or (type(value) is int and value > 0) or (isinstance(value, float) and 0 < value < 1)


def smoke_path(path: str | Path) -> str:
    return str(Path(path).parent / "smoke" / Path(path).name)


class RunConfigSaver(SaveConfigCallback):
    """The run's `config.yaml` in its logger's run folder; a run without a logger (predict) has no run folder,
    and Lightning would write the file into the working directory, over a user's own: none is written."""

    def setup(self, trainer: Trainer, pl_module: Any, stage: str) -> None:
        if trainer.logger is not None:
            super().setup(trainer, pl_module, stage)

    def save_config(self, trainer: Trainer, pl_module: Any, stage: str) -> None:
        """The data options in the logger's hyper-parameters as ``data/...``, beside the method's: the DataModule
        keeps them out of Lightning's flat merge, which refuses a key both hold with other values (`seed`)."""
        if trainer.logger is not None:
            trainer.logger.log_hyperparams({"data": self.config["data"].as_dict()})


class LitTVCLI(LightningCLI):
    """LightningCLI over lit_tv's methods and DataModules, where the config and the command line win over
    a checkpoint's saved options and a checkpoint is checked against the run before any weights load."""

    def __init__(self, args: list[str] | None, run: bool = True) -> None:
        self.given = given_options(sys.argv[1:] if args is None else args)
        try:
            super().__init__(
                FrozenVLMMethod,
                subclass_mode_model=True,
                subclass_mode_data=True,
                args=spell_nested_nulls(sys.argv[1:] if args is None else args),
                run=run,
                save_config_callback=RunConfigSaver,
                save_config_kwargs={"overwrite": True},
                parser_kwargs={"description": DESCRIPTION, "exit_on_error": False},
            )
        except ArgumentError as error:  # a bad command line or config file: one line, not the usage of every option
            raise ValueError(f"{error} (`lit-tv --help` and `lit-tv <subcommand> --help` list the options)") from None
        except RunInterrupted as stop:
            subcommand = getattr(self, "subcommand", None)  # set once parsed; the trainer once built
            if subcommand is not None and hasattr(self, "trainer"):
                stop.saved = saved_when_stopped(self.trainer, subcommand)
            raise

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        try:
            trainer = super().instantiate_trainer(**kwargs)
        except MisconfigurationException as error:  # what `check_trainer_options` does not foresee
            raise ValueError(f"trainer options: {error}") from error
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:  # Lightning's default, not a user's choice
            trainer.strategy.checkpoint_io = AtomicCheckpointIO()
        return trainer

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument(
            "--overwrite",
            action="store_true",
            help="replace the outputs (vector, checkpoints, answers) of an earlier run",
        )

    def _run_config(self) -> Any:
        """The parsed config of this run (of its subcommand's, under `lit-tv <subcommand>`)."""
        return self.config[self.subcommand] if self.subcommand else self.config

    def parse_arguments(self, parser: LightningArgumentParser, args: ArgsType) -> None:
        """Lightning seeds right after parsing, before any class is built; a seed numpy refuses is named as the
        option first."""
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        seed = (self.config[subcommand] if subcommand else self.config).get("seed_everything")
        if not isinstance(seed, bool) and isinstance(seed, int) and not 0 <= seed <= MAX_SEED:
            raise ValueError(f"--seed_everything must be true, false or an integer from 0 to {MAX_SEED}, got {seed}")

    def before_instantiate_classes(self) -> None:
        check_trainer_options(self._run_config()["trainer"])
        name_task_folders(self._run_config())

    def after_instantiate_classes(self) -> None:
        """Tell the run's writers whether they may replace an earlier run's outputs; move a short run's off the
        config's paths; an `--overwrite` fit's checkpoints go beside the earlier ones until it succeeds."""
        for writer in (self.model, *cast(Any, self.trainer).callbacks):  # set by Lightning, undeclared
            if hasattr(writer, "overwrite_outputs"):
                writer.overwrite_outputs = bool(self._run_config().get("overwrite"))
        self._move_short_run_outputs()
        if self.subcommand == "fit" and self._run_config().get("overwrite"):
            staged = ReplaceOnSuccess.stage(self.trainer)
            if staged is not None:
                cast(Any, self.trainer).callbacks.append(staged)

    def _move_short_run_outputs(self) -> None:
        """A run its command line cuts short (`--trainer.fast_dev_run`, `--trainer.limit_*_batches`,
        `--trainer.max_steps`) checks that the pipeline runs: its checkpoints and vector go to a ``smoke/`` folder
        beside the paths its config files name, never over (or passing for) the real run's. Paths the command line
        gives itself (`--model.init_args.export`, `--trainer.callbacks`) are the user's choice and kept."""
        short = [
            f"--trainer.{name}={getattr(self.trainer, name)}"
            for name in SHORTENING
            if f"trainer.{name}" in self.given and shortens(getattr(self.trainer, name))
        ]
        if not short:
            return
        moved = []
        if "trainer.callbacks" not in self.given:
            for callback in checkpoint_folders(self.trainer):
                if callback.dirpath:
                    callback.dirpath = smoke_path(callback.dirpath)
                    moved.append(callback.dirpath)
        export = self.model.hparams.get("export")
        if export and "model.init_args.export" not in self.given:
            self.model.hparams["export"] = smoke_path(export)
            moved.append(self.model.hparams["export"])
        if moved:
            rank_zero_info(f"a short run ({short[0]}): its checkpoints and vector go to {', '.join(moved)}")

    def _parse_ckpt_path(self) -> None:  # private, no public switch: LightningCLI's own merge is turned off
        """LightningCLI would merge the checkpoint's hyper-parameters over the parsed config here; not done."""

    def _check_ckpt_path(self) -> None:
        assert self.subcommand is not None  # called while a subcommand runs
        check_data_split(self.subcommand, self.datamodule)
        self.model.check_data(self.subcommand, self.datamodule)
        ckpt_path = self.config_init[self.subcommand].get("ckpt_path")
        if ckpt_path is None:
            return
        if getattr(self.model.hparams, "task_vector", None) is not None:
            raise CheckpointMismatchError(
                "give either --ckpt_path or model.init_args.task_vector, not both: "
                "the checkpoint's heads and means would replace the vector's"
            )
        path = resolve_checkpoint(self.trainer, ckpt_path)
        if path is None:
            if ckpt_path == "last" and self.subcommand == "fit":  # Lightning's warning is among the quieted ones
                rank_zero_info("--ckpt_path last: no last checkpoint was found: this fit starts from the beginning")
            return
        self.model.resumes_fit = self.subcommand == "fit"
        changed = check_checkpoint(path, self.model, self.datamodule, self.subcommand)
        if changed:
            rank_zero_info(
                f"{path} was fitted with other options; this run uses the ones it was given "
                f"(checkpoint -> given): {'; '.join(changed)}"
            )

    def before_fit(self) -> None:
        if not self.trainer.limit_train_batches:  # Lightning would skip the training loop without a word, exit 0
            raise ValueError(
                f"trainer.limit_train_batches={self.trainer.limit_train_batches}: a fit over no training batch "
                "fits nothing; give a positive number of batches (or a fraction), or leave it unset"
            )
        self._check_ckpt_path()

    before_validate = before_test = before_predict = _check_ckpt_path

    def _require_queries(self) -> None:
        """A run that scored nothing must not end as if it had: Lightning skips an empty loop without a word."""
        split = "val" if self.subcommand == "validate" else self.subcommand
        if not sum(getattr(self.trainer, f"num_{split}_batches")):
            raise ValueError(
                f"lit-tv {self.subcommand} scored no query: the {split} split is empty (data.init_args.{split}_size "
                f"is 0, trainer.limit_{split}_batches is 0, or every record was skipped): nothing to report"
            )

    after_validate = after_test = after_predict = _require_queries


def saved_when_stopped(trainer: Trainer, subcommand: str) -> str:
    """What a stopped run leaves, and how to go on from it."""
    notes = [callback.saved_note() for callback in cast(Any, trainer).callbacks if hasattr(callback, "saved_note")]
    if subcommand == "fit":
        checkpoints = [
            checkpoint
            for callback in checkpoint_folders(trainer)
            if callback.dirpath
            for checkpoint in Path(callback.dirpath).glob("*.ckpt")
        ]
        if checkpoints:
            newest = max(checkpoints, key=lambda path: path.stat().st_mtime)
            notes.append(f"kept {newest}; resume with the same command and --ckpt_path last")
        else:
            notes.append("no checkpoint was written yet; run the same command again")
        notes.append("no task vector was exported")
    else:
        notes.append(f"no {subcommand} result; run the same command again")
    return "; ".join(notes)


def build_cli(config: Path, overrides: list[str]) -> LitTVCLI:
    """Objects exactly as `lit-tv <subcommand> --config config ...overrides` would build them."""
    return LitTVCLI(["--config", str(config), *overrides], run=False)
