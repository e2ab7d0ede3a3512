"""Flowers-102 and CUB-200-2011 as 2-way k-shot episodes (MTV's Flowers/CUB setting), from their official releases.

An episode names two classes as options A and B in the MTV reference code's prompt, shows k example
images per class (A's then B's, round by round, k = 1 in the paper), then a query image of one of
the two; the answer is its letter. The option order is random, so A and B are each the answer about
half of the time.

With ``episodes`` the episodes are the MTV reference's own fixed lists (`lit_tv.data.episode_files`):
support episodes and REINFORCE queries from its train file, test episodes every one of its test file,
in order. Without, classes are split (seeded) into train and test classes that never overlap: support
episodes, REINFORCE and validation queries use train classes only, test episodes test classes only.
Within them the official image split decides: demonstrations come from official train images,
validation and test queries from official test images.
"""

from __future__ import annotations

import random
from functools import partial
from pathlib import Path
from typing import ClassVar, Literal

from lit_tv.data.datamodules import EpisodeDataModule, Role, Sizes
from lit_tv.data.episode_files import ImageCheck, ImageLayout, ListedEpisode, episode_file_paths, read_episode_file
from lit_tv.data.flower_names import FLOWER_NAMES
from lit_tv.data.pool import Pool, seeded_random
from lit_tv.data.records import DataError, Record, Split, require
from lit_tv.episodes import Episode, Example
from lit_tv.metrics import ExactMatch
from lit_tv.prompts import PromptTemplate

LETTERS = "AB"
QUESTION = (
    "What is the type of {kind} in the image? A.{a} B.{b}\n"
    "Answer with the option's letter from the given choice directly."
)


