"""`lit-tv`: LightningCLI over the method modules and benchmark DataModules.

    lit-tv                                   # the main job: every method's table on the shapes world
    lit-tv fit  --config configs/shapes/mtv.yaml
    lit-tv test --config configs/shapes/mtv.yaml --ckpt_path logs/.../checkpoints/....ckpt
"""

from __future__ import annotations

import sys

from lightning.pytorch.cli import LightningCLI

from lit_tv.console import quiet_libraries
from lit_tv.main_job import run_main_job
from lit_tv.methods.base import FrozenVLMMethod


def main(argv: list[str] | None = None) -> None:
    quiet_libraries()
    args = sys.argv[1:] if argv is None else argv
    if not args:
        run_main_job()
        return
    LightningCLI(FrozenVLMMethod, subclass_mode_model=True, subclass_mode_data=True, args=args,
                 save_config_kwargs={"overwrite": True})


def run() -> None:
    """Console-script entry."""
    main()


if __name__ == "__main__":
    run()
