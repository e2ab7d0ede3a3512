"""SIGINT, SIGTERM and SIGHUP end a `lit-tv` run the same way: an exception at once, a non-zero exit and one
line saying what was saved and how to go on.

Lightning alone would treat them three ways: SIGINT ends with its own message, SIGTERM only sets a flag that
stops the loop at the next batch by raising ``SystemExit()`` (exit status 0, as if the run had finished), and
SIGHUP kills the process without a word. Here each raises `RunInterrupted` in the main thread; Lightning's
SIGTERM handler, installed while a Trainer runs, calls this one after its own (it chains a handler it finds).
Outputs are written whole or under ``.partial`` names (`lit_tv.files`), so stopping at any point leaves no
file that passes for a complete one.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class RunInterrupted(BaseException):
    """A signal stopped the run; `saved` says what it leaves (filled in by whoever knows: the CLI)."""

    def __init__(self, signum: int, saved: str = "") -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.saved = saved


def _raise(signum: int, frame: FrameType | None) -> None:
    raise RunInterrupted(signum)


@contextmanager
def signals_interrupt() -> Iterator[None]:
    """Within the block, SIGINT, SIGTERM and SIGHUP raise `RunInterrupted` (the previous handlers after it)."""
    previous = {signum: signal.getsignal(signum) for signum in SIGNALS}
    for signum in SIGNALS:
        signal.signal(signum, _raise)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
