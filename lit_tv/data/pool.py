"""Seeded sampling of queries and demonstrations from a split, each query record used once, never also a shot."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Collection, Iterator, Sequence
from itertools import zip_longest
from pathlib import Path
from typing import cast

from lit_tv.data.records import DataError, DataIssues, Record, Split, image_problem
from lit_tv.episodes import StoredImage


def seeded_random(seed: int, stream: str) -> random.Random:
    """A random stream of its own per seed and use, so growing one use never changes another."""
    return random.Random(f"{seed}:{stream}")


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


def _of(group: str) -> str:
    return f" of {group!r}" if group else ""


class Pool:
    """One split's records in a seeded order (``shuffle`` off: the split's own, its file order).

    `take` hands out query records, each at most once; `draw` samples demonstrations from the
    records not taken (from all of them with ``overlap``), so a query is never also a shot. A record's
    images are checked the first time it is handed out: a bad one raises, or in skip mode is dropped.
    """

    def __init__(
        self,
        split: Split,
        seed: int,
        issues: DataIssues,
        check_images: bool = True,
        overlap: bool = False,
        shuffle: bool = True,
    ) -> None:
        self.name = split.name
        order = seeded_random(seed, split.order or split.name)
        self.records = order.sample(split.records, len(split.records)) if shuffle else list(split.records)
        self.issues = issues
        self.check_images = check_images
        self.overlap = overlap
        self._by_group: dict[str, list[int]] = defaultdict(list)
        for index, record in enumerate(self.records):
            self._by_group[record.group].append(index)
        self._taken: set[int] = set()
        self._free: dict[str, list[int]] = {}
        self._usable: dict[int, bool] = {}

    def _is_usable(self, index: int) -> bool:
        if index not in self._usable:
            self._usable[index] = False
            with self.issues.guard("records with unreadable images"):
                record = self.records[index]
                for image in record.example.images if self.check_images else ():
                    # records read from files name them; tables store them
                    problem = image_problem(image if isinstance(image, StoredImage) else Path(cast(str | Path, image)))
                    if problem:
                        raise DataError(f"{image}: {problem} (named by {record.origin})")
                self._usable[index] = True
        return self._usable[index]

    def take(self, n: int | None, purpose: str, groups: Sequence[str] | None = None) -> list[Record]:
        """``n`` query records (all usable ones if None), spread evenly over ``groups`` and interleaved."""
        groups = list(groups or sorted(self._by_group)) or [""]
        per_group = [None if n is None else n // len(groups) + (rank < n % len(groups)) for rank in range(len(groups))]
        columns = []
        for group, wanted in zip(groups, per_group, strict=True):
            chosen: list[Record] = []
            for index in self._by_group.get(group, []):
                if wanted is not None and len(chosen) == wanted:
                    break
                if index not in self._taken and self._is_usable(index):
                    self._taken.add(index)
                    chosen.append(self.records[index])
            if wanted is not None and len(chosen) < wanted:
                raise DataError(
                    f"{self.name}: {purpose} need {wanted} records{_of(group)} but only {len(chosen)} "
                    f"usable ones are left; lower the size or add data"
                )
            columns.append(chosen)
        self._free.clear()
        return _interleave(columns)

    def first(self, n: int, purpose: str, groups: Collection[str]) -> list[Record]:
        """The first ``n`` usable records of ``groups`` in the pool's order, whatever their group (not spread)."""
        chosen: list[Record] = []
        for index, record in enumerate(self.records):
            if len(chosen) == n:
                break
            if record.group in groups and self._is_usable(index):
                chosen.append(record)
        if len(chosen) < n:
            raise DataError(
                f"{self.name}: {purpose} need its first {n} records but it holds only {len(chosen)} usable ones; "
                "lower the number or add data"
            )
        return chosen

    def usable(self, groups: Sequence[str]) -> list[Record]:
        """Every usable record of `groups` in the pool's order, interleaved by group (taken ones only with
        ``overlap``)."""
        columns = [
            [
                self.records[index]
                for index in self._by_group.get(group, [])
                if (self.overlap or index not in self._taken) and self._is_usable(index)
            ]
            for group in groups
        ]
        return _interleave(columns)

    def draw(
        self, k: int, rng: random.Random, purpose: str, group: str = "", exclude: Collection[Record] = ()
    ) -> list[Record]:
        """``k`` distinct usable records of ``group`` for demonstrations, none of them in ``exclude``."""
        if k == 0:
            return []
        if group not in self._free:
            self._free[group] = [
                index for index in self._by_group.get(group, []) if self.overlap or index not in self._taken
            ]
        excluded = {id(record) for record in exclude}
        chosen: list[Record] = []
        for index in _lazy_shuffle(self._free[group], rng):
            if len(chosen) == k:
                break
            if id(self.records[index]) not in excluded and self._is_usable(index):
                chosen.append(self.records[index])
        if len(chosen) < k:
            raise DataError(
                f"{self.name}: {purpose} need {k} distinct records{_of(group)} besides the queries but "
                f"only {len(chosen)} usable ones are left; lower the size or add data"
            )
        return chosen
