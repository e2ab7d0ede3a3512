"""`lit-tv` and `python -m lit_tv`: with a subcommand the CLI, with none the shapes world's main job.

The one module above both: the main job builds its runs through the CLI, so the CLI never imports it.
"""

from __future__ import annotations

import sys

from lit_tv.cli import command
from lit_tv.shapes.studies.main_job import run_main_job


def main(argv: list[str] | None = None) -> None:
    """`argv` None reads the command line; no arguments (or only `--overwrite`) run the main job."""
    args = sys.argv[1:] if argv is None else argv
    if args and args != ["--overwrite"]:
        command.main(args)
    else:
        command.run_as_command(lambda: run_main_job(args))


if __name__ == "__main__":
    main()
