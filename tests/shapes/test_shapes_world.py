"""The shapes world: reproducible, held-out combinations really held out, tasks never stated, and a
shipped checkpoint that learns in context."""

from __future__ import annotations

import random
import time

import pytest
import torch
from helpers import TASK_WORDS, fingerprint, text_objects
from transformers import AutoModelForImageTextToText, AutoProcessor

from lit_tv.episodes import Episode
from lit_tv.shapes import world
from lit_tv.shapes.datamodule import ShapesDataModule
from lit_tv.shapes.report import CHECKPOINT, accuracy_by_task, heldout_episodes
from lit_tv.shapes.toy import IMAGE_TOKENS, SHAPES_TEMPLATE, build_model, build_processor
from lit_tv.shapes.train import encode, training_batch
from lit_tv.shapes.world import HELDOUT, TASKS, ShapeObject, make_episodes


def drawn_objects(monkeypatch: pytest.MonkeyPatch) -> list[ShapeObject]:
    """Record every object the generator draws into an image."""
    seen: list[ShapeObject] = []
    original = world.draw

    def recording(obj: ShapeObject, rng: random.Random):
        seen.append(obj)
        return original(obj, rng)

    monkeypatch.setattr(world, "draw", recording)
    return seen


def test_same_seed_same_episodes_and_pixels() -> None:
    make = lambda seed: make_episodes(TASKS, 12, 3, seed, "train", "mixed", "mixed")  # noqa: E731
    assert fingerprint(make(7)) == fingerprint(make(7))
    assert fingerprint(make(7)) != fingerprint(make(8))
    obj = world.ALL_OBJECTS[0]
    assert world.draw(obj, random.Random(1)).tobytes() == world.draw(obj, random.Random(1)).tobytes()
    assert world.draw(obj, random.Random(1)).tobytes() != world.draw(obj, random.Random(2)).tobytes()


def test_generator_leaves_global_rng_alone() -> None:
    random.seed(123)
    expected = random.random()
    random.seed(123)
    make_episodes(TASKS, 6, 2, 0, "train", "image", "image")
    assert random.random() == expected


def test_heldout_set_is_fixed_and_composable() -> None:
    assert len(HELDOUT) == 20
    assert world.ShapeObject("red", "circle", "top-left") in HELDOUT
    train = set(world.TRAIN_OBJECTS)
    assert not train & HELDOUT and train | HELDOUT == set(world.ALL_OBJECTS)
    for task in TASKS:  # every held-out attribute value is still seen in training
        assert {o.attribute(task) for o in HELDOUT} <= {o.attribute(task) for o in train}


def test_training_never_draws_heldout(monkeypatch: pytest.MonkeyPatch) -> None:
    drawn = drawn_objects(monkeypatch)
    rng = random.Random(0)
    train_episodes = [e for _ in range(40) for e in training_batch(rng, 8, 7)]
    generator_draws = len(drawn)
    data = ShapesDataModule(shot_modality="mixed", query_modality="mixed", support_size=60, train_size=60)
    data_train = data.support_episodes() + data.train_queries()  # roles are built in order: these first
    data_test = data.val_queries() + data.test_queries()
    images_in = [
        sum(len(x.images) for e in episodes for x in (*e.shots, e.query)) for episodes in (data_train, data_test)
    ]
    train_draws = generator_draws + images_in[0]
    assert len(drawn) == train_draws + images_in[1]
    seen = drawn[:train_draws] + text_objects(train_episodes + data_train)
    assert train_draws > 100 and len(seen) > train_draws
    assert not set(seen) & HELDOUT

    test_draws = drawn[train_draws:]
    drawn.clear()
    test_episodes = data_test + heldout_episodes("4 text shots -> image", 5, 0)
    assert set(test_draws + drawn + text_objects(test_episodes)) <= HELDOUT


@pytest.mark.parametrize("shots", [0, 1, 4])
@pytest.mark.parametrize("modality", ["image", "text", "mixed"])
def test_task_never_named_in_prompt(shots: int, modality: world.Modality) -> None:
    vocab = set(build_processor().tokenizer.get_vocab())
    assert not vocab & TASK_WORDS
    for episode in make_episodes(TASKS, 9, shots, 3, "train", modality, modality):
        words = SHAPES_TEMPLATE.render(episode, "<image>").split()
        assert not set(words) & TASK_WORDS
        assert set(words) <= vocab  # nothing is silently mapped to <unk>


def test_datamodule_yields_lists_of_episodes() -> None:
    data = ShapesDataModule(train_size=10, val_size=6, test_size=9, test_shots=2, batch_size=4)
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    assert isinstance(batch, list) and len(batch) == 4 and all(isinstance(e, Episode) for e in batch)
    assert all(not e.shots for e in data.train_queries())
    assert all(len(e.shots) == 2 for e in data.test_queries())
    assert [len(b) for b in data.test_dataloader()] == [4, 4, 1]
    assert all(len(e.shots) == 4 and e.shots[0].answers for e in data.support_episodes())
    assert fingerprint(data.test_queries()) != fingerprint(data.val_queries())


def test_image_placeholder_expands_to_model_image_tokens() -> None:
    processor = build_processor()
    torch.manual_seed(0)
    model = build_model(processor.tokenizer)
    episodes = make_episodes(TASKS, 3, 2, 0, "train", "mixed", "image")
    inputs = encode(processor, episodes)
    image_id = processor.tokenizer.convert_tokens_to_ids("<image>")
    images = sum(len(e.images()) for e in episodes)
    assert (inputs["input_ids"] == image_id).sum() == images * IMAGE_TOKENS == images * model.config.image_seq_length
    labelled = inputs["labels"][inputs["labels"] != -100].tolist()
    answers = [x.answer for e in episodes for x in (*e.shots, e.query)]
    assert processor.tokenizer.convert_ids_to_tokens(labelled) == answers
    assert model(**inputs).loss.isfinite()
    assert 1.2e6 < sum(p.numel() for p in model.parameters()) < 1.6e6


@pytest.mark.slow
def test_shipped_checkpoint_learns_in_context() -> None:
    start = time.perf_counter()
    model = AutoModelForImageTextToText.from_pretrained(CHECKPOINT).eval()
    processor = AutoProcessor.from_pretrained(CHECKPOINT)
    assert sum(f.stat().st_size for f in CHECKPOINT.iterdir()) < 10e6
    zero = accuracy_by_task(model, processor, heldout_episodes("0-shot", 20, 11))["mean"]
    four = accuracy_by_task(model, processor, heldout_episodes("4-shot image", 20, 11))["mean"]
    assert four - zero >= 0.3, (zero, four)
    assert time.perf_counter() - start < 60
