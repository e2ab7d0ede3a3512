"""What every benchmark DataModule shares: checked reading, seeded disjoint pools, skip-mode accounting.

Annotations are read in ``__init__``, so a bad file fails before any model loads; the records each
role uses are chosen, and their images checked, once in ``setup``. Images stay paths: FrozenVLM
opens them (and converts them to RGB) only when a prompt needs them.
"""

from __future__ import annotations

import json
import random
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from itertools import zip_longest
from pathlib import Path
from typing import Any, ClassVar, Literal

import lightning as L
from lightning.pytorch.utilities import rank_zero_warn
from PIL import Image
from torch.utils.data import DataLoader
from torchmetrics import Metric

from lit_tv.data.loaders import check_batch_multiple, episode_loader
from lit_tv.episodes import Episode, Example
from lit_tv.metrics import ExactMatch
from lit_tv.options import require_at_least
from lit_tv.prompts import PromptTemplate

Role = Literal["support", "train", "val", "test"]
ROLES: tuple[Role, ...] = ("support", "train", "val", "test")


class DataError(ValueError):
    """A benchmark file does not hold what its official release holds; the message names the file and field."""


def require(path: Path, what: str) -> Path:
    """`path` itself, which must exist; `what` says what the official layout has there."""
    if not path.exists():
        raise FileNotFoundError(f"{what} not found: {path}")
    return path


def read_json(path: Path, what: str) -> Any:
    require(path, what)
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise DataError(f"{path}: not valid JSON ({error})") from error


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


def image_problem(path: Path) -> str | None:
    """Why ``path`` cannot serve as an image, or None. It is decoded (a JPEG at reduced scale, so cheaply),
    since a truncated file opens fine and fails only when its pixels are read."""
    if not path.is_file():
        return "image file not found"
    try:
        with Image.open(path) as image:
            image.draft("RGB", (64, 64))
            image.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        return f"cannot read image ({error})"
    return None


@dataclass(frozen=True)
class Record:
    """An example, where it was read ('field 'image' of val.json record 3') and its group (task or class)."""

    example: Example
    origin: str
    group: str = ""


@dataclass(frozen=True)
class Split:
    """A named list of records, e.g. the official train split of one benchmark."""

    name: str
    records: list[Record]


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


def _interleave(columns: list[list[Record]]) -> list[Record]:
    """One record of each group in turn (groups run out at different lengths)."""
    return [record for row in zip_longest(*columns) for record in row if record is not None]


def _lazy_shuffle(items: list[int], rng: random.Random) -> Iterator[int]:
    """Fisher-Yates from the end, yielding as it goes: drawing k of n costs O(k) random numbers."""
    items = list(items)
    for end in range(len(items) - 1, -1, -1):
        pick = rng.randint(0, end)
        items[pick], items[end] = items[end], items[pick]
        yield items[end]