class TwoWayClassification(EpisodeDataModule):
    """2-way episodes, from the MTV reference's episode files or over a seeded split into train and test classes.

    Subclasses set ``image_layout`` and ``episode_names`` (the reference's file names) and read the official
    train and test images of all classes in `read_official` (records grouped by class name).

    Args:
        root: the dataset's folder, in its official layout.
        episodes: the MTV reference's episode files: the folder holding them under their reference names
            (``.``: the dataset root), or a list [train file, test file]; relative paths are taken under
            ``root``. ``None``: draw seeded episodes over a class split (for users without the files).
        test_class_fraction: share of the classes held out for testing (without ``episodes``).
        shots: example images per class in support episodes (MTV: 1, one 2-way episode per iteration).
        test_shots: example images per class in training, validation and test queries (MTV+1-shot: 1).
            REINFORCE queries get them too, so the head search sees the prompt shape it is tested on.
            With ``episodes`` both are 0 or 1: the files hold one example image per class.
        option_match: how an answer counts (`ExactMatch`): ``exact``, the reference's (the text before the
            first '.' and newline is the letter), or ``leading_letter`` (the letter it starts with).
    """

    kind: ClassVar[str]
    title: ClassVar[str]
    image_layout: ClassVar[ImageLayout]
    episode_names: ClassVar[tuple[str, str]]
    template = PromptTemplate(query="{images}{text} Answer:", answer=" {answer}\n")
    train_split: Split
    test_split: Split

    def __init__(
        self,
        root: str,
        episodes: str | list[str] | None = None,
        test_class_fraction: float = 0.5,
        shots: int = 1,
        test_shots: int = 1,
        option_match: Literal["exact", "leading_letter"] = "exact",
        **kwargs,
    ) -> None:
        super().__init__(shots=shots, test_shots=test_shots, **kwargs)
        self.metric = partial(ExactMatch, options=LETTERS, option_match=option_match)
        if not 0 < test_class_fraction < 1:
            raise ValueError(f"test_class_fraction must be between 0 and 1, got {test_class_fraction}")
        self.test_class_fraction = test_class_fraction
        base = Path(root)
        require(base / self.image_layout.folder, f"{self.title} image folder")
        self.listed: dict[str, list[ListedEpisode]] | None = None
        if episodes is None:
            self.train_split, self.test_split = self.read_official(base)
            return
        for option, value in (("shots", shots), ("test_shots", test_shots)):
            if value > 1:
                raise ValueError(
                    f"data.init_args.{option} = {value}: the reference's episode files (data.init_args.episodes) "
                    "hold one example image per class, so 0 or 1"
                )
        self.episode_files = episode_file_paths(episodes, base, self.episode_names)
        self.listed = {
            side: read_episode_file(path, base, self.image_layout, self.issues)
            for side, path in zip(("train", "test"), self.episode_files, strict=True)
        }

    def read_official(self, base: Path) -> tuple[Split, Split]:
        """The official train and test images of every class, records grouped by class name."""
        raise NotImplementedError

    def class_split(self, seed: int) -> tuple[list[str], list[str]]:
        """Train and test classes: a disjoint split of every class found, seeded by ``seed``."""
        classes = sorted({record.group for record in self.train_split.records + self.test_split.records})
        seeded_random(seed, "classes").shuffle(classes)
        held_out = round(len(classes) * self.test_class_fraction)
        train, test = sorted(classes[held_out:]), sorted(classes[:held_out])
        if len(train) < 2 or len(test) < 2:
            raise DataError(
                f"{type(self).__name__}: {len(classes)} classes split into {len(train)} train and "
                f"{len(test)} test classes; 2-way episodes need at least 2 on each side"
            )
        return train, test

    def _pool(self, split: Split, classes: list[str], side: str, seed: int) -> Pool:
        return self.pool(
            Split(
                f"{split.name} of the {side} classes", [record for record in split.records if record.group in classes]
            ),
            seed,
        )

    def _episode(self, query: Record, classes: list[str], shot_pool: Pool, shots: int, rng: random.Random) -> Episode:
        options = [query.group, rng.choice([name for name in classes if name != query.group])]
        rng.shuffle(options)
        text = QUESTION.format(kind=self.kind, a=options[0], b=options[1])
        examples = {name: shot_pool.draw(shots, rng, "demonstrations", name, exclude=[query]) for name in options}

        def ask(record: Record) -> Example:
            return Example(text, record.example.images, (LETTERS[options.index(record.group)],))

        return Episode(query=ask(query), shots=tuple(ask(examples[name][i]) for i in range(shots) for name in options))

    def _listed_episode(self, listed: ListedEpisode, shots: int, rng: random.Random) -> Episode:
        """The reference's episode: a coin flip puts the positive class first (A) or second (B), the
        example images follow in option order, the answer is the positive class's letter."""
        positive_first = rng.randint(0, 1) == 0
        labels = [listed.positive_label, listed.negative_label]
        images = [listed.positive, listed.negative]
        if not positive_first:
            labels.reverse()
            images.reverse()
        text = QUESTION.format(kind=self.kind, a=labels[0], b=labels[1])
        examples = tuple(Example(text, (image,), (letter,)) for image, letter in zip(images, LETTERS, strict=True))
        query = Example(text, (listed.query,), (LETTERS[labels.index(listed.positive_label)],))
        return Episode(query=query, shots=examples if shots else ())

    def _build_listed(
        self, listed: dict[str, list[ListedEpisode]], seed: int, sizes: Sizes
    ) -> dict[Role, list[Episode]]:
        """REINFORCE, validation and support episodes from the train file in a seeded order, disjoint (support
        from all of it with ``overlap``); test episodes the test file's, in its order."""
        check = ImageCheck(self.issues)
        train_file, test_file = self.episode_files
        train = seeded_random(seed, "listed train").sample(listed["train"], len(listed["train"]))
        chosen: dict[Role, list[ListedEpisode]] = {}
        purposes: tuple[tuple[Role, str], ...] = (("train", "REINFORCE queries"), ("val", "validation queries"))
        for role, purpose in purposes:
            chosen[role], train = check.take(train, sizes[role], purpose, train_file)
        if self.overlap:
            train = seeded_random(seed, "listed support").sample(listed["train"], len(listed["train"]))
        chosen["support"], _ = check.take(train, sizes["support"], "support episodes", train_file)
        chosen["test"], _ = check.take(listed["test"], sizes["test"], "test episodes", test_file)
        episodes: dict[Role, list[Episode]] = {}
        for role, records in chosen.items():
            rng, shots = seeded_random(seed, role), self.shots if role == "support" else self.test_shots
            episodes[role] = [self._listed_episode(record, shots, rng) for record in records]
        return episodes

    def first_train_queries(self, count: int) -> list[Episode]:
        """The first `count` usable episodes of the reference's train file, in its order (where the MTV reference
        scores its final heads: train[:50]); without the files, the first official train images of the train
        classes, each an episode like a REINFORCE query's."""
        rng, purpose = seeded_random(self.seed, "selection"), "head-selection queries (the first records)"
        if self.listed is not None:
            chosen, _ = ImageCheck(self.issues).take(self.listed["train"], count, purpose, self.episode_files[0])
            return [self._listed_episode(listed, self.test_shots, rng) for listed in chosen]
        classes, _ = self.class_split(self.seed)
        shots = self._pool(self.train_split, classes, "train", self.seed)
        queries = Pool(self.train_split, self.seed, self.issues, shuffle=False).first(count, purpose, classes)
        return [self._episode(query, classes, shots, self.test_shots, rng) for query in queries]

    def build_episodes(self, seed: int, sizes: Sizes) -> dict[Role, list[Episode]]:
        if self.listed is not None:
            return self._build_listed(self.listed, seed, sizes)
        train_classes, test_classes = self.class_split(seed)
        train_shots = self._pool(self.train_split, train_classes, "train", seed)
        test_shots = self._pool(self.train_split, test_classes, "test", seed)
        queries = {
            "train": train_shots.take(sizes["train"], "REINFORCE queries"),
            "val": self._pool(self.test_split, train_classes, "train", seed).take(sizes["val"], "validation queries"),
            "test": self._pool(self.test_split, test_classes, "test", seed).take(sizes["test"], "test queries"),
        }
        sides: dict[Role, tuple[list[str], Pool]] = {
            "train": (train_classes, train_shots),
            "val": (train_classes, train_shots),
            "test": (test_classes, test_shots),
        }
        episodes: dict[Role, list[Episode]] = {}
        for role, (classes, shot_pool) in sides.items():
            rng = seeded_random(seed, role)
            episodes[role] = [self._episode(query, classes, shot_pool, self.test_shots, rng) for query in queries[role]]
        rng = seeded_random(seed, "support")
        episodes["support"] = [
            self._episode(
                train_shots.draw(1, rng, "support queries", rng.choice(train_classes))[0],
                train_classes,
                train_shots,
                self.shots,
                rng,
            )
            for _ in range(sizes["support"] or 0)
        ]
        return episodes


