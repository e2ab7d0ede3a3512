"""Every file lit_tv writes goes through here, so that a reader (or a crash) never sees half of one.

Whole files: a temporary file beside the target, renamed over it only when complete (no ``.tmp``
is left behind when the write fails or is interrupted). Streams (answers written as they come):
whole lines, flushed as they are written. Both are readable like any file the user makes (0644
under the usual umask), not 0600 as temporary files are created.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside `path` to write to; renamed over `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        yield Path(temporary)
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)


def write_atomic(path: str | Path, text: str) -> Path:
    with atomic_path(path) as temporary:
        temporary.write_text(text)
    return Path(path)


class LineStream:
    """A text file filled line by line as results come in: opened (emptied) when the run starts, so it
    never shows an earlier run's results as this one's, and flushed after every batch of lines, so a
    failure later in the run loses none of the lines already written."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: TextIO = self.path.open("w")

    def write(self, lines: Iterable[str]) -> None:
        self._file.writelines(line + "\n" for line in lines)
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class OutputLock:
    """Claims output paths for one run: ``<path>.lock`` beside each, holding the owner's host and pid.

    A second run that would write the same files while the first is alive is refused with both named
    (two fits in one folder would otherwise overwrite each other's checkpoints and vector). A lock
    left by a process that no longer runs (killed) is taken over; the owning process may re-claim.
    """

    def __init__(self, paths: Iterable[str | Path], what: str) -> None:
        self.locks = [Path(f"{path}.lock") for path in paths]
        self.what = what
        self.owner = {"host": socket.gethostname(), "pid": os.getpid()}

    def _holder(self, lock: Path) -> dict | None:
        """Who else holds `lock` and still runs; None when it is free, stale (its process is gone) or ours."""
        try:
            holder = json.loads(lock.read_text())
        except (OSError, ValueError):
            return None
        if holder.get("host") != self.owner["host"]:
            return holder  # a process on another machine cannot be checked: taken as alive
        if holder.get("pid") == self.owner["pid"]:
            return None
        try:
            os.kill(holder["pid"], 0)
        except ProcessLookupError:
            return None
        except PermissionError:  # alive, another user's
            pass
        return holder

    def _claim(self, lock: Path) -> bool:
        """Create `lock` exclusively (two runs starting at once cannot both succeed)."""
        try:
            handle = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(handle, "w") as file:
            json.dump({**self.owner, "since": time.strftime("%Y-%m-%d %H:%M:%S")}, file)
        return True

    def acquire(self) -> None:
        for lock in self.locks:
            lock.parent.mkdir(parents=True, exist_ok=True)
            while not self._claim(lock):
                holder = self._holder(lock)
                if holder is not None:
                    self.release()
                    raise FileExistsError(
                        f"{lock.with_suffix('')} is being written by another run (pid {holder['pid']} on "
                        f"{holder['host']}, since {holder.get('since', '?')}); wait for it to end or give this run "
                        f"other outputs ({self.what})"
                    )
                lock.unlink(missing_ok=True)  # stale or our own: claim it afresh

    def release(self) -> None:
        """Remove the locks this process holds (never another live run's)."""
        for lock in self.locks:
            try:
                holder = json.loads(lock.read_text())
            except (OSError, ValueError):
                continue
            if holder.get("host") == self.owner["host"] and holder.get("pid") == self.owner["pid"]:
                lock.unlink(missing_ok=True)
