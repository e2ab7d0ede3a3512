"""Reading benchmark files with checks: records, splits, and the errors that name the file and field.

Annotations are read in a DataModule's ``__init__``, so a bad file fails before any model loads.
Images stay paths (or rows of a table, `lit_tv.episodes.StoredImage`): FrozenVLM decodes them (as a viewer shows
them, `lit_tv.images`) only when a prompt needs them.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lit_tv.episodes import Example, StoredImage
from lit_tv.images import ImageReadError, read_image


class DataError(ValueError):
    """A benchmark file does not hold what its official release holds; the message names the file and field."""


def require(path: Path, what: str) -> Path:
    """`path` itself, which must exist; `what` says what the official layout has there."""
    if not path.exists():
        raise FileNotFoundError(f"{what} not found: {path}")
    return path


def parse_json(text: str, where: str) -> Any:
    """The JSON value of ``text``, read at ``where`` (a file, or a jsonl file's line) for the error."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise DataError(f"{where}: not valid JSON ({error})") from error


def read_json(path: Path, what: str) -> Any:
    return parse_json(require(path, what).read_text(), str(path))


def read_json_list(path: Path, what: str, expected: str) -> list:
    """A JSON file holding a list of records (``expected`` describes one, for the error)."""
    data = read_json(path, what)
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a list of {expected}, got {type(data).__name__}")
    return data


_KINDS = {str: "a string", list: "a list", dict: "an object", int: "an integer"}


def field(record: Any, name: str, kind: type, where: str) -> Any:
    """``record[name]``, which must be of ``kind``; ``where`` names the file and record for the error."""
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected an object with field '{name}', got {type(record).__name__}")
    if name not in record:
        raise DataError(f"{where}: field '{name}' is missing (expected {_KINDS[kind]})")
    value = record[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise DataError(f"{where}: field '{name}' should be {_KINDS[kind]}, got {value!r:.60}")
    return value


def image_problem(image: Path | StoredImage) -> str | None:
    """Why ``image`` (a file, or an image stored in a table) cannot serve as an image, or None. It is decoded as a
    prompt decodes it (a JPEG at reduced scale, so cheaply), since a truncated file opens fine and fails only when its
    pixels are read."""
    try:
        read_image(image, draft=(64, 64))
    except FileNotFoundError:
        return "image file not found"
    except ImageReadError as error:
        return f"cannot read image ({error.reason})"
    return None


@dataclass(frozen=True)
class Record:
    """An example, where it was read ('field 'image' of val.json record 3') and its group (task or class)."""

    example: Example
    origin: str
    group: str = ""


def ranked_answers(raw: list, where: str) -> tuple[str, ...]:
    """A non-empty list of answers, each a string or an official ``{"answer": ...}`` object, the most common one
    first (ties: the first seen): it is what demonstrations show and what the REINFORCE loss scores; the order
    does not change VQA accuracy."""
    if not raw:
        raise DataError(f"{where}: field 'answers' is empty (expected the human answers)")
    answers = [
        item if isinstance(item, str) else field(item, "answer", str, f"{where}, answers[{rank}]")
        for rank, item in enumerate(raw)
    ]
    top = Counter(answers).most_common(1)[0][0]
    answers.remove(top)
    return (top, *answers)


@dataclass(frozen=True)
class Split:
    """A named list of records, e.g. the official train split of one benchmark.

    ``order`` names the seeded order its records are drawn in (default: ``name``): a copy of an official file
    (a table of the same records in the same order) is drawn as that file, so it gives the same episodes.
    """

    name: str
    records: list[Record]
    order: str = ""


class DataIssues:
    """Bad records stop the run, or with ``skip`` are left out, counted by kind and reported once."""

    def __init__(self, skip: bool) -> None:
        self.skip = skip
        self.counts: Counter[str] = Counter()
        self.first: dict[str, str] = {}

    @contextmanager
    def guard(self, kind: str = "bad records") -> Iterator[None]:
        """Read or check one record: a DataError inside is raised, or (skip mode) swallowed and counted."""
        try:
            yield
        except DataError as error:
            if not self.skip:
                raise
            self.counts[kind] += 1
            self.first.setdefault(kind, str(error))

    def summary(self) -> str:
        return "; ".join(f"skipped {count} {kind} (first: {self.first[kind]})" for kind, count in self.counts.items())
