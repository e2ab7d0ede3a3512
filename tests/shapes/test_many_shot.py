"""The many-shot family: distractor shots, seeded and held out like the rest of the shapes world; the
many-shot toy's context is enforced, its ICL gains from shots, and MTV runs on it through the CLI."""

from __future__ import annotations

import json
import logging
import math
import re

import pytest
from helpers import SHAPES_CONFIGS, TASK_WORDS, TINY_MTV, fingerprint, text_objects
from transformers import AutoConfig

from lit_tv.cli.command import main
from lit_tv.model.vlm import FrozenVLM
from lit_tv.shapes.datamodule import ShapesDataModule
from lit_tv.shapes.report import CHECKPOINT as CLEAN_CHECKPOINT
from lit_tv.shapes.studies import many_shot
from lit_tv.shapes.studies.many_shot import (
    CHECKPOINT,
    MODEL,
    accuracy_vs_iterations,
    accuracy_vs_shots,
    context_shots,
    over_seeds,
)
from lit_tv.shapes.studies.many_shot import main as many_shot_main
from lit_tv.shapes.toy import SHAPES_TEMPLATE, build_processor, image_prompt_tokens
from lit_tv.shapes.train import encode
from lit_tv.shapes.train import main as train_main
from lit_tv.shapes.world import HELDOUT, MANY_SHOT_DISTRACTORS, TASKS, TRAIN_OBJECTS, ShapeObject, make_episodes
from lit_tv.vectors.file import load_task_vector

CONFIGS = SHAPES_CONFIGS


def test_distractor_shots_answer_another_attribute_of_their_object_and_queries_never_do() -> None:
    episodes = make_episodes(TASKS, 600, 4, 5, "train", "text", "text", MANY_SHOT_DISTRACTORS)
    distractors = 0
    for episode in episodes:
        for example in episode.shots:
            obj = ShapeObject(*example.text.split())
            assert example.answers[-1] == obj.attribute(episode.task)  # the task's answer is always last
            if len(example.answers) == 2:
                distractors += 1
                assert example.answer in {obj.attribute(task) for task in TASKS if task != episode.task}
        query = episode.query
        assert query.answers == (ShapeObject(*query.text.split()).attribute(episode.task),)
    shots = 4 * len(episodes)
    assert abs(distractors / shots - MANY_SHOT_DISTRACTORS) < 4 * math.sqrt(0.45 * 0.55 / shots)


def test_many_shot_episodes_are_seeded_and_never_name_the_task() -> None:
    make = lambda seed: make_episodes(TASKS, 12, 4, seed, "train", "mixed", "image", 0.45)  # noqa: E731
    assert fingerprint(make(3)) == fingerprint(make(3))
    assert fingerprint(make(3)) != fingerprint(make(4))
    vocab = set(build_processor().tokenizer.get_vocab())
    for episode in make(3):
        words = SHAPES_TEMPLATE.render(episode, "<image>").split()
        assert not set(words) & TASK_WORDS and set(words) <= vocab


def test_evaluation_objects_are_held_out_of_the_support_and_training_queries() -> None:
    data = ShapesDataModule(
        distractors=MANY_SHOT_DISTRACTORS,
        shot_modality="text",
        query_modality="text",
        test_shots=4,
        support_size=60,
        train_size=60,
        val_size=30,
        test_size=30,
    )
    seen = text_objects(data.support_episodes() + data.train_queries())
    evaluated = text_objects(data.val_queries() + data.test_queries())
    assert len(seen) == 60 * 5 + 60 and set(seen) <= set(TRAIN_OBJECTS)
    assert len(evaluated) == 60 * 5 and set(evaluated) <= HELDOUT
    assert any(len(x.answers) == 2 for e in data.support_episodes() for x in e.shots)


def test_skipped_support_episodes_give_disjoint_draws_beside_the_same_queries() -> None:
    """The kept-heads means of the study: draw d is support episodes d*n ... (d+1)*n of one seed's stream."""
    sizes = {"distractors": MANY_SHOT_DISTRACTORS, "train_size": 4, "test_size": 6, "seed": 3}
    stream = ShapesDataModule(support_size=9, **sizes)
    draws = [ShapesDataModule(support_size=3, support_skip=3 * d, **sizes) for d in range(3)]
    assert [fingerprint(draw.support_episodes()) for draw in draws] == [
        fingerprint(stream.support_episodes()[3 * d : 3 * d + 3]) for d in range(3)
    ]
    for draw in draws:
        assert fingerprint(draw.test_queries() + draw.train_queries()) == fingerprint(
            stream.test_queries() + stream.train_queries()
        )
    with pytest.raises(ValueError, match="support_skip=-1"):
        ShapesDataModule(support_skip=-1)


