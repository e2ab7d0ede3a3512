"""The data every benchmark yields and every method consumes: examples grouped into episodes."""

from __future__ import annotations

import io
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from PIL import Image


class StoredImage(ABC):
    """An image file's bytes kept inside a larger file (a row of a table) rather than in a file of its own.

    Read only when a prompt or a check needs it, so a benchmark of thousands of images holds none of them in memory.
    """

    @abstractmethod
    def encoded(self) -> bytes:
        """The image file's bytes (JPEG, PNG, ...), as a file of its own would hold them."""

    def open(self) -> Image.Image:
        """`PIL.Image.open` of the bytes, not yet decoded: `lit_tv.images.read_image` decodes it as it does a file."""
        return Image.open(io.BytesIO(self.encoded()))


ImageLike = Image.Image | str | Path | StoredImage

# where a prompt's examples come from: one name for the shapes world and the cross-modal tasks
Modality = Literal["text", "image", "mixed"]


@dataclass(frozen=True)
class Example:
    """One input (text with zero or more images) and its reference answers (first is the target)."""

    text: str
    images: tuple[ImageLike, ...] = ()
    answers: tuple[str, ...] = ()
    task: str = ""

    @property
    def answer(self) -> str:
        """The target answer used in demonstrations and for first-token scoring."""
        if not self.answers:
            raise ValueError(f"example {self.text!r} has no answer")
        return self.answers[0]


@dataclass(frozen=True)
class Episode:
    """Demonstrations (shots, answered) followed by one query whose answer the model must give.

    `seed` is the data seed that drew it: a run over several seeds scores (and builds vectors) per seed.
    """

    query: Example
    shots: tuple[Example, ...] = field(default_factory=tuple)
    seed: int = 0

    @property
    def task(self) -> str:
        return self.query.task

    def images(self) -> list[ImageLike]:
        """All images in prompt order: shots first, then the query."""
        return [image for example in (*self.shots, self.query) for image in example.images]

    def prompt_size(self) -> tuple[int, int]:
        """What the prompt's length grows with, known before a model tokenises it: its images (each many
        tokens), then the characters of its texts and of its shots' answers."""
        examples = (*self.shots, self.query)
        characters = sum(len(example.text) for example in examples) + sum(len(shot.answer) for shot in self.shots)
        return len(self.images()), characters
