"""Small copies of each benchmark in its official layout, with generated images, for the loader tests.

Every writer returns the data root to hand to the DataModule; `write_table` writes an official split's records
as the harness-format copies hold them (`vizwiz_rows`, `okvqa_rows`). Images are tiny JPEGs in a colour per
class or record; the files around them follow the official releases field by field.
"""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import numpy as np
from PIL import Image
from scipy.io import savemat

COLOURS = ("red", "green", "blue", "yellow", "purple", "orange", "white", "black", "pink", "brown", "gray", "cyan")
# Ten human answers per question: seven agree, so the majority answer is known.
TEN = ("unanswerable", "unanswerable", "{c}", "{c}", "{c}", "{c}", "{c}", "{c}", "{c}", "dark {c}")
BIRDS = (
    "001.Black_footed_Albatross",
    "002.Laysan_Albatross",
    "003.Sooty_Albatross",
    "004.Groove_billed_Ani",
    "005.Crested_Auklet",
    "006.Least_Auklet",
    "007.Parakeet_Auklet",
    "008.Rhinoceros_Auklet",
)
CROSS_MODAL_TASKS = ("country-capital", "country-currency", "animal-latin", "animal-young", "food-color", "food-flavor")


def write_image(path: Path, colour: str, size: tuple[int, int] = (40, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, "JPEG")
    return path


def corrupt_jpeg(path: Path) -> Path:
    """A JPEG cut after its header: it opens, and fails once its pixels are read."""
    path.write_bytes(path.read_bytes()[:200])
    return path


def write_json(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def _colour(index: int) -> str:
    return COLOURS[index % len(COLOURS)]


def write_vizwiz(root: Path, train: int = 12, val: int = 6) -> Path:
    """``Annotations/{train,val}.json`` and ``train/``, ``val/`` with VizWiz file names."""
    for split, count in (("train", train), ("val", val)):
        records = []
        for index in range(count):
            name = f"VizWiz_{split}_{index:08d}.jpg"
            write_image(root / split / name, _colour(index))
            answers = [{"answer": answer.format(c=_colour(index)), "answer_confidence": "yes"} for answer in TEN]
            records.append(
                {
                    "image": name,
                    "question": f"What colour is this {index}?",
                    "answers": answers,
                    "answer_type": "other",
                    "answerable": 1,
                }
            )
        write_json(root / "Annotations" / f"{split}.json", records)
    return root


def write_okvqa(root: Path, train: int = 12, val: int = 6) -> Path:
    """OK-VQA question and annotation files of train2014 / val2014 and the COCO image folders."""
    for split, count in (("train2014", train), ("val2014", val)):
        questions, annotations = [], []
        for index in range(count):
            image_id, question_id = 1000 + index, 50000 + index
            write_image(root / split / f"COCO_{split}_{image_id:012d}.jpg", _colour(index))
            questions.append(
                {"image_id": image_id, "question": f"What colour is the fruit {index}?", "question_id": question_id}
            )
            answers = [
                {
                    "answer_id": rank + 1,
                    "raw_answer": answer.format(c=_colour(index)),
                    "answer": answer.format(c=_colour(index)),
                    "answer_confidence": "yes",
                }
                for rank, answer in enumerate(TEN)
            ]
            annotations.append(
                {
                    "image_id": image_id,
                    "question_id": question_id,
                    "question_type": "other",
                    "answer_type": "other",
                    "confidence": 3,
                    "answers": answers,
                }
            )
        write_json(
            root / f"OpenEnded_mscoco_{split}_questions.json",
            {"data_subtype": split, "task_type": "Open-Ended", "questions": questions},
        )
        write_json(root / f"mscoco_{split}_annotations.json", {"data_subtype": split, "annotations": annotations})
    return root


def write_vqa_jsonl(root: Path, train: int = 12, test: int = 6) -> Path:
    """``train.jsonl`` / ``test.jsonl`` with images under ``images/``; odd lines carry ten answers."""
    for split, count in (("train", train), ("test", test)):
        lines = []
        for index in range(count):
            image = f"images/{split}_{index}.jpg"
            write_image(root / image, _colour(index))
            record = {"image": image, "question": f"What colour is this {index}?", "question_id": index}
            if index % 2:
                record["answers"] = [answer.format(c=_colour(index)) for answer in TEN]
            else:
                record["answer"] = _colour(index)
            lines.append(json.dumps(record))
        (root / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    return root


def vizwiz_rows(root: Path, split: str) -> dict[str, list]:
    """The official split's records in file order, as the lmms-lab copy holds them (answers: ten strings)."""
    records = json.loads((root / "Annotations" / f"{split}.json").read_text())
    names = [record["image"] for record in records]
    return {
        "question_id": names,
        "image": [{"bytes": (root / split / name).read_bytes(), "path": name} for name in names],
        "question": [record["question"] for record in records],
        "answers": [[answer["answer"] for answer in record["answers"]] for record in records],
        "category": ["other" for _ in records],  # columns lit_tv does not read are ignored
    }


def okvqa_rows(root: Path, split: str) -> dict[str, list]:
    """OK-VQA's questions joined with their annotations, answers as the official objects."""
    questions = json.loads((root / f"OpenEnded_mscoco_{split}_questions.json").read_text())["questions"]
    annotations = json.loads((root / f"mscoco_{split}_annotations.json").read_text())["annotations"]
    answers = {annotation["question_id"]: annotation["answers"] for annotation in annotations}
    images = [root / split / f"COCO_{split}_{question['image_id']:012d}.jpg" for question in questions]
    return {
        "question_id": [question["question_id"] for question in questions],
        "image": [{"bytes": image.read_bytes(), "path": None} for image in images],
        "question": [question["question"] for question in questions],
        "answers": [answers[question["question_id"]] for question in questions],
        "answer_type": ["other" for _ in questions],
    }


def _table(rows: dict[str, list]) -> datasets.Dataset:
    """The rows with ``image`` a `datasets.Image` column, as the Hugging Face copies hold it."""
    return datasets.Dataset.from_dict(rows).cast_column("image", datasets.Image())


def write_table(rows: dict[str, list], form: str, folder: Path, split: str) -> str:
    """The table as a user may hold it: one parquet file, `save_to_disk` output, or a folder of parquet files
    named by split (as a Hub repository names them)."""
    if form == "parquet":
        _table(rows).to_parquet(str(folder / f"{split}.parquet"))
        return str(folder / f"{split}.parquet")
    if form == "save_to_disk":
        datasets.DatasetDict({split: _table(rows)}).save_to_disk(str(folder / split))
        return str(folder / split)
    (folder / "repo" / "data").mkdir(parents=True, exist_ok=True)
    _table(rows).to_parquet(str(folder / "repo" / "data" / f"{split}-00000-of-00001.parquet"))
    return str(folder / "repo")


def write_vizwiz_with_table(root: Path) -> Path:
    """The official layout, its val split also as ``val.parquet`` (the lmms-lab copy's columns)."""
    write_table(vizwiz_rows(write_vizwiz(root), "val"), "parquet", root, "val")
    return root


def write_okvqa_tables(root: Path) -> Path:
    """The official layout, both splits also as ``train2014.parquet`` and ``val2014.parquet``."""
    write_okvqa(root)
    for split in ("train2014", "val2014"):
        write_table(okvqa_rows(root, split), "parquet", root, split)
    return root


def write_flowers(
    root: Path, labels: tuple[int, ...] = tuple(range(1, 9)), per_split: tuple[int, int, int] = (3, 1, 2)
) -> Path:
    """``jpg/image_XXXXX.jpg``, ``imagelabels.mat`` and ``setid.mat`` for a few classes (train, val, test counts)."""
    image_labels, ids = [], {"trnid": [], "valid": [], "tstid": []}
    for label in labels:
        for key, count in zip(ids, per_split, strict=True):
            for _ in range(count):
                image_labels.append(label)
                image_id = len(image_labels)
                ids[key].append(image_id)
                write_image(root / "jpg" / f"image_{image_id:05d}.jpg", _colour(label))
    savemat(root / "imagelabels.mat", {"labels": np.array([image_labels], dtype=np.uint8)})
    savemat(root / "setid.mat", {key: np.array([value], dtype=np.uint16) for key, value in ids.items()})
    return root


def write_cub(root: Path, classes: tuple[str, ...] = BIRDS, train: int = 4, test: int = 2) -> Path:
    """``CUB_200_2011``-style text files and ``images/<class>/<file>.jpg``."""
    images, labels, splits = [], [], []
    for class_id, folder in enumerate(classes, start=1):
        for number in range(train + test):
            relative = f"{folder}/{folder.split('.', 1)[1]}_{number:04d}_{class_id}.jpg"
            write_image(root / "images" / relative, _colour(class_id))
            images.append(relative)
            labels.append(class_id)
            splits.append(int(number < train))
    (root / "images.txt").write_text("".join(f"{i} {path}\n" for i, path in enumerate(images, start=1)))
    (root / "image_class_labels.txt").write_text("".join(f"{i} {c}\n" for i, c in enumerate(labels, start=1)))
    (root / "classes.txt").write_text("".join(f"{i} {name}\n" for i, name in enumerate(classes, start=1)))
    (root / "train_test_split.txt").write_text("".join(f"{i} {s}\n" for i, s in enumerate(splits, start=1)))
    return root


def write_cross_modal(root: Path, tasks: tuple[str, ...] = CROSS_MODAL_TASKS, val: int = 10, test: int = 4) -> Path:
    """``annotations/{task}_{val,test}.json`` lists of ``{input, output, image}``, images relative to ``root``."""
    for task in tasks:
        for split, count in (("val", val), ("test", test)):
            records = []
            for index in range(count):
                image = f"images/{task}/{split}_{index}.jpg"
                write_image(root / image, _colour(index))
                records.append(
                    {"input": f"{task.split('-')[0]} {split} {index}", "output": f"{_colour(index)}", "image": image}
                )
            write_json(root / "annotations" / f"{task}_{split}.json", records)
    return root


def write_reference_episodes(path: Path, episodes: list[tuple[str, str, str, str, str]]) -> Path:
    """An MTV reference episode file (``flower_test.json`` ...): (query, pos, neg, pos_label, neg_label) each,
    written with the real files' key order (``pos``, ``neg``, ``query``, ``pos_label``, ``neg_label``)."""
    return write_json(
        path,
        [
            {"pos": pos, "neg": neg, "query": query, "pos_label": pos_label, "neg_label": neg_label}
            for query, pos, neg, pos_label, neg_label in episodes
        ],
    )


def _write_episode_files(root: Path, names: tuple[str, str], classes: list[list[str]], count: int = 12) -> Path:
    """Reference episode files over ``classes`` (each class's image paths as the reference writes them): each
    episode asks for one class against the next."""
    rows = []
    for index in range(count):
        own, other = index % len(classes), (index + 1) % len(classes)
        images = classes[own]
        rows.append(
            (
                images[index % len(images)],
                images[(index + 1) % len(images)],
                classes[other][0],
                f"class {own}",
                f"class {other}",
            )
        )
    for name in names:
        write_reference_episodes(root / name, rows)
    return root


def write_flowers_with_episodes(root: Path) -> Path:
    """`write_flowers` (8 classes of 6 consecutive images) plus the reference's ``flower_{train,test}.json``."""
    write_flowers(root)
    # the real files' form: ./flowers-102/jpg/image_03505.jpg
    classes = [
        [f"./flowers-102/jpg/image_{6 * label + number:05d}.jpg" for number in range(1, 7)] for label in range(8)
    ]
    return _write_episode_files(root, ("flower_train.json", "flower_test.json"), classes)


def write_cub_with_episodes(root: Path) -> Path:
    """`write_cub` plus the reference's ``cub_{train,test}.json``."""
    write_cub(root)
    folders = sorted((root / "images").iterdir())
    classes = [
        # the real files' form: ./CUB_200_2011/images/030.Fish_Crow/Fish_Crow_0017_26127.jpg
        [f"./CUB_200_2011/images/{folder.name}/{image.name}" for image in sorted(folder.iterdir())]
        for folder in folders
    ]
    return _write_episode_files(root, ("cub_train.json", "cub_test.json"), classes)
