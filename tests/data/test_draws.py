"""Which records each data role draws: only the roles a method uses, once per seed, the papers' defaults."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest
from benchmark_fixtures import write_cross_modal, write_flowers_with_episodes, write_vizwiz
from helpers import CONFIGS, logged_scalars

from lit_tv.cli.command import main
from lit_tv.data.cross_modal import CrossModalTasks
from lit_tv.data.records import DataError
from lit_tv.data.two_way import Flowers102
from lit_tv.data.vqa import VizWiz
from lit_tv.methods.mtv_checks import head_selection_queries
from lit_tv.methods.residual import ResidualTaskVectors
from lit_tv.shapes.datamodule import ShapesDataModule


@pytest.mark.slow
def test_an_icl_test_draws_no_reinforce_queries(zoo_folder, workdir):
    """12 train records cannot hold the default 100 REINFORCE queries; ICL does not use them, so it runs."""
    root = write_vizwiz(workdir / "data", train=12, val=6)
    main(
        [
            "test",
            "--config",
            str(CONFIGS / "vizwiz" / "icl_llava-1.5-7b.yaml"),
            "--data.init_args.root",
            str(root),
            "--model.init_args.model.name",
            str(zoo_folder("llava")),
            "--model.init_args.model.dtype",
            "float32",
            "--trainer.accelerator",
            "cpu",
            "--model.init_args.max_new_tokens",
            "2",
        ]
    )
    scalars = logged_scalars(next((workdir / "logs" / "vizwiz_icl_llava-1.5-7b").glob("version_*")))
    assert scalars["test/queries"] == [6.0]


def test_a_role_the_method_does_not_use_is_not_drawn_and_asking_for_it_says_so(tmp_path):
    data = CrossModalTasks(str(write_cross_modal(tmp_path)), train_size=4)

    class Trainer:
        lightning_module = ResidualTaskVectors(layer=0)

    data.trainer = Trainer()
    data.setup("test")
    assert data.test_queries() and data.support_episodes()
    with pytest.raises(DataError, match="no train episodes were drawn for this run"):
        data.train_queries()


def test_cross_modal_defaults_use_every_val_record_for_the_vectors_and_the_layer_search(tmp_path):
    data = CrossModalTasks(str(write_cross_modal(tmp_path, val=10, test=4)))
    data.setup("test")
    support, val = data.support_episodes(), data.val_queries()
    for task in data.tasks:
        records = [episode for episode in support if episode.task == task]
        assert len(records) == 10 and len([episode for episode in val if episode.task == task]) == 10
        assert len({episode.query.images for episode in records}) == 10  # each val record once as the query
        for episode in records:
            assert len(episode.shots) == 5
            assert episode.query.answers[0] is not None
            assert all(
                shot.text != f"{task.split('-')[0]} val {episode.query.images[0].stem.split('_')[1]}"
                for shot in episode.shots
            )  # never its own query
    assert data.sizes["train"] == 0 and len(data.test_queries()) == 6 * 4


def test_seeds_draw_every_role_once_per_seed_with_different_shots(tmp_path):
    data = CrossModalTasks(str(write_cross_modal(tmp_path)), tasks=["food-color"], seeds=[0, 1, 2], test_shots=2)
    data.setup("test")
    test = data.test_queries()
    assert Counter(episode.seed for episode in test) == {0: 4, 1: 4, 2: 4}
    shots = {
        seed: [tuple(shot.text for shot in episode.shots) for episode in test if episode.seed == seed]
        for seed in (0, 1, 2)
    }
    assert shots[0] != shots[1] != shots[2]


def test_cross_modal_test_demonstrations_come_from_the_test_file_s_other_records(tmp_path):
    root = write_cross_modal(tmp_path, tasks=("food-color",), val=10, test=6)
    data = CrossModalTasks(str(root), tasks=["food-color"], test_shots=5)
    data.setup("test")
    test_inputs = {raw["input"] for raw in json.loads((root / "annotations" / "food-color_test.json").read_text())}
    episodes = data.test_queries()
    assert len(episodes) == 6
    for episode in episodes:
        shots = {shot.text for shot in episode.shots}
        assert len(shots) == 5 and shots <= test_inputs
    val = CrossModalTasks(str(root), tasks=["food-color"], test_shots=5, test_shots_from="val")
    val.setup("test")
    assert all(not {shot.text for shot in episode.shots} & test_inputs for episode in val.test_queries())


def _options(source: str, count: int = 3) -> SimpleNamespace:
    return SimpleNamespace(selection="best_of_samples", selection_from=source, selection_queries=count)


@pytest.mark.parametrize("seed", [0, 3])
def test_the_head_selection_queries_are_the_train_file_s_first_records_whatever_the_seed(tmp_path, seed):
    """``selection_from: train_split`` (the paper configs'): as the MTV reference's train[:50], zero-shot, in file
    order."""
    data = VizWiz(str(write_vizwiz(tmp_path, train=14, val=2)), shots=1, support_size=2, train_size=6, seed=seed)
    data.setup("fit")
    first = head_selection_queries(_options("train_split"), data)
    assert [episode.query.text for episode in first] == [f"What colour is this {index}?" for index in range(3)]
    assert [len(episode.shots) for episode in first] == [0, 0, 0]
    assert head_selection_queries(_options("reinforce_queries"), data) == data.train_queries()[:3]
    assert head_selection_queries(_options("reinforce_queries"), data) != first  # the seeded draw is another
    with pytest.raises(DataError, match=r"need its first 20 records but it holds only 14"):
        head_selection_queries(_options("train_split", 20), data)


def test_two_way_head_selection_queries_are_the_reference_train_file_s_first_episodes(tmp_path):
    root = write_flowers_with_episodes(tmp_path)
    listed = json.loads((root / "flower_train.json").read_text())
    data = Flowers102(str(root), episodes=".", support_size=2, train_size=3, val_size=0, test_size=2)
    data.setup("fit")
    first = head_selection_queries(_options("train_split", 4), data)
    assert [episode.query.images[0].name for episode in first] == [Path(row["query"]).name for row in listed[:4]]
    assert [len(episode.shots) for episode in first] == [2, 2, 2, 2]  # the positive and negative examples
    seeded = Flowers102(str(root), episodes=None, support_size=2, train_size=3, val_size=0, test_size=2)
    assert len(head_selection_queries(_options("train_split", 4), seeded)) == 4  # the first official train images


def test_train_split_selection_is_refused_where_episodes_have_no_file_order():
    with pytest.raises(
        ValueError, match=r"selection_from=train_split .* ShapesDataModule .*selection_from=reinforce_queries"
    ):
        head_selection_queries(_options("train_split"), ShapesDataModule())
