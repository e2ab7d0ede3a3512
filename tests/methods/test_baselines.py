"""The majority-label and random baselines of the cross-modal paper."""

from __future__ import annotations

from pathlib import Path

import pytest
from benchmark_fixtures import write_image, write_json
from helpers import CONFIGS, logged_scalars

from lit_tv.cli.command import main
from lit_tv.episodes import Episode, Example
from lit_tv.methods.majority import MajorityLabel


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