def _mat_array(path: Path, name: str) -> list[int]:
    """An integer array field of a MATLAB file."""
    from scipy.io import loadmat  # only Flowers-102 needs scipy
    from scipy.io.matlab import MatReadError

    try:
        data = loadmat(require(path, "Flowers-102 file"))
    except (MatReadError, ValueError, OSError, IndexError, TypeError) as error:  # scipy's ways to fail on non-MATLAB
        raise DataError(f"{path}: not a readable .mat file ({error})") from error
    if name not in data:
        raise DataError(f"{path}: field '{name}' is missing (expected an array of integers)")
    return [int(value) for value in data[name].ravel()]


class Flowers102(TwoWayClassification):
    """Oxford Flowers-102: ``jpg/image_XXXXX.jpg``, ``imagelabels.mat`` (field ``labels``, 1..102) and
    ``setid.mat`` (fields ``trnid``, ``valid``, ``tstid``); train + val images serve as train images."""

    kind = "flower"
    title = "Flowers-102"
    image_layout = ImageLayout("jpg", 1, "jpg/image_XXXXX.jpg")
    episode_names = ("flower_train.json", "flower_test.json")

    def read_official(self, base: Path) -> tuple[Split, Split]:
        labels = _mat_array(base / "imagelabels.mat", "labels")
        setid = base / "setid.mat"
        train_ids = _mat_array(setid, "trnid") + _mat_array(setid, "valid")
        images = base / self.image_layout.folder
        return (
            self._read(train_ids, labels, images, f"Flowers-102 {setid.name} trnid+valid"),
            self._read(_mat_array(setid, "tstid"), labels, images, f"Flowers-102 {setid.name} tstid"),
        )

    def _read(self, ids: list[int], labels: list[int], images: Path, name: str) -> Split:
        records = []
        for image_id in ids:
            with self.issues.guard():
                if not 1 <= image_id <= len(labels):
                    raise DataError(
                        f"{name}: image id {image_id} has no entry in field 'labels' of imagelabels.mat "
                        f"({len(labels)} images)"
                    )
                label = labels[image_id - 1]
                if not 1 <= label <= len(FLOWER_NAMES):
                    raise DataError(
                        f"imagelabels.mat: field 'labels' gives image {image_id} label {label}, "
                        f"expected 1..{len(FLOWER_NAMES)}"
                    )
                flower = FLOWER_NAMES[label - 1]
                records.append(
                    Record(
                        Example("", (images / f"image_{image_id:05d}.jpg",), (flower,)),
                        f"id {image_id} in {name}",
                        group=flower,
                    )
                )
        return Split(name, records)