@pytest.mark.parametrize("distractors", [-0.1, 2 / 3, 0.9])
def test_distractor_rates_that_hide_the_task_are_refused(distractors: float) -> None:
    with pytest.raises(ValueError, match=r"distractors=.* must be in \[0, 2/3\)"):
        ShapesDataModule(distractors=distractors)


def test_denoised_labels_are_the_tasks_answers() -> None:
    processor = build_processor()
    episodes = make_episodes(TASKS, 6, 4, 0, "train", "image", "image", MANY_SHOT_DISTRACTORS)
    labels = encode(processor, episodes, denoise=True)["labels"]
    tasks_answers = [x.answers[-1] for e in episodes for x in (*e.shots, e.query)]
    assert processor.tokenizer.convert_ids_to_tokens(labels[labels != -100].tolist()) == tasks_answers
    shown = encode(processor, episodes)["labels"]
    assert (shown != labels).any(), "some shots show a distractor"


def test_the_many_shot_toy_refuses_a_prompt_longer_than_its_context() -> None:
    vlm = FrozenVLM.from_pretrained(MODEL)
    context, most = context_shots()
    assert vlm.context_length == context and image_prompt_tokens(most) <= context < image_prompt_tokens(most + 1)
    fits = make_episodes(TASKS, 2, most, 0, "heldout", "image", "image", MANY_SHOT_DISTRACTORS)
    assert vlm.build_inputs(fits, SHAPES_TEMPLATE)["input_ids"].shape[1] == image_prompt_tokens(most)
    too_long = make_episodes(TASKS, 2, most + 1, 0, "heldout", "image", "image", MANY_SHOT_DISTRACTORS)
    with pytest.raises(
        ValueError, match=f"is {image_prompt_tokens(most + 1)} tokens, longer than .*'s context of {context} "
    ):
        vlm.build_inputs(too_long, SHAPES_TEMPLATE)


@pytest.mark.slow
def test_shipped_many_shot_toy_gains_from_every_shot_that_fits() -> None:
    assert sum(f.stat().st_size for f in CHECKPOINT.iterdir()) < 10e6
    queries = 150
    result = accuracy_vs_shots(queries=queries)
    accuracy, n = result["accuracy"], queries * len(TASKS)
    assert result["shots"] == list(range(context_shots()[1] + 1))

    assert accuracy[-1] - accuracy[0] > margin(accuracy[-1], accuracy[0], n), accuracy
    assert accuracy[-1] - accuracy[1] > margin(accuracy[-1], accuracy[1], n), accuracy


def margin(a: float, b: float, n: int) -> float:
    """Three standard errors of the difference of two accuracies over `n` queries each."""
    return 3 * math.sqrt((a * (1 - a) + b * (1 - b)) / n)


@pytest.mark.slow
def test_mtv_means_over_many_episodes_beat_the_most_shots_that_fit() -> None:
    queries = 150
    n = queries * len(TASKS)
    best_icl = max(accuracy_vs_shots(queries=queries)["accuracy"])
    mtv = accuracy_vs_iterations(iterations=(1, 100), queries=queries)
    assert mtv["searched"][-1] - best_icl > margin(mtv["searched"][-1], best_icl, n), (mtv, best_icl)
    fixed = mtv["fixed_heads"]  # the same heads: more episodes in the means help
    assert fixed[-1] - fixed[0] > margin(fixed[-1], fixed[0], n), fixed
    random_heads = sum(mtv["random_heads"]) / len(mtv["random_heads"])  # the mean over the draws
    assert len(mtv["random_heads"]) == 20
    assert mtv["searched"][-1] - random_heads > margin(mtv["searched"][-1], random_heads, n)
    assert set(mtv["per_task"]) == set(TASKS)


