"""Every file lit_tv writes goes through here, so that a reader (or a crash) never sees half of one.

Whole files: a temporary file beside the target, renamed over it only when complete (no ``.tmp``
is left behind when the write fails or is interrupted). Streams (answers written as they come):
whole lines, flushed as they are written, under ``<name>.partial`` until complete. Outputs are claimed
(`OutputLock`): one live run per output, and an earlier run's output is replaced only when asked. Both
are readable like any file the user makes (0644 under the usual umask), not 0600 as temporary files are.
"""

from __future__ import annotations

import fcntl
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
    """A text file filled line by line as results come in, under ``<path>.partial`` until `close(complete=True)`
    renames it to `path`: a run that stops early leaves its lines under a name that says they are not all, and
    never a file at `path` that passes for a complete one. Flushed after every batch of lines."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.partial = partial_path(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: TextIO = self.partial.open("w")

    def write(self, lines: Iterable[str]) -> None:
        self._file.writelines(line + "\n" for line in lines)
        self._file.flush()

    def close(self, complete: bool) -> None:
        self._file.close()
        if complete:
            os.replace(self.partial, self.path)


def partial_path(path: str | Path) -> Path:
    """Where an output is written until it is complete."""
    return Path(f"{path}.partial")


def holds_output(path: Path) -> bool:
    """A file, or a folder of checkpoints (the only folders runs claim) with one in it."""
    return path.is_file() or (path.is_dir() and any(path.glob("*.ckpt")))


def remove_output(path: Path) -> None:
    """Remove an earlier run's output (a file, or a checkpoint folder's checkpoints)."""
    if path.is_dir():
        for checkpoint in path.glob("*.ckpt"):
            checkpoint.unlink()
    else:
        path.unlink(missing_ok=True)


@contextmanager
def _folder_guard(folder: Path) -> Iterator[None]:
    """An exclusive flock on `folder`: checking a lock and taking it over are one step for every process on
    this host (the kernel drops the flock of a process that dies, so the guard itself is never stale)."""
    handle = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)


class OutputLock:
    """Claims output paths for one run: ``<path>.lock`` beside each, holding the owner's host and pid.

    A second run that would write the same files while the first is alive is refused with both named
    (two fits in one folder would otherwise overwrite each other's checkpoints and vector). Reading a lock,
    judging it stale (its process is gone) and replacing it happen under an flock of the folder, and a lock
    appears whole (hard-linked from a complete temporary file), so of any number of simultaneous starts
    exactly one wins. The owning process may re-claim.

    Once the locks are held, an output an earlier run left is refused unless `overwrite` (then it is removed
    now, so that a run stopped later leaves nothing that passes for its own); outputs in `continued` (a
    resumed fit's checkpoint folder) are the run's own. An output that is also one of the run's `inputs`
    is refused outright: the run would rewrite the file it reads.
    """

    def __init__(
        self,
        paths: Iterable[str | Path],
        what: str,
        overwrite: bool = False,
        inputs: Iterable[str | Path] = (),
        continued: Iterable[str | Path] = (),
    ) -> None:
        self.paths = [Path(path) for path in paths]
        self.locks = [Path(f"{path}.lock") for path in self.paths]
        self.what = what
        self.overwrite = overwrite
        self.inputs = {Path(path).resolve() for path in inputs}
        self.continued = {Path(path).resolve() for path in continued}
        self.owner = {"host": socket.gethostname(), "pid": os.getpid()}

    def _holder(self, lock: Path) -> dict | None:
        """Who else holds `lock` and still runs; None when it is free, stale (its process is gone) or ours."""
        try:
            holder = json.loads(lock.read_text())
        except (OSError, ValueError):
            return None  # locks appear whole: an unreadable one is not a live run's
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

    def _claim(self, lock: Path) -> None:
        lock.parent.mkdir(parents=True, exist_ok=True)
        with _folder_guard(lock.parent):
            holder = self._holder(lock)
            if holder is not None:
                self.release()
                raise FileExistsError(
                    f"{lock.with_suffix('')} is being written by another run (pid {holder['pid']} on "
                    f"{holder['host']}, since {holder.get('since', '?')}); wait for it to end or give this run "
                    f"other outputs ({self.what})"
                )
            lock.unlink(missing_ok=True)  # stale or our own: claimed afresh
            text = json.dumps({**self.owner, "since": time.strftime("%Y-%m-%d %H:%M:%S")})
            handle, whole = tempfile.mkstemp(dir=lock.parent, prefix=f".{lock.name}.", suffix=".tmp")
            try:
                with os.fdopen(handle, "w") as file:
                    file.write(text)
                os.chmod(whole, 0o666 & ~_umask())
                os.link(whole, lock)  # appears whole; fails if it exists (the guard makes that impossible)
            finally:
                os.unlink(whole)

    def acquire(self) -> None:
        for path in self.paths:
            if path.resolve() in self.inputs:
                raise ValueError(
                    f"{path} is both a file this run reads and an output it would write: give another output "
                    f"({self.what})"
                )
        for lock in self.locks:
            self._claim(lock)
        earlier = [path for path in self.paths if path.resolve() not in self.continued and holds_output(path)]
        if earlier and not self.overwrite:
            self.release()
            raise FileExistsError(
                f"{', '.join(map(str, earlier))}: an earlier run's output, which this run would replace; give "
                f"--overwrite to replace it, or other outputs ({self.what})"
            )
        for path in earlier:
            remove_output(path)

    def release(self) -> None:
        """Remove the locks this process holds (never another live run's)."""
        for lock in self.locks:
            try:
                holder = json.loads(lock.read_text())
            except (OSError, ValueError):
                continue
            if holder.get("host") == self.owner["host"] and holder.get("pid") == self.owner["pid"]:
                lock.unlink(missing_ok=True)
