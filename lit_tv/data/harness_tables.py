"""VQA tables in the form the lmms-eval harness reads (the Hugging Face copies of VizWiz-VQA and OK-VQA).

Columns: ``image`` (a `datasets.Image`: the file's bytes and/or its path), ``question``, ``answers`` (strings or
official ``{"answer": ...}`` objects) and ``question_id``; others (``answer_type``, ``category``, ...) are ignored.
A source is a ``.parquet`` file, a folder (`datasets.Dataset.save_to_disk` output, or parquet files whose names
give the splits, as a Hub repository's do) or a Hub id (`datasets.load_dataset`, which offline reads the local cache).

Images stay in the memory-mapped table (read with ``decode=False``) and are decoded when a prompt needs them by
the decoding a file gets (`lit_tv.images.read_image` of the same bytes), so a table image and its file give the same
pixels: EXIF orientation applied, 16-bit scaled, transparency on white.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import datasets
from PIL import Image

from lit_tv.data.records import DataError, DataIssues, Record, Split, field, ranked_answers
from lit_tv.episodes import Example, StoredImage
from lit_tv.files import atomic_path
from lit_tv.images import read_image

COLUMNS = ("image", "question", "answers")  # read; question_id, when there, names the rows in messages


@dataclass(frozen=True, eq=False)
class TableImage(StoredImage):
    """Row ``row`` of a table's image column (read with ``decode=False``); ``name`` says where, for messages."""

    images: datasets.Dataset
    row: int
    name: str

    def encoded(self) -> bytes:
        stored = self.images[self.row]["image"]
        if stored is None or (stored["bytes"] is None and stored["path"] is None):
            raise ValueError(f"{self.name} holds no image")
        if stored["bytes"] is not None:
            return stored["bytes"]
        return Path(stored["path"]).read_bytes()  # a table that refers to its image files instead of holding them

    def __str__(self) -> str:
        return self.name


def _is_hub_id(source: str) -> bool:
    return source.count("/") == 1 and not source.startswith((".", "/", "~"))


def load_table(source: str, split: str, option: str) -> datasets.Dataset:
    """The table ``source`` names (a ``.parquet`` file, a folder or a Hub id), its ``split`` where it has several;
    ``option`` is the config option that gave it, named in every refusal."""
    path = Path(source).expanduser()
    if path.is_file() and path.suffix != ".parquet":
        raise DataError(f"{option}: {source} is not a .parquet file (expected a parquet file, a folder or a Hub id)")
    if not path.exists() and not _is_hub_id(source):
        raise FileNotFoundError(f"{option}: {source} not found (expected a .parquet file, a folder or a Hub id)")
    try:
        if path.is_file():
            table = datasets.Dataset.from_parquet(str(path))
        elif (path / "state.json").is_file() or (path / "dataset_dict.json").is_file():
            table = datasets.load_from_disk(str(path))
        else:  # a folder of parquet files, or a Hub id
            table = datasets.load_dataset(str(path) if path.exists() else source, split=split)
        if isinstance(table, datasets.DatasetDict):
            if split not in table:
                raise DataError(f"no split {split!r}, only {sorted(table)}")
            table = table[split]
    except (OSError, ValueError, datasets.exceptions.DatasetNotFoundError) as error:  # ConnectionError is an OSError
        raise DataError(f"{option}: cannot read {source} (split {split!r}): {error}") from error
    assert isinstance(table, datasets.Dataset)  # from_parquet and load_dataset with a split give one table
    missing = [column for column in COLUMNS if column not in table.column_names]
    if missing:
        raise DataError(
            f"{option}: {source} has no column {', '.join(map(repr, missing))} (expected the harness columns "
            f"{', '.join(COLUMNS)}; found {', '.join(table.column_names)})"
        )
    return table


def read_table(source: str, split: str, option: str, name: str, order: str, issues: DataIssues) -> Split:
    """The records of a harness-format table; ``order`` is the official split it copies (same records, same
    episodes), ``name`` the split's name in messages. A bad row raises, or in skip mode is counted and left out."""
    table = load_table(source, split, option)
    try:
        images = table.select_columns(["image"]).cast_column("image", datasets.Image(decode=False))
    except (TypeError, ValueError) as error:
        raise DataError(f"{option}: {source}: column 'image' holds no images ({error})") from error
    text_columns = [column for column in (*COLUMNS[1:], "question_id") if column in table.column_names]
    records = []
    for row, raw in enumerate(table.select_columns(text_columns).to_list()):
        where = f"{source} ({split}) row {row}"
        where += f", question_id {raw['question_id']}" if "question_id" in raw else ""
        with issues.guard():
            example = Example(
                field(raw, "question", str, where),
                (TableImage(images, row, f"image of {where}"),),
                ranked_answers(field(raw, "answers", list, where), where),
            )
            records.append(Record(example, f"column 'image' of {where}"))
    return Split(name, records, order=order)


def _encoded(image: object, where: str) -> tuple[bytes, str | None]:
    """An example's image as file bytes and a file name: a file's own bytes (the same pixels when read back),
    a stored image's, or a PIL image as a PNG (lossless) of its pixels as `read_image` decodes them (any mode, and
    no EXIF tag left for a reader to apply twice)."""
    if isinstance(image, StoredImage):
        return image.encoded(), None
    if isinstance(image, Image.Image):
        buffer = BytesIO()
        read_image(image).save(buffer, "PNG")
        return buffer.getvalue(), None
    if isinstance(image, str | Path):
        return Path(image).read_bytes(), Path(image).name
    raise TypeError(f"{where}: an image should be a path, a PIL image or a stored image, got {type(image).__name__}")


def write_vqa_table(
    path: str | Path, examples: Sequence[Example], question_ids: Sequence[str] | None = None, overwrite: bool = False
) -> Path:
    """A harness-format parquet of ``examples`` (one image each): columns image, question, answers, question_id
    (default: each example's index), as the lmms-eval VizWiz and OK-VQA tasks read. Written whole or not at all;
    an existing file is replaced only with ``overwrite``."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    if question_ids is not None and len(question_ids) != len(examples):
        raise ValueError(f"question_ids: {len(question_ids)} given for {len(examples)} examples")
    columns: dict[str, list] = {"image": [], "question": [], "answers": [], "question_id": []}
    for index, example in enumerate(examples):
        where = f"example {index} ({example.text!r:.60})"
        if len(example.images) != 1:
            raise ValueError(f"{where}: a VQA table row holds one image, the example has {len(example.images)}")
        if not example.answers:
            raise ValueError(f"{where}: has no answers")
        data, name = _encoded(example.images[0], where)
        columns["image"].append({"bytes": data, "path": name})
        columns["question"].append(example.text)
        columns["answers"].append(list(example.answers))
        columns["question_id"].append(str(question_ids[index]) if question_ids is not None else str(index))
    table = datasets.Dataset.from_dict(columns).cast_column("image", datasets.Image())
    with atomic_path(path) as temporary:
        table.to_parquet(str(temporary))
    return path
