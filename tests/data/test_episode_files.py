"""Flowers / CUB from the MTV reference's own episode files: episodes exactly as listed, bad files named."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from benchmark_fixtures import BIRDS, write_cub, write_flowers, write_reference_episodes

from lit_tv.data.records import DataError
from lit_tv.data.two_way import CUB200, Flowers102
from lit_tv.episodes import Episode

ROLES = ("support", "train", "val", "test")


def flower(image_id: int, prefix: str = "./flowers-102/jpg/") -> str:  # the real files' form
    return f"{prefix}image_{image_id:05d}.jpg"


# (query, pos, neg, pos_label, neg_label): the fixture's class k holds images 6k-5 .. 6k; prefixes vary
FLOWER_TEST = [
    (flower(5), flower(1), flower(7), "pink primrose", "hard-leaved pocket orchid"),
    (
        flower(11, "/home/someone/flowers102/jpg/"),
        flower(9),
        flower(15),
        "hard-leaved pocket orchid",
        "canterbury bells",
    ),
    (flower(17, "jpg\\"), flower(13), flower(45), "canterbury bells", "giant white arum lily"),
    (flower(23, ""), flower(19), flower(1), "sweet pea", "pink primrose"),
    (flower(29), flower(25), flower(31), "english marigold", "tiger lily"),
    (flower(35), flower(31), flower(37), "tiger lily", "moon orchid"),
    (flower(41), flower(37), flower(43), "moon orchid", "bird of paradise"),
    (flower(47), flower(43), flower(2), "bird of paradise", "pink primrose"),
]
FLOWER_TRAIN = [
    (flower(q), flower(p), flower(n), f"class {p}", f"class {n}") for q, p, n in [(2, 3, 8), (8, 9, 14)] * 4
]


def write_flower_files(root: Path) -> Path:
    write_flowers(root)
    write_reference_episodes(root / "flower_train.json", FLOWER_TRAIN)
    write_reference_episodes(root / "flower_test.json", FLOWER_TEST)
    return root


def listed(root: Path, module=Flowers102, **overrides) -> Flowers102 | CUB200:
    sizes = {"support_size": 2, "train_size": 3, "val_size": 1, "episodes": ".", **overrides}
    return module(str(root), **sizes)


def parts(episode: Episode) -> tuple[list[str], Path, str, list[tuple[Path, str]]]:
    """Options, query image, answer and (image, answer) of each shot."""
    options = list(re.search(r"A\.(.*) B\.(.*)\n", episode.query.text).groups())
    shots = [(Path(shot.images[0]), shot.answer) for shot in episode.shots]
    return options, Path(episode.query.images[0]), episode.query.answer, shots


def expected(root: Path, row: tuple[str, str, str, str, str], folder: str, depth: int) -> tuple[Path, ...]:
    def image(text: str) -> Path:
        return root / folder / Path(*text.replace("\\", "/").split("/")[-depth:])

    return image(row[0]), image(row[1]), image(row[2])


def test_test_episodes_are_the_test_file_s_in_order_with_its_images_labels_and_answers(tmp_path):
    root = write_flower_files(tmp_path)
    data = listed(root)
    data.setup("test")
    episodes = data.test_queries()
    assert len(episodes) == len(FLOWER_TEST)
    orders = set()
    for episode, row in zip(episodes, FLOWER_TEST, strict=True):
        query, positive, negative = expected(root, row, "jpg", 1)
        options, query_image, answer, shots = parts(episode)
        assert query_image == query and sorted(options) == sorted(row[3:])
        positive_letter = "AB"[options.index(row[3])]
        assert answer == positive_letter
        image_of = {row[3]: positive, row[4]: negative}
        assert shots == [(image_of[options[0]], "A"), (image_of[options[1]], "B")]
        assert episode.query.text.startswith("What is the type of flower in the image?")
        orders.add(positive_letter)
    assert orders == {"A", "B"}  # the coin flip of the reference: both orders occur


def test_training_roles_come_from_the_train_file_disjoint_and_sized(tmp_path):
    root = write_flower_files(tmp_path)
    data = listed(root)
    data.setup("fit")
    drawn = {role: data.episodes(role) for role in ROLES}
    assert [len(drawn[role]) for role in ROLES] == [2, 3, 1, len(FLOWER_TEST)]
    for role in ("support", "train", "val"):
        assert {parts(episode)[1].name for episode in drawn[role]} <= {"image_00002.jpg", "image_00008.jpg"}
        assert all(len(episode.shots) == 2 for episode in drawn[role])


def test_a_run_without_shots_asks_the_query_alone(tmp_path):
    data = listed(write_flower_files(tmp_path), test_shots=0)
    assert all(episode.shots == () for episode in data.test_queries())


def test_cub_files_named_as_a_pair_map_the_reference_s_paths_onto_the_root(tmp_path):
    root = write_cub(tmp_path / "CUB_200_2011")
    image = "/data/cub/CUB_200_2011/images/{0}/{1}_{2:04d}_{3}.jpg"

    def bird(class_id: int, number: int) -> str:
        folder = BIRDS[class_id - 1]
        return image.format(folder, folder.split(".", 1)[1], number, class_id)

    rows = [(bird(1, 4), bird(1, 0), bird(2, 1), "Black footed Albatross", "Laysan Albatross")]
    rows += [(bird(3, 5), bird(3, 2), bird(4, 3), "Sooty Albatross", "Groove billed Ani")]
    train = write_reference_episodes(tmp_path / "files" / "cub_train.json", rows * 3)
    test = write_reference_episodes(tmp_path / "files" / "cub_test.json", rows)
    data = listed(root, CUB200, episodes=[str(train), str(test)])
    episodes = data.test_queries()
    assert [parts(episode)[1] for episode in episodes] == [expected(root, row, "images", 2)[0] for row in rows]
    assert all(path.is_file() for episode in episodes for path in map(Path, episode.images()))


def test_the_official_annotation_files_are_not_needed_with_episode_files(tmp_path):
    root = write_flower_files(tmp_path)
    (root / "imagelabels.mat").unlink()
    (root / "setid.mat").unlink()
    assert len(listed(root).test_queries()) == len(FLOWER_TEST)


def _edit(path: Path, index: int, **changes) -> None:
    records = json.loads(path.read_text())
    records[index].update(changes)
    for name, value in changes.items():
        if value is None:
            del records[index][name]
    path.write_text(json.dumps(records))


BAD_FILES = {
    "missing field": (
        lambda root: _edit(root / "flower_test.json", 2, neg=None),
        {},
        DataError,
        r"flower_test.json: record 2: field 'neg' is missing \(expected a string\)",
    ),
    "field of the wrong kind": (
        lambda root: _edit(root / "flower_train.json", 1, pos_label=7),
        {},
        DataError,
        r"flower_train.json: record 1: field 'pos_label' should be a string, got 7",
    ),
    "one class twice": (
        lambda root: _edit(root / "flower_test.json", 0, neg_label="pink primrose"),
        {},
        DataError,
        r"flower_test.json: record 0: fields 'pos_label' and 'neg_label' are both 'pink primrose'",
    ),
    "not a list": (
        lambda root: (root / "flower_test.json").write_text('{"query": "jpg/image_00001.jpg"}'),
        {},
        DataError,
        r"flower_test.json: expected a list of episodes",
    ),
    "missing image": (
        lambda root: (root / "jpg" / "image_00045.jpg").unlink(),
        {},
        DataError,
        r"jpg/image_00045.jpg: image file not found \(field 'neg' of .*flower_test.json: record 2\)",
    ),
    "missing file": (
        lambda root: (root / "flower_train.json").unlink(),
        {},
        FileNotFoundError,
        r"MTV reference episode file \(like its flower_train.json.*\) not found: .*flower_train.json",
    ),
    "not a folder": (lambda root: None, {"episodes": "elsewhere"}, FileNotFoundError, r"episodes: .*elsewhere is not"),
    "more test episodes than listed": (
        lambda root: None,
        {"test_size": 9},
        DataError,
        r"flower_test.json: test episodes need 9 episodes but only 8 usable ones are left",
    ),
    "two shots": (lambda root: None, {"shots": 2}, ValueError, r"data.init_args.shots = 2: .*hold one example image"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_a_bad_episode_file_is_named_with_its_record_and_field(tmp_path, case):
    damage, overrides, error, message = BAD_FILES[case]
    root = write_flower_files(tmp_path)
    damage(root)
    with pytest.raises(error, match=message):
        listed(root, **overrides).setup("test")


def test_a_cub_path_without_a_class_folder_is_refused(tmp_path):
    root = write_cub(tmp_path)
    row = ("image.jpg", "images/001.Black_footed_Albatross/x.jpg", "images/002.Laysan_Albatross/y.jpg", "a", "b")
    write_reference_episodes(root / "cub_train.json", [row])
    write_reference_episodes(root / "cub_test.json", [row])
    with pytest.raises(DataError, match=r"cub_train.json: record 0: field 'query': 'image.jpg' does not end in"):
        listed(root, CUB200)


def test_skip_bad_data_leaves_out_the_bad_episodes_and_counts_them(tmp_path):
    root = write_flower_files(tmp_path)
    (root / "jpg" / "image_00045.jpg").unlink()
    _edit(root / "flower_test.json", 5, query=None)
    data = listed(root, skip_bad_data=True)
    assert len(data.test_queries()) == len(FLOWER_TEST) - 2
    assert data.skipped == {"malformed episodes": 1, "episodes with unreadable images": 1}
