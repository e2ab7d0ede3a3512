"""The papers' data use and selection rules: roles drawn per method, cross-modal sizing and seeds, the
layer rule, Idefics2's pruned head selection, the majority-label baseline and the chat option."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import torch
from benchmark_fixtures import write_cross_modal, write_image, write_json, write_vizwiz
from helpers import CONFIGS, logged_scalars

from lit_tv.cli.app import build_cli, main
from lit_tv.data.cross_modal import CrossModalTasks
from lit_tv.data.records import DataError
from lit_tv.episodes import Episode, Example
from lit_tv.methods.majority import MajorityLabel
from lit_tv.methods.residual import ResidualTaskVectors
from lit_tv.vectors.file import load_task_vector

CONFIGS = CONFIGS
SHAPES_CROSS_MODAL = CONFIGS / "shapes" / "cross_modal.yaml"


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


@pytest.mark.slow
def test_a_run_over_seeds_logs_each_seed_with_mean_and_spread_and_exports_one_file_per_seed(zoo_folder, workdir):
    main(
        [
            "test",
            "--config",
            str(SHAPES_CROSS_MODAL),
            "--model.init_args.model.name",
            str(zoo_folder("llava")),
            "--data.init_args.support_size",
            "6",
            "--data.init_args.val_size",
            "6",
            "--data.init_args.test_size",
            "6",
            "--data.init_args.seeds",
            "[0, 1]",
            "--model.init_args.layer",
            "1",
        ]
    )
    run = workdir / "logs" / "shapes_cross_modal"
    scalars = logged_scalars(next(run.glob("version_*")))
    per_seed = torch.tensor([scalars["test/accuracy/seed_0"][0], scalars["test/accuracy/seed_1"][0]])
    assert scalars["test/accuracy_mean_over_seeds"][0] == pytest.approx(per_seed.mean().item())
    assert scalars["test/accuracy_std_over_seeds"][0] == pytest.approx(per_seed.std().item(), abs=1e-6)
    assert scalars["test/queries"] == [12.0]
    first, _ = load_task_vector(run / "task_vectors.seed0.safetensors")
    second, metadata = load_task_vector(run / "task_vectors.seed1.safetensors")
    assert metadata["seed"] == "1" and not torch.allclose(first["vectors"], second["vectors"])


@pytest.mark.slow
def test_mtv_refuses_several_seeds(zoo_folder, workdir):
    with pytest.raises(SystemExit, match=r"data.init_args.seeds=\[0, 1\]: MTV runs one data seed per fit"):
        main(
            [
                "fit",
                "--config",
                str(CONFIGS / "shapes" / "mtv.yaml"),
                "--model.init_args.model.name",
                str(zoo_folder("llava")),
                "--data.init_args.seeds",
                "[0, 1]",
                "--trainer.max_steps",
                "1",
            ]
        )


def test_the_layer_is_the_first_argmax_of_the_accuracy_averaged_over_groups():
    method = ResidualTaskVectors(layer=None)
    # group 0: 10 queries, best at layer 1; group 1: 2 queries, best at layer 2. Pooled hits would pick layer 1
    # (8 + 0 = 8 vs 5 + 2 = 7); the mean of the two accuracies picks layer 2 (0.4 vs 0.75).
    hits = torch.tensor([[0.0, 8.0, 5.0, 5.0], [0.0, 0.0, 2.0, 2.0]])
    method._choose_layer(hits, torch.tensor([10.0, 2.0]))
    assert method.layer == 2  # and not 3: ties go to the first layer


@pytest.mark.slow
def test_the_layer_search_scores_answers_as_the_test_does(workdir):
    cli = build_cli(
        SHAPES_CROSS_MODAL,
        [
            "--config",
            str(SHAPES_CROSS_MODAL),
            "--data.init_args.support_size",
            "30",
            "--data.init_args.val_size",
            "30",
            "--model.init_args.layer",
            "1",
        ],
    )
    cli.trainer.validate(cli.model, datamodule=cli.datamodule)
    batch = cli.datamodule.val_queries()
    scores = cli.model.layer_scores(batch)
    metric = cli.datamodule.metric()
    for layer in range(scores.shape[1]):
        cli.model.layer = layer
        expected = [
            metric.score(answer, episode.query.answers)
            for answer, episode in zip(cli.model.answer(batch), batch, strict=True)
        ]
        assert scores[:, layer].tolist() == expected
    assert 0 < scores.sum() < scores.numel()  # the rule really separates hits from misses here


@pytest.mark.slow
def test_pruned_selection_never_samples_heads_below_the_threshold(zoo_folder, workdir):
    cli = build_cli(
        CONFIGS / "shapes" / "mtv.yaml",
        [
            "--config",
            str(CONFIGS / "shapes" / "mtv.yaml"),
            "--model.init_args.model.name",
            str(zoo_folder("llava")),
            "--trainer.max_steps",
            "1",
            "--data.init_args.support_size",
            "4",
            "--model.init_args.selection_queries",
            "2",
            "--model.init_args.samples",
            "4",
            "--model.init_args.threshold",
            "0.8",
            "--model.init_args.export",
            "null",
        ],
    )
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)  # one step keeps no head above 0.8: fit as best_of_samples
    method = cli.model
    method.hparams.selection = "pruned_best_of_samples"
    method.theta.data.fill_(0.5)  # sigmoid 0.62: below the threshold
    method.theta.data[0, :2] = 5.0  # sigmoid 0.99
    likely = torch.zeros_like(method.selected_heads)
    likely[0, :2] = True
    for _ in range(3):
        assert not (method.select_heads() & ~likely).any()
    method.hparams.selection = "best_of_samples"
    assert any((method.select_heads() & ~likely).any() for _ in range(3))


def _majority_fixture(root: Path) -> Path:
    """food-color: val answers mostly 'red'; test answers 'red' twice out of five."""
    for split, answers in (("val", ["red"] * 4 + ["blue", "green"]), ("test", ["red", "blue", "red", "green", "tan"])):
        records = []
        for index, answer in enumerate(answers):
            image = f"images/{split}_{index}.png"
            write_image(root / image, "white")
            records.append({"input": f"food {index}", "output": answer, "image": image})
        write_json(root / "annotations" / f"food-color_{split}.json", records)
    return root


@pytest.mark.slow
def test_the_majority_label_baseline_can_answer_each_task_s_most_common_val_answer(workdir):
    root = _majority_fixture(workdir / "data")
    main(
        [
            "test",
            "--config",
            str(CONFIGS / "cross_modal" / "majority_label.yaml"),
            "--data.init_args.root",
            str(root),
            "--data.init_args.tasks",
            "[food-color]",
            "--data.init_args.shots",
            "2",
            "--model.init_args.source",
            "task",
            "--data.init_args.test_shots",
            "0",
        ]
    )
    scalars = logged_scalars(next((workdir / "logs" / "cross_modal_majority_label").glob("version_*")))
    assert scalars["test/accuracy"][0] == pytest.approx(2 / 5)
    assert scalars["test/accuracy_std_over_seeds"][0] == pytest.approx(0.0)


def test_the_random_baseline_answers_the_majority_of_each_query_s_own_demonstrations():
    def example(answer: str) -> Example:
        return Example("food", (), (answer,), task="food-color")

    method = MajorityLabel(source="demonstrations")
    batch = [
        Episode(query=example("red"), shots=tuple(map(example, ["blue", "red", "blue", "tan", "red"]))),
        Episode(query=example("red"), shots=tuple(map(example, ["tan", "green", "green", "red", "red"]))),
    ]
    assert method.answer(batch) == ["blue", "green"]  # ties: the first answer seen


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


def test_the_chat_option_renders_each_example_as_a_chat_turn(tmp_path, zoo_folder):
    from test_vlm import CHAT_TEMPLATE

    from lit_tv.model.vlm import FrozenVLM

    vlm = FrozenVLM.from_pretrained(zoo_folder("llava"))
    vlm.processor.chat_template = CHAT_TEMPLATE
    root = write_cross_modal(tmp_path, tasks=("food-color",))
    data = CrossModalTasks(str(root), tasks=["food-color"], test_shots=1, chat="template")
    data.setup("test")
    episode = data.test_queries()[0]
    shot = episode.shots[0]
    assert vlm.render(episode, data.template) == (
        f"user:Q:{shot.text}\nA:\nassistant:{shot.answer}\nuser:<image>Q:\nA:\nassistant:"
    )


def test_the_paper_s_chat_ablation_names_the_roles_in_place_of_q_and_a(tmp_path):
    root = write_cross_modal(tmp_path, tasks=("food-color",))
    template = CrossModalTasks(str(root), tasks=["food-color"], chat="roles").template
    shots = (Example("banana", (), ("yellow",)),)
    text = template.render(Episode(query=Example("", ("image.jpg",)), shots=shots), "<image>")
    assert text == "User:banana\nAssistant:yellow\n\nUser:<image>\nAssistant:"


@pytest.mark.slow
def test_the_cross_modal_mtv_config_fits_one_task_of_the_released_size(zoo_folder, workdir):
    """30 val records per task, as released: the config's own sizes (20 REINFORCE queries, 100 support
    episodes from the other 10 records, no validation) must fit, not stop for want of records."""
    root = write_cross_modal(workdir / "data", tasks=("country-capital",), val=30, test=4)
    config = [
        "--config",
        str(CONFIGS / "cross_modal" / "mtv_llava-1.5-7b.yaml"),
        "--data.init_args.root",
        str(root),
        "--model.init_args.model.name",
        str(zoo_folder("llava")),
        "--model.init_args.model.revision",  # a local folder has no hub revision to pin
        "null",
        "--model.init_args.model.dtype",
        "float32",
        "--trainer.accelerator",
        "cpu",
        "--trainer.max_steps",
        "1",
        "--model.init_args.samples",
        "4",
        "--model.init_args.selection_queries",
        "2",
    ]
    main(["fit", *config])
    _, metadata = load_task_vector(
        workdir / "logs" / "cross_modal_mtv_llava-1.5-7b" / "smoke" / "task_vector.safetensors"
    )
    assert metadata["iterations"] == "100"
