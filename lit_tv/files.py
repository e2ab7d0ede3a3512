"""Every file lit_tv writes goes through here, so that a reader (or a crash) never sees half of one.

Whole files: a temporary file beside the target, renamed over it only when complete (no ``.tmp``
is left behind when the write fails or is interrupted). Streams (answers written as they come):
whole lines, flushed as they are written, under ``<name>.partial`` until complete. Outputs are claimed
(`OutputLock`): one live run per output, and an earlier run's output is replaced only when asked. Both
are readable like any file the user makes (0644 under the usual umask), not 0600 as temporary files are.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from filelock import FileLock, Timeout


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


class OutputLock:
    """Claims output paths for one run: an flock on ``<path>.lock`` beside each (`filelock.FileLock`).

    A second run that would write the same files while the first is alive is refused with the path named
    (two fits in one folder would otherwise overwrite each other's checkpoints and vector). The kernel drops
    the lock of a process that ends, however it ends, so a killed run's lock is never in the way; of any number
    of simultaneous starts exactly one wins. A lock is held until `release` or until this object is collected;
    the owning process may re-claim (a fit stopped in-process and resumed: the same lock, `is_singleton`).

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
        self.what = what
        self.overwrite = overwrite
        self.inputs = {Path(path).resolve() for path in inputs}
        self.continued = {Path(path).resolve() for path in continued}
        self.held: list[FileLock] = []

    def acquire(self) -> None:
        for path in self.paths:
            if path.resolve() in self.inputs:
                raise ValueError(
                    f"{path} is both a file this run reads and an output it would write: give another output "
                    f"({self.what})"
                )
        for path in self.paths:
            path.parent.mkdir(parents=True, exist_ok=True)
            lock = FileLock(f"{path}.lock", is_singleton=True, thread_local=False)
            try:
                lock.acquire(timeout=0)
            except Timeout:
                self.release()
                raise FileExistsError(
                    f"{path} is being written by another run (it holds {lock.lock_file}); wait for it to end or "
                    f"give this run other outputs ({self.what})"
                ) from None
            self.held.append(lock)
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
        """Release the locks this run holds."""
        for lock in self.held:
            lock.release(force=True)
        self.held = []