class Pool:
    """One split's records in a seeded order.

    `take` hands out query records, each at most once; `draw` samples demonstrations from the
    records not taken (from all of them with ``overlap``), so a query is never also a shot. A record's
    images are checked the first time it is handed out: a bad one raises, or in skip mode is dropped.
    """

    def __init__(self, split: Split, seed: int, issues: DataIssues, check_images: bool = True,
                 overlap: bool = False) -> None:
        self.name = split.name
        self.records = random.Random(f"{seed}:{split.name}").sample(split.records, len(split.records))
        self.issues = issues
        self.check_images = check_images
        self.overlap = overlap
        self._by_group: dict[str, list[int]] = defaultdict(list)
        for index, record in enumerate(self.records):
            self._by_group[record.group].append(index)
        self._taken: set[int] = set()
        self._free: dict[str, list[int]] = {}
        self._usable: dict[int, bool] = {}

    @property
    def groups(self) -> list[str]:
        return sorted(self._by_group)

    def _is_usable(self, index: int) -> bool:
        if index not in self._usable:
            self._usable[index] = False
            with self.issues.guard("records with unreadable images"):
                record = self.records[index]
                for image in record.example.images if self.check_images else ():
                    problem = image_problem(Path(image))
                    if problem:
                        raise DataError(f"{image}: {problem} (named by {record.origin})")
                self._usable[index] = True
        return self._usable[index]

    def take(self, n: int | None, purpose: str, groups: Sequence[str] | None = None) -> list[Record]:
        """``n`` query records (all usable ones if None), spread evenly over ``groups`` and interleaved."""
        groups = list(groups or self.groups) or [""]
        per_group = [None if n is None else n // len(groups) + (rank < n % len(groups)) for rank in range(len(groups))]
        columns = []
        for group, wanted in zip(groups, per_group, strict=True):
            chosen = []
            for index in self._by_group.get(group, []):
                if wanted is not None and len(chosen) == wanted:
                    break
                if index not in self._taken and self._is_usable(index):
                    self._taken.add(index)
                    chosen.append(self.records[index])
            if wanted is not None and len(chosen) < wanted:
                raise DataError(f"{self.name}: {purpose} need {wanted} records{_of(group)} but only {len(chosen)} "
                                f"usable ones are left; lower the size or add data")
            columns.append(chosen)
        self._free.clear()
        return _interleave(columns)

    def usable(self, groups: Sequence[str]) -> list[Record]:
        """Every usable record of `groups` in the pool's order, interleaved by group (taken ones only with
        ``overlap``)."""
        columns = [[self.records[index] for index in self._by_group.get(group, [])
                    if (self.overlap or index not in self._taken) and self._is_usable(index)] for group in groups]
        return _interleave(columns)

    def draw(self, k: int, rng: random.Random, purpose: str, group: str = "",
             exclude: Collection[Record] = ()) -> list[Record]:
        """``k`` distinct usable records of ``group`` for demonstrations, none of them in ``exclude``."""
        if k == 0:
            return []
        if group not in self._free:
            self._free[group] = [index for index in self._by_group.get(group, [])
                                 if self.overlap or index not in self._taken]
        excluded = {id(record) for record in exclude}
        chosen: list[Record] = []
        for index in _lazy_shuffle(self._free[group], rng):
            if len(chosen) == k:
                break
            if id(self.records[index]) not in excluded and self._is_usable(index):
                chosen.append(self.records[index])
        if len(chosen) < k:
            raise DataError(f"{self.name}: {purpose} need {k} distinct records{_of(group)} besides the queries but "
                            f"only {len(chosen)} usable ones are left; lower the size or add data")
        return chosen


def _of(group: str) -> str:
    return f" of {group!r}" if group else ""


class EpisodeDataModule(L.LightningDataModule):
    """Base of the benchmark DataModules: sizes, seeds, episodes per role built once, loaders of Episode lists.

    Subclasses read their annotations in ``__init__`` and implement `build_episodes`. The episodes are
    built once (in `setup`, or on first use) from seeded streams, so every rank, the mean-activation
    callback, the REINFORCE loop and the final head selection all see the same lists.

    Args:
        shots: answered examples per support episode (what the mean activations average over).
        test_shots: shots of validation and test episodes (0 for task vectors, k for the ICL baseline).
        support_size: support episodes (MTV's iterations); ``None``: one per usable record of the split
            the shots come from, each record the query of its own episode (the cross-modal reference).
        train_size: training queries (the REINFORCE head search).
        val_size / test_size: validation and test queries; ``None`` takes every usable one.
        batch_size: episodes per batch (for MTV: training queries per REINFORCE step).
        eval_batch_size: episodes per validation / test batch (default: `batch_size`).
        seed: seeds every choice; each role has its own stream.
        seeds: draw every role once per seed and tag each episode with its seed (the cross-modal reference
            reports the mean over seeds 0, 1, 2); methods then score and build vectors per seed. None: `seed`.
        overlap: let demonstrations reuse records that are also queries (off: disjoint).
        skip_bad_data: leave out records with a missing field or an unreadable image, count them and warn
            once, instead of stopping at the first with an error that names the file and the field.
    """

    template: PromptTemplate
    tasks: tuple[str, ...] = ()
    metric: ClassVar[Callable[[], Metric]] = ExactMatch
    support_per_record: ClassVar[bool] = False  # whether support_size=None (one episode per record) is drawn

    def transfer_batch_to_device(self, batch: list[Episode], device, dataloader_idx: int) -> list[Episode]:
        """Episodes stay as they are: the model's `build_inputs` moves the tensors it makes."""
        return batch

    def __init__(self, shots: int = 4, test_shots: int = 0, support_size: int | None = 100, train_size: int = 100,
                 val_size: int | None = 0, test_size: int | None = None, batch_size: int = 1,
                 eval_batch_size: int | None = None, seed: int = 0, seeds: Sequence[int] | None = None,
                 overlap: bool = False, skip_bad_data: bool = False) -> None:
        super().__init__()
        self.save_hyperparameters()
        for option, value in (("shots", shots), ("test_shots", test_shots), ("support_size", support_size),
                              ("train_size", train_size), ("val_size", val_size), ("test_size", test_size)):
            require_at_least(f"data.init_args.{option}", value, 0)
        require_at_least("data.init_args.batch_size", batch_size, 1)
        require_at_least("data.init_args.eval_batch_size", eval_batch_size, 1)
        self.shots = shots
        self.test_shots = test_shots
        self.sizes: dict[Role, int | None] = {"support": support_size, "train": train_size, "val": val_size,
                                              "test": test_size}
        if support_size is None and not self.support_per_record:
            raise ValueError(f"data.init_args.support_size: {type(self).__name__} needs a number of support episodes "
                             "(null, one per record, is for benchmarks read from record files)")
        self.seeds = list(seeds) if seeds else [seed]
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"data.init_args.seeds repeats a seed: {self.seeds}")
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.seed = self.seeds[0]
        self.overlap = overlap
        self.issues = DataIssues(skip_bad_data)
        self._episodes: dict[Role, list[Episode]] | None = None
        self._roles: frozenset[Role] = frozenset(ROLES)

    def build_episodes(self) -> dict[Role, list[Episode]]:
        raise NotImplementedError

    def rng(self, stream: str) -> random.Random:
        """A random stream of its own per use, so growing one role never changes another."""
        return random.Random(f"{self.seed}:{stream}")

    def pool(self, split: Split, check_images: bool = True) -> Pool:
        return Pool(split, self.seed, self.issues, check_images=check_images, overlap=self.overlap)

    @property
    def skipped(self) -> dict[str, int]:
        """Records left out in skip mode, by kind."""
        return dict(self.issues.counts)

    def episodes(self, role: Role) -> list[Episode]:
        if self._episodes is None:
            self._episodes = self._draw()
            if self.issues.counts:
                rank_zero_warn(f"{type(self).__name__}: {self.issues.summary()}")
        if role not in self._roles:
            raise DataError(f"{type(self).__name__}: no {role} episodes were drawn for this run (the method uses "
                            f"{sorted(self._roles)})")
        return self._episodes[role]

    def _draw(self) -> dict[Role, list[Episode]]:
        """`build_episodes` once per seed, roles the run does not use sized 0 (they take no records)."""
        sizes, episodes = self.sizes, {role: [] for role in ROLES}
        try:
            self.sizes = {role: size if role in self._roles else 0 for role, size in sizes.items()}
            for seed in self.seeds:
                self.seed = seed
                for role, drawn in self.build_episodes().items():
                    episodes[role] += [replace(episode, seed=seed) for episode in drawn]
        finally:
            self.sizes, self.seed = sizes, self.seeds[0]
        return episodes

    def support_episodes(self) -> list[Episode]:
        """Answered shots + a query from the training side: what task vectors are averaged over."""
        return self.episodes("support")

    def train_queries(self) -> list[Episode]:
        """Training queries for the REINFORCE head search, never among the support episodes' records."""
        return self.episodes("train")

    def val_queries(self) -> list[Episode]:
        return self.episodes("val")

    def test_queries(self) -> list[Episode]:
        return self.episodes("test")

    def setup(self, stage: str | None = None) -> None:
        """Draw the roles the method uses in this stage (all without one), now, before the model loads."""
        if stage == "fit" and self.trainer is not None:  # before the mean-activation pass, not at the first step
            check_batch_multiple(self.batch_size, self.trainer.world_size)
        method = self.trainer.lightning_module if self.trainer is not None else None
        roles = frozenset(method.data_roles(stage)) if hasattr(method, "data_roles") else frozenset(ROLES)
        if roles != self._roles:
            self._roles, self._episodes = roles, None
        for role in roles:
            self.episodes(role)  # choose and check everything now

    def _loader(self, episodes: list[Episode], training: bool) -> DataLoader[list[Episode]]:
        size = self.batch_size if training else self.eval_batch_size
        return episode_loader(episodes, size, self.trainer, shuffle=training, seed=self.seed,
                              training=training)

    def train_dataloader(self) -> DataLoader[list[Episode]]:
        return self._loader(self.train_queries(), training=True)

    def val_dataloader(self) -> DataLoader[list[Episode]]:
        return self._loader(self.val_queries(), training=False)

    def test_dataloader(self) -> DataLoader[list[Episode]]:
        return self._loader(self.test_queries(), training=False)


