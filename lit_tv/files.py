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


def flock_holders(lock_file: Path) -> list[int] | None:
    """The pids the kernel lists (``/proc/locks``) as holding an flock on ``lock_file`` that this process can see, or
    None where the kernel keeps no such list (not Linux). A pid is the process that took the lock: one that
    inherited it (a process the run started) holds it on under that pid after the taker has ended."""
    try:
        table = Path("/proc/locks").read_text()
        status = lock_file.stat()
    except OSError:
        return None
    file_id = f"{os.major(status.st_dev):02x}:{os.minor(status.st_dev):02x}:{status.st_ino}"
    rows = (line.split() for line in table.splitlines())  # "1: FLOCK ADVISORY WRITE <pid> <dev:inode> 0 EOF"
    pids = [int(row[4]) for row in rows if len(row) > 5 and row[1] == "FLOCK" and row[5] == file_id]
    return [pid for pid in pids if pid > 0]  # 0: a holder in another pid namespace


def command_line(pid: int) -> str | None:
    """The command line of a live process (Linux); "" where it cannot be read; None when the process has ended
    (gone, or a zombie: its command line is empty)."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return None
    except OSError:
        return ""
    return command.replace(b"\0", b" ").decode(errors="replace").strip() or None


def held_by(lock_file: Path) -> str:
    """Who holds an output's ``lock_file`` and how to clear it when no lit_tv run is behind it: the rest of a
    message that starts with the output's path. A lit_tv run is this process or one whose command line names
    lit_tv (``lit-tv``, ``python -m lit_tv``, ...); a stale lock is one whose taker has ended."""
    clear = f"if no run is writing it, delete {lock_file} and run again"
    holders = flock_holders(lock_file)
    if not holders:
        return f"is locked by another process ({lock_file} is held): wait for its run to end or, {clear}"
    for pid in holders:
        command = "this process" if pid == os.getpid() else command_line(pid)
        if command is None:
            continue
        if command == "this process" or "lit_tv" in command or "lit-tv" in command:
            return (
                f"is being written by another run (pid {pid}: {command:.100}, holding {lock_file}): wait for it to end"
            )
        return (
            f"is locked by pid {pid} ({command or 'command line unreadable':.100}), which is not a lit_tv run: "
            f"end it (kill {pid}) or, {clear}"
        )
    return (
        f"is locked by a stale lock: {lock_file} is still held though the process that took it (pid {holders[0]}) "
        f"has ended (a process it started inherited the lock; `fuser {lock_file}` names it): end that process or, "
        f"{clear}"
    )


class OutputLock:
    """Claims output paths for one run: an flock on ``<path>.lock`` beside each (`filelock.FileLock`).

    A second run that would write the same files while the first is alive is refused with the path named
    (two fits in one folder would otherwise overwrite each other's checkpoints and vector), and the lock's holder
    (`held_by`: a live run to wait for, or another program or a stale lock, with how to clear it). The kernel drops
    the lock of a process that ends, however it ends, so a killed run's lock is never in the way; of any number
    of simultaneous starts exactly one wins. A lock is held until `release` or until this object is collected;
    the owning process may re-claim (a fit stopped in-process and resumed: the same lock, `is_singleton`).

    Once the locks are held, an output an earlier run left is refused unless `overwrite`; then it stays until
    the run writes its own in its place (files atomically at the end, checkpoint folders through
    `ReplaceOnSuccess`), so a run that fails or is stopped loses nothing. Outputs in `continued` (a resumed fit's
    checkpoint folder) are the run's own; `scratch` folders (an `--overwrite` fit's staging folders) are emptied
    of what an earlier, unfinished run left there. An output that is also one of the run's `inputs` is refused
    outright: the run would rewrite the file it reads.
    """

    def __init__(
        self,
        paths: Iterable[str | Path],
        what: str,
        overwrite: bool = False,
        inputs: Iterable[str | Path] = (),
        continued: Iterable[str | Path] = (),
        scratch: Iterable[str | Path] = (),
    ) -> None:
        self.paths = [Path(path) for path in paths]
        self.what = what
        self.overwrite = overwrite
        self.inputs = {Path(path).resolve() for path in inputs}
        self.continued = {Path(path).resolve() for path in continued}
        self.scratch = {Path(path).resolve() for path in scratch} - self.continued
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
                advice = held_by(Path(lock.lock_file))
                raise FileExistsError(f"{path} {advice}; or give this run other outputs ({self.what})") from None
            self.held.append(lock)
        earlier = [
            path for path in self.paths if path.resolve() not in self.continued | self.scratch and holds_output(path)
        ]
        if earlier and not self.overwrite:
            self.release()
            raise FileExistsError(
                f"{', '.join(map(str, earlier))}: an earlier run's output, which this run would replace; give "
                f"--overwrite to replace it, or other outputs ({self.what})"
            )
        for path in self.paths:
            if path.resolve() in self.scratch:
                remove_output(path)

    def release(self) -> None:
        """Release the locks this run holds."""
        for lock in self.held:
            lock.release(force=True)
        self.held = []
