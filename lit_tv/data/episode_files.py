"""The MTV reference's fixed 2-way episode files (``flower_{train,test}.json``, ``cub_{train,test}.json``).

Each file is a JSON list of episodes, one object each: ``query``, ``pos`` and ``neg`` (image paths) and
``pos_label`` / ``neg_label`` (class names). The query shows the positive class; the positive and negative
images are the two demonstrations. The paths are the reference's own (some folder prefix, then the
official layout under the dataset's image folder), so only their last ``depth`` parts are kept and looked
up under the image folder of the dataset root given here.

Checked against copies of the real files (github.com/noradunphy/MTV, a fork of Brandon3964/MultiModal-Task-Vector,
MTV/data/flower/flower_test.json and MTV/data/cub/cub_test.json): records like ``{"pos":
"./flowers-102/jpg/image_03505.jpg", "neg": ..., "query": ..., "pos_label": "sweet william", "neg_label":
"frangipani"}``, CUB's paths ``./CUB_200_2011/images/030.Fish_Crow/Fish_Crow_0017_26127.jpg`` with labels
like ``"Fish Crow"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

from lit_tv.data.records import DataError, DataIssues, field, image_problem, read_json_list, require

IMAGE_FIELDS = ("query", "pos", "neg")
LABEL_FIELDS = ("pos_label", "neg_label")


@dataclass(frozen=True)
class ListedEpisode:
    """One record of a reference episode file, its images found under the dataset root."""

    query: Path
    positive: Path
    negative: Path
    positive_label: str
    negative_label: str
    origin: str  # "<file>: record <index>", for errors


@dataclass(frozen=True)
class ImageLayout:
    """Where a dataset's images lie: ``folder`` under the root, ``depth`` path parts below it (1: a file
    name, 2: a class folder and a file name), ``form`` the official form of such a path, for errors."""

    folder: str
    depth: int
    form: str


def episode_file_paths(episodes: str | Sequence[str], root: Path, names: tuple[str, str]) -> tuple[Path, Path]:
    """The train and test episode files named by the ``episodes`` option: a folder holding them under the
    reference's names ``names``, or two files (train, test). Relative paths are taken under the dataset root."""
    if isinstance(episodes, str):
        folder = root / episodes
        if not folder.is_dir():
            raise FileNotFoundError(
                f"data.init_args.episodes: {folder} is not a folder (expected the folder holding the MTV "
                f"reference's {names[0]} and {names[1]}, or a list [train file, test file]; "
                "null draws seeded episodes from a class split instead)"
            )
        paths = [folder / name for name in names]
    else:
        if len(episodes) != 2:
            raise ValueError(
                f"data.init_args.episodes: expected a folder or two files [train file, test file], got {episodes!r}"
            )
        paths = [root / path for path in episodes]
    for path, name in zip(paths, names, strict=True):
        require(path, f"MTV reference episode file (like its {name}; data.init_args.episodes null draws seeded ones)")
    return paths[0], paths[1]


def read_episode_file(path: Path, root: Path, layout: ImageLayout, issues: DataIssues) -> list[ListedEpisode]:
    """Every episode of one file, in file order; a malformed record raises (or in skip mode is left out)."""
    records = read_json_list(path, "MTV reference episode file", "episodes with fields " + ", ".join(IMAGE_FIELDS))
    episodes = []
    for index, record in enumerate(records):
        with issues.guard("malformed episodes"):
            episodes.append(_listed(record, f"{path}: record {index}", root / layout.folder, layout))
    return episodes


def _listed(record: Any, where: str, images: Path, layout: ImageLayout) -> ListedEpisode:
    paths = [
        _image_path(field(record, name, str, where), images, layout, f"{where}: field '{name}'")
        for name in IMAGE_FIELDS
    ]
    labels = [field(record, name, str, where).strip() for name in LABEL_FIELDS]
    for name, label in zip(LABEL_FIELDS, labels, strict=True):
        if not label:
            raise DataError(f"{where}: field '{name}' is empty (expected a class name)")
    if labels[0] == labels[1]:
        raise DataError(
            f"{where}: fields 'pos_label' and 'neg_label' are both {labels[0]!r}; an episode has two classes"
        )
    query, positive, negative = paths
    return ListedEpisode(query, positive, negative, labels[0], labels[1], origin=where)


def _image_path(text: str, images: Path, layout: ImageLayout, where: str) -> Path:
    """The reference's path mapped under ``images``: its last ``layout.depth`` parts, whatever came before."""
    parts = [part for part in PurePosixPath(text.replace("\\", "/")).parts if part not in ("/", ".")]
    kept = parts[-layout.depth :]
    if len(kept) < layout.depth or ".." in kept:
        raise DataError(f"{where}: {text!r} does not end in an image path of the official layout ({layout.form})")
    return images.joinpath(*kept)


class ImageCheck:
    """Whether each image of listed episodes can be read, each file decoded once (episodes share images)."""

    def __init__(self, issues: DataIssues) -> None:
        self.issues = issues
        self._problem = cache(image_problem)

    def usable(self, episode: ListedEpisode) -> bool:
        """True if every image reads; otherwise raises, or in skip mode counts the episode and returns False."""
        with self.issues.guard("episodes with unreadable images"):
            for name, image in zip(IMAGE_FIELDS, (episode.query, episode.positive, episode.negative), strict=True):
                problem = self._problem(image)
                if problem:
                    raise DataError(f"{image}: {problem} (field '{name}' of {episode.origin})")
            return True
        return False

    def take(
        self, candidates: Sequence[ListedEpisode], n: int | None, purpose: str, source: Path
    ) -> tuple[list[ListedEpisode], list[ListedEpisode]]:
        """The first ``n`` usable candidates (all of them if None), in order, and the candidates after them."""
        chosen: list[ListedEpisode] = []
        looked = 0
        for episode in candidates:
            if n is not None and len(chosen) == n:
                break
            looked += 1
            if self.usable(episode):
                chosen.append(episode)
        if n is not None and len(chosen) < n:
            raise DataError(
                f"{source}: {purpose} need {n} episodes but only {len(chosen)} usable ones are left; lower the size"
            )
        return chosen, list(candidates[looked:])
