"""`lit-tv <subcommand>`: LightningCLI over the method modules and benchmark DataModules.

    lit-tv fit  --config configs/shapes/mtv.yaml
    lit-tv test --config configs/shapes/mtv.yaml --ckpt_path logs/.../checkpoints/....ckpt

A bad input (a ValueError or OSError: a file, a field, an option) ends the run with one line that
names it and exit status 1; ``LIT_TV_TRACEBACK=1`` shows the traceback instead. `lit-tv` with no
subcommand (the shapes world's main job) is `lit_tv.__main__`'s: jobs built on this CLI sit above it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lightning.pytorch import Trainer
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities import rank_zero_info

from lit_tv.checkpoints import AtomicCheckpointIO, CheckpointMismatchError, check_checkpoint, resolve_checkpoint
from lit_tv.console import quiet_libraries
from lit_tv.methods.base import FrozenVLMMethod


class LitTVCLI(LightningCLI):
    """LightningCLI over lit_tv's methods and DataModules, where the config and the command line win over
    a checkpoint's saved options and a checkpoint is checked against the run before any weights load."""

    def __init__(self, args: list[str] | None, run: bool = True) -> None:
        super().__init__(
            FrozenVLMMethod,
            subclass_mode_model=True,
            subclass_mode_data=True,
            args=args,
            run=run,
            save_config_kwargs={"overwrite": True},
        )

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        trainer = super().instantiate_trainer(**kwargs)
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:  # Lightning's default, not a user's choice
            trainer.strategy.checkpoint_io = AtomicCheckpointIO()
        return trainer

    def add_arguments_to_parser(self, parser) -> None:
        if any(action.dest == "weights_only" for action in parser._actions):  # the subcommands' parsers
            parser.set_defaults(weights_only=True)  # checkpoints are read as data, never as pickled code

    def _parse_ckpt_path(self) -> None:
        """LightningCLI would merge the checkpoint's hyper-parameters over the parsed config here; not done."""

    def _check_ckpt_path(self) -> None:
        assert self.subcommand is not None  # called while a subcommand runs
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
            return
        changed = check_checkpoint(path, self.model, self.datamodule, self.subcommand)
        if changed:
            rank_zero_info(
                f"{path} was fitted with other options; this run uses the ones it was given "
                f"(checkpoint -> given): {'; '.join(changed)}"
            )

    def before_fit(self) -> None:
        self._check_ckpt_path()

    def before_validate(self) -> None:
        self._check_ckpt_path()

    def before_test(self) -> None:
        self._check_ckpt_path()

    def before_predict(self) -> None:
        self._check_ckpt_path()


def build_cli(config: Path, overrides: list[str]) -> LitTVCLI:
    """Objects exactly as `lit-tv <subcommand> --config config ...overrides` would build them."""
    return LitTVCLI(["--config", str(config), *overrides], run=False)


def _raised_by(error: BaseException, package: str) -> bool:
    frame = error.__traceback__
    while frame is not None and frame.tb_next is not None:
        frame = frame.tb_next
    return frame is not None and f"{os.sep}{package}{os.sep}" in frame.tb_frame.f_code.co_filename


def user_error(error: BaseException) -> BaseException:
    """The error to show: jsonargparse wraps one raised while it builds the classes in a long message of its own."""
    while _raised_by(error, "jsonargparse") and isinstance(
        cause := error.__cause__ or error.__context__, (ValueError, OSError)
    ):
        error = cause
    return error


def run_as_command(job: Callable[[], object]) -> None:
    """Run `job` as a `lit-tv` command: libraries kept quiet, a bad input ends it with one line and exit status 1."""
    quiet_libraries()
    try:
        job()
    except (ValueError, OSError) as error:
        if os.environ.get("LIT_TV_TRACEBACK"):
            raise
        raise SystemExit(f"lit-tv: error: {user_error(error)}") from error


def main(argv: list[str] | None = None) -> None:
    """`lit-tv <subcommand> ...` (None: LightningCLI reads sys.argv itself)."""
    run_as_command(lambda: LitTVCLI(argv))


if __name__ == "__main__":
    main()
