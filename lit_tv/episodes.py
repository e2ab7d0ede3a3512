"""The data every benchmark yields and every method consumes: examples grouped into episodes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from PIL import Image

ImageLike = Image.Image | str | Path
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