class SplitDataModule(EpisodeDataModule):
    """Benchmarks whose examples stand alone (a question with its answers), read as a train and a test split.

    REINFORCE and validation queries are taken from the train split first, so demonstrations drawn
    from the rest of it never repeat them; test queries come from the test split; the shots of every
    role come from the train split. Sizes are spread evenly over ``tasks`` when there are any.
    """

    train_split: Split
    test_split: Split
    check_images = True
    support_per_record = True

    def render(self, record: Record, kind: Literal["shot", "query"], rng: random.Random) -> Example:
        """The example as it appears in a prompt (a cross-modal benchmark turns it into text or an image)."""
        return record.example

    def _episode(self, shots: Sequence[Record], query: Record, rng: random.Random) -> Episode:
        return Episode(query=self.render(query, "query", rng),
                       shots=tuple(self.render(shot, "shot", rng) for shot in shots))

    def build_episodes(self) -> dict[Role, list[Episode]]:
        groups = list(self.tasks) or [""]
        train = self.pool(self.train_split, self.check_images)
        test = self.pool(self.test_split, self.check_images)
        queries: dict[Role, list[Record]] = {
            "train": train.take(self.sizes["train"], "REINFORCE queries", groups),
            "val": train.take(self.sizes["val"], "validation queries", groups),
            "test": test.take(self.sizes["test"], "test queries", groups),
        }
        episodes: dict[Role, list[Episode]] = {}
        for role, shots in (("train", 0), ("val", self.test_shots), ("test", self.test_shots)):
            rng = self.rng(role)
            episodes[role] = [self._episode(train.draw(shots, rng, f"{role} shots", query.group, exclude=[query]),
                                            query, rng) for query in queries[role]]
        rng = self.rng("support")
        if self.sizes["support"] is None:  # every record the query of its own episode, shots from the others
            episodes["support"] = [self._episode(train.draw(self.shots, rng, "support shots", query.group,
                                                            exclude=[query]), query, rng)
                                   for query in train.usable(groups)]
            return episodes
        episodes["support"] = []
        for index in range(self.sizes["support"]):
            *shots, query = train.draw(self.shots + 1, rng, "support episodes", groups[index % len(groups)])
            episodes["support"].append(self._episode(shots, query, rng))
        return episodes