@pytest.mark.slow
def test_measurement_command_prints_the_table_over_seeds_the_same_in_any_order(capsys, monkeypatch) -> None:
    """Seeds 0 and 1 in either order, in one process: exactly the same numbers per seed (each run seeds what it
    draws), and the same table."""
    results = []

    def recorded(*args, **options):
        results.append(over_seeds(*args, **options))
        return results[-1]

    monkeypatch.setattr(many_shot, "over_seeds", recorded)
    outputs = []
    lightning_level = logging.getLogger("lightning.pytorch").level
    for seeds in (["1", "0"], ["0", "1"]):
        many_shot_main(["--queries", "4", "--steps", "2", "--seeds", *seeds])
        outputs.append(capsys.readouterr().out.strip().splitlines())
    assert logging.getLogger("lightning.pytorch").level == lightning_level, "the command leaves logging as it was"
    reversed_order, in_order = results
    assert reversed_order["seeds"] == [1, 0] and in_order["seeds"] == [0, 1]
    for part in ("icl", "mtv"):  # every number, exactly, seed by seed
        assert reversed_order[part][::-1] == in_order[part]
    lines = outputs[1]
    assert lines[0].startswith(
        "| setting (context 96 tokens; mean ± std (min–max) over seeds 0, 1) | held-out accuracy |"
    )
    assert outputs[0][1:] == lines[1:]
    assert sum(line.startswith("| ICL, ") for line in lines) == context_shots()[1]
    assert sum(line.startswith("| MTV, means over ") for line in lines) == 4
    assert re.search(
        r"^\| MTV, means over 100 episodes of 4 shots \| [\d.]+ ± [\d.]+ \([\d.]+–[\d.]+\) \|", "\n".join(lines), re.M
    )
    assert any(line.startswith("| MTV, as many heads at random (20 draws per task and seed") for line in lines)
    assert any(
        line.startswith("What MTV saw that ICL did not: per task, its head search scored 100 labelled")
        for line in lines
    )
    assert sum("on every seed" in line or "of 2 seeds" in line for line in lines) == 5  # the claims, counted


def _quick(config: str, *extra: str) -> list[str]:
    return ["--config", str(CONFIGS / config), *TINY_MTV, *extra]


@pytest.mark.slow
def test_mtv_fit_and_test_on_the_family_through_the_cli(workdir) -> None:
    main(["fit", *_quick("mtv_many_shot.yaml")])
    smoke = workdir / "logs" / "shapes_mtv_many_shot" / "smoke"  # a fit its command line cuts short writes here
    _, metadata = load_task_vector(smoke / "task_vector.safetensors")
    assert metadata["model"] == MODEL and metadata["iterations"] == "8" and metadata["shots"] == "4"
    checkpoint = smoke / "checkpoints" / "last.ckpt"
    main(["test", *_quick("mtv_many_shot.yaml", "--ckpt_path", str(checkpoint))])
    events = workdir / "logs" / "shapes_mtv_many_shot" / "version_1"
    assert any(events.iterdir())


@pytest.mark.slow
def test_icl_past_the_context_stops_through_the_cli(workdir) -> None:
    config = ["--config", str(CONFIGS / "icl_many_shot.yaml"), "--data.init_args.test_size", "3"]
    main(["test", *config])  # the 4 shots the context holds run
    assert any((workdir / "logs" / "shapes_icl_many_shot").iterdir())
    with pytest.raises(SystemExit, match=r"is 108 tokens \+ 1 new tokens .*, longer than .*'s context of 96"):
        main(["test", *config, "--data.init_args.test_shots", "5"])


@pytest.mark.slow
def test_retraining_command_continues_the_toy_with_a_short_context(tmp_path) -> None:
    out = tmp_path / "toy"
    train_main(
        [
            "--out",
            str(out),
            "--steps",
            "2",
            "--batch-size",
            "4",
            "--eval-every",
            "1000",
            "--logs",
            str(tmp_path / "logs"),
            "--distractors",
            "0.45",
            "--context",
            "96",
            "--max-shots",
            "4",
            "--text-shots",
            "15",
            "--init",
            str(CLEAN_CHECKPOINT),
            "--denoise",
            "--uniform-tasks",
        ]
    )
    assert AutoConfig.from_pretrained(out).text_config.max_position_embeddings == 96
    assert json.loads((out / "config.json").read_text())["text_config"]["max_position_embeddings"] == 96
    with pytest.raises(ValueError, match="max_shots=5 image shots take 109 tokens, more than context=96"):
        train_main(["--out", str(out), "--max-shots", "5", "--context", "96"])
    with pytest.raises(ValueError, match="text_shots=16 text shots take 99 tokens, more than context=96"):
        train_main(["--out", str(out), "--max-shots", "4", "--text-shots", "16", "--context", "96"])