class CUB200(TwoWayClassification):
    """CUB-200-2011: ``images.txt``, ``image_class_labels.txt``, ``classes.txt``, ``train_test_split.txt``
    (lines of ``<id> <value>``) and ``images/``; '001.Black_footed_Albatross' is shown as 'Black footed Albatross'."""

    kind = "bird"
    title = "CUB-200-2011"
    image_layout = ImageLayout("images", 2, "images/<class folder>/<file>.jpg")
    episode_names = ("cub_train.json", "cub_test.json")

    def read_official(self, base: Path) -> tuple[Split, Split]:
        images = base / self.image_layout.folder
        tables = {
            name: self._table(base / name)
            for name in ("images.txt", "image_class_labels.txt", "classes.txt", "train_test_split.txt")
        }
        splits: dict[str, list[Record]] = {"1": [], "0": []}
        for image_id, relative in tables["images.txt"].items():
            with self.issues.guard():
                class_id = self._lookup(tables, "image_class_labels.txt", image_id, base)
                bird = self._lookup(tables, "classes.txt", class_id, base).split(".", 1)[-1].replace("_", " ")
                is_train = self._lookup(tables, "train_test_split.txt", image_id, base)
                if is_train not in splits:
                    raise DataError(
                        f"{base / 'train_test_split.txt'}: image {image_id} is marked {is_train!r}, "
                        f"expected 1 (train) or 0 (test)"
                    )
                splits[is_train].append(
                    Record(
                        Example("", (images / relative,), (bird,)),
                        f"image {image_id} of {base / 'images.txt'}",
                        group=bird,
                    )
                )
        return Split("CUB-200-2011 train images", splits["1"]), Split("CUB-200-2011 test images", splits["0"])

    def _table(self, path: Path) -> dict[str, str]:
        """``<id> <value>`` lines as a dict."""
        table = {}
        for number, line in enumerate(require(path, "CUB-200-2011 file").read_text().splitlines(), start=1):
            if not line.strip():
                continue
            with self.issues.guard():
                parts = line.split(maxsplit=1)
                if len(parts) != 2:
                    raise DataError(f"{path}:{number}: expected '<id> <value>', got {line!r}")
                table[parts[0]] = parts[1].strip()
        return table

    @staticmethod
    def _lookup(tables: dict[str, dict[str, str]], name: str, key: str, base: Path) -> str:
        if key not in tables[name]:
            raise DataError(f"{base / name}: no line for id {key}")
        return tables[name][key]
