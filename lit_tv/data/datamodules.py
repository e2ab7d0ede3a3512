"""The benchmark DataModules' shared part: sizes and seeds, episodes per role drawn once, loaders of Episode lists.

The records each role uses are chosen, and their images checked, once in ``setup`` (before the
model loads), from `lit_tv.data.pool.Pool` over the splits a subclass read with `lit_tv.data.records`.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, ClassVar, Literal

import lightning as L
from lightning.pytorch.utilities import rank_zero_warn
from torch.utils.data import DataLoader
from torchmetrics import Metric

from lit_tv.data.loaders import EpisodeLoader, GlobalBatchSampler, by_length
from lit_tv.data.pool import Pool, seeded_random
from lit_tv.data.records import DataError, DataIssues, Record, Split
from lit_tv.episodes import Episode, Example
from lit_tv.metrics import ExactMatch
from lit_tv.options import require_at_least
from lit_tv.prompts import PromptTemplate

Role = Literal["support", "train", "val", "test"]
ROLES: tuple[Role, ...] = ("support", "train", "val", "test")
Sizes = Mapping[Role, int | None]


def datamodule_of(trainer: L.Trainer) -> Any:
    """The run's DataModule (an `EpisodeDataModule`, or `QueryFile` for predict): Lightning sets
    `trainer.datamodule` at run time without declaring it on `Trainer`."""
    return trainer.datamodule  # type: ignore[attr-defined]  # set by Lightning's data connector, undeclared


class EpisodeDataModule(L.LightningDataModule):
    """Base of the benchmark DataModules: sizes, seeds, episodes per role built once, loaders of Episode lists.

    Subclasses read their annotations in ``__init__`` and implement `build_episodes`. The episodes are
    built once (in `setup`, or on first use) from seeded streams, so every rank, the mean-activation
    callback, the REINFORCE loop and the final head selection all see the same lists. ``sizes`` and
    ``seed`` (the first of ``seeds``, which also seeds the training loader's order) stay as configured.

    Args:
        shots: answered examples per support episode (what the mean activations average over).
        test_shots: shots of validation and test episodes (0 for task vectors, k for the ICL baseline).
        support_size: support episodes (MTV's iterations); ``None``: one per usable record of the split
            the shots come from, each record the query of its own episode (the cross-modal reference).
        train_size: training queries (the REINFORCE head search).
        val_size / test_size: validation and test queries; ``None`` takes every usable one.
        batch_size: episodes per batch (for MTV: training queries per REINFORCE step).
        eval_batch_size: episodes per validation / test batch (default: `batch_size`).
        seed: seeds every choice; each role has its own stream (default 0; not together with `seeds`).
        seeds: draw every role once per seed and tag each episode with its seed (the cross-modal reference
            reports the mean over seeds 0, 1, 2); methods then score and build vectors per seed. None: `seed`.
        overlap: let demonstrations reuse records that are also queries (off: disjoint).
        skip_bad_data: leave out records with a missing field or an unreadable image, count them and warn
            once, instead of stopping at the first with an error that names the file and the field.
    """

    template: PromptTemplate
    tasks: tuple[str, ...] = ()
    metric: Callable[[], Metric] = ExactMatch  # set per instance where options shape the scoring
    support_per_record: ClassVar[bool] = False  # whether support_size=None (one episode per record) is drawn
    # validation and test batches of similar prompt lengths (`by_length`): little padding; scores are order-free
    eval_by_length: ClassVar[bool] = True

    def transfer_batch_to_device(self, batch: list[Episode], device, dataloader_idx: int) -> list[Episode]:
        """Episodes stay as they are: the model's `build_inputs` moves the tensors it makes."""
        return batch

    def __init__(
        self,
        shots: int = 4,
        test_shots: int = 0,
        support_size: int | None = 100,
        train_size: int = 100,
        val_size: int | None = 0,
        test_size: int | None = None,
        batch_size: int = 1,
        eval_batch_size: int | None = None,
        seed: int | None = None,
        seeds: Sequence[int] | None = None,
        overlap: bool = False,
        skip_bad_data: bool = False,
    ) -> None:
        super().__init__()
        # Not in the logger's flat hyper-parameters, where Lightning refuses a key the method shares with another
        # value (FunctionVectors' own `seed`): the run's config.yaml and the logger's `data/` entries hold them.
        self.save_hyperparameters(logger=False)
        for option, value in (
            ("shots", shots),
            ("test_shots", test_shots),
            ("support_size", support_size),
            ("train_size", train_size),
            ("val_size", val_size),
            ("test_size", test_size),
        ):
            require_at_least(f"data.init_args.{option}", value, 0)
        require_at_least("data.init_args.batch_size", batch_size, 1)
        require_at_least("data.init_args.eval_batch_size", eval_batch_size, 1)
        self.shots = shots
        self.test_shots = test_shots
        self.sizes: dict[Role, int | None] = {
            "support": support_size,
            "train": train_size,
            "val": val_size,
            "test": test_size,
        }
        if support_size is None and not self.support_per_record:
            raise ValueError(
                f"data.init_args.support_size: {type(self).__name__} needs a number of support episodes "
                "(null, one per record, is for benchmarks read from record files)"
            )
        if seeds is not None and not seeds:
            raise ValueError("data.init_args.seeds is empty: give the seeds to draw from, or null (one data seed)")
        if seeds and seed is not None:
            raise ValueError(
                f"data.init_args.seed={seed} and data.init_args.seeds={list(seeds)} both given: with seeds every "
                "role is drawn once per seed and seed would be ignored; give one of them"
            )
        self.seeds = list(seeds) if seeds else [seed or 0]
        if not seeds:
            self.hparams["seed"] = self.seeds[0]  # checkpoints record the seed used (0 when none was given)
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"data.init_args.seeds repeats a seed: {self.seeds}")
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.seed = self.seeds[0]
        self.overlap = overlap
        self.issues = DataIssues(skip_bad_data)
        self._episodes: dict[Role, list[Episode]] | None = None
        self._roles: frozenset[Role] = frozenset(ROLES)

    def build_episodes(self, seed: int, sizes: Sizes) -> dict[Role, list[Episode]]:
        """Every role's episodes drawn from ``seed``'s streams, ``sizes[role]`` of each (None: every usable record)."""
        raise NotImplementedError

    def pool(self, split: Split, seed: int, check_images: bool = True) -> Pool:
        return Pool(split, seed, self.issues, check_images=check_images, overlap=self.overlap)

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
            raise DataError(
                f"{type(self).__name__}: no {role} episodes were drawn for this run (the method uses "
                f"{sorted(self._roles)})"
            )
        return self._episodes[role]

    def _draw(self) -> dict[Role, list[Episode]]:
        """`build_episodes` once per seed, roles the run does not use sized 0 (they take no records)."""
        sizes = {role: size if role in self._roles else 0 for role, size in self.sizes.items()}
        episodes: dict[Role, list[Episode]] = {role: [] for role in ROLES}
        for seed in self.seeds:
            for role, drawn in self.build_episodes(seed, sizes).items():
                episodes[role] += [replace(episode, seed=seed) for episode in drawn]
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
        # before the mean-activation pass, not at the first step: each process holds its share of every training batch
        if stage == "fit" and self.trainer is not None and self.batch_size % self.trainer.world_size:
            raise ValueError(
                f"data.init_args.batch_size {self.batch_size} must be a multiple of the {self.trainer.world_size} "
                "processes"
            )
        method = self.trainer.lightning_module if self.trainer is not None else None
        data_roles = getattr(method, "data_roles", None)
        roles = frozenset(data_roles(stage)) if data_roles is not None else frozenset(ROLES)
        if roles != self._roles:
            self._roles, self._episodes = roles, None
        for role in roles:
            self.episodes(role)  # choose and check everything now

    def _loader(self, episodes: list[Episode], training: bool) -> DataLoader[list[Episode]]:
        """Batches of Episode lists (shuffled in training); under DDP each rank gets its slice of every global batch."""
        size = self.batch_size if training else self.eval_batch_size
        world_size, rank = (self.trainer.world_size, self.trainer.global_rank) if self.trainer is not None else (1, 0)
        order = by_length(episodes) if self.eval_by_length and not training else None
        sampler = GlobalBatchSampler(len(episodes), size, rank, world_size, self.seed, training, order)
        # a list is a map-style dataset (torch's stubs type the argument as Dataset)
        return EpisodeLoader(list(episodes), batch_size=-(-size // world_size), sampler=sampler, collate_fn=list)  # type: ignore[arg-type]

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
        return Episode(
            query=self.render(query, "query", rng), shots=tuple(self.render(shot, "shot", rng) for shot in shots)
        )

    def _answered(
        self, queries: Sequence[Record], pool: Pool, shots: int, rng: random.Random, purpose: str
    ) -> list[Episode]:
        """Each query with ``shots`` demonstrations of its group drawn from ``pool``, never the query itself."""
        return [
            self._episode(pool.draw(shots, rng, purpose, query.group, exclude=[query]), query, rng) for query in queries
        ]

    def first_train_queries(self, count: int) -> list[Episode]:
        """The train split's first `count` usable records (of `tasks`) in its file order, as zero-shot queries: where
        the MTV reference scores its final heads (train[:50]), whatever the seed."""
        ordered = Pool(self.train_split, self.seed, self.issues, self.check_images, shuffle=False)
        records = ordered.first(count, "head-selection queries (the first records)", list(self.tasks) or [""])
        rng = seeded_random(self.seed, "selection")
        return [self._episode((), record, rng) for record in records]

    def build_episodes(self, seed: int, sizes: Sizes) -> dict[Role, list[Episode]]:
        groups = list(self.tasks) or [""]
        train = self.pool(self.train_split, seed, self.check_images)
        test = self.pool(self.test_split, seed, self.check_images)
        queries: dict[Role, list[Record]] = {
            "train": train.take(sizes["train"], "REINFORCE queries", groups),
            "val": train.take(sizes["val"], "validation queries", groups),
            "test": test.take(sizes["test"], "test queries", groups),
        }
        episodes: dict[Role, list[Episode]] = {}
        role_shots: tuple[tuple[Role, int], ...] = (("train", 0), ("val", self.test_shots), ("test", self.test_shots))
        for role, shots in role_shots:
            episodes[role] = self._answered(queries[role], train, shots, seeded_random(seed, role), f"{role} shots")
        rng = seeded_random(seed, "support")
        support_size = sizes["support"]
        if support_size is None:  # every record the query of its own episode, shots from the others
            episodes["support"] = self._answered(train.usable(groups), train, self.shots, rng, "support shots")
            return episodes
        episodes["support"] = []
        for index in range(support_size):
            *demonstrations, query = train.draw(self.shots + 1, rng, "support episodes", groups[index % len(groups)])
            episodes["support"].append(self._episode(demonstrations, query, rng))
        return episodes
