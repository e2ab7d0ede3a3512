"""`lit-tv <subcommand>` as a command: a bad input (a ValueError or OSError: a file, a field, an option) ends the
run with one line that names it and exit status 1; ``LIT_TV_TRACEBACK=1`` shows the traceback instead. SIGINT,
SIGTERM and SIGHUP end it with one line saying what was saved and how to go on, and exit status 128 + the signal
(`lit_tv.cli.interrupts`). `lit-tv` with no subcommand (the shapes world's main job) is `lit_tv.__main__`'s: jobs
built on this CLI sit above it.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable

from lightning.pytorch.utilities.exceptions import SIGTERMException

from lit_tv.cli.app import LitTVCLI
from lit_tv.cli.interrupts import RunInterrupted, signals_interrupt
from lit_tv.console import quiet_libraries


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
        with signals_interrupt():
            job()
    except SIGTERMException as stop:  # Lightning's own graceful stop (exit status 0) where our handler was not seen
        _stopped(
            RunInterrupted(signal.SIGTERM, "the run stopped at a batch boundary; run the same command again"), stop
        )
    except RunInterrupted as stop:
        _stopped(stop, stop)
    except (ValueError, OSError) as error:
        if os.environ.get("LIT_TV_TRACEBACK"):
            raise
        raise SystemExit(f"lit-tv: error: {user_error(error)}") from error


def _stopped(stop: RunInterrupted, cause: BaseException) -> None:
    print(
        f"lit-tv: stopped by {stop}: {stop.saved or 'nothing of this run is complete; run it again'}", file=sys.stderr
    )
    raise SystemExit(128 + stop.signum) from cause  # the shell's convention for a process ended by a signal


def main(argv: list[str] | None = None) -> None:
    """`lit-tv <subcommand> ...` (None: LightningCLI reads sys.argv itself)."""
    run_as_command(lambda: LitTVCLI(argv))


if __name__ == "__main__":
    main()
