"""Which records each data role draws: only the roles a method uses, once per seed, the papers' defaults."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from benchmark_fixtures import write_cross_modal, write_vizwiz
from helpers import CONFIGS, logged_scalars

from lit_tv.cli.command import main
from lit_tv.data.cross_modal import CrossModalTasks
from lit_tv.data.records import DataError
from lit_tv.methods.residual import ResidualTaskVectors


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
