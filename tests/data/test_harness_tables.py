"""VizWiz and OK-VQA read from the harness-format tables (parquet, `datasets` folders, Hub ids) as from the official
layout: the same records give the same episodes, pixels and accuracy; bad tables are refused naming the option."""

from __future__ import annotations

import importlib
import re
import shutil
from pathlib import Path

import datasets
import numpy as np
import pytest
import yaml
from benchmark_fixtures import corrupt_jpeg, okvqa_rows, vizwiz_rows, write_okvqa, write_table, write_vizwiz
from datasets.data_files import DataFilesDict
from datasets.packaged_modules.parquet.parquet import Parquet
from helpers import REPO
from PIL import Image

from lit_tv.data.harness_tables import read_table, write_vqa_table
from lit_tv.data.records import DataError, DataIssues
from lit_tv.data.vqa import OKVQA, VizWiz
from lit_tv.episodes import Episode, Example, StoredImage
from lit_tv.metrics import VQAAccuracy
from lit_tv.model.vlm import load_image

SIZES = {"train_size": 3, "support_size": 3, "val_size": 1, "test_shots": 2}
ROLES = ("support", "train", "val", "test")
HUB_ID = "lit-tv/vizwiz-tiny"
METHODS = REPO / "docs" / "methods.md"


pytestmark = pytest.mark.usefixtures("datasets_cache")  # the tables' Arrow copies go to the test's own cache


def write_rotated_photo(path: Path) -> None:
    """A phone photo: stored landscape, left half red, with EXIF orientation 6 (a viewer turns it a quarter
    clockwise: portrait, top half red)."""
    pixels = np.zeros((30, 40, 3), dtype=np.uint8)
    pixels[:, :20] = (250, 10, 10)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(pixels).save(path, "JPEG", exif=exif)


def pixels(image) -> np.ndarray:
    return np.asarray(load_image(image))


def assert_same_episodes(official: list[Episode], copied: list[Episode]) -> None:
    assert len(official) == len(copied) > 0
    for left, right in zip(official, copied, strict=True):
        for mine, theirs in zip((*left.shots, left.query), (*right.shots, right.query), strict=True):
            assert (mine.text, mine.answers) == (theirs.text, theirs.answers)
            assert len(mine.images) == len(theirs.images) == 1
            np.testing.assert_array_equal(pixels(mine.images[0]), pixels(theirs.images[0]))


def accuracy(queries: list[Episode]) -> float:
    """VQA accuracy of fixed answers keyed by question: right, partly right (2 of 10 humans) and wrong ones."""
    metric = VQAAccuracy()
    answers = ["unanswerable", "red", "green", "blue", "yellow"]
    metric.update([answers[len(e.query.text) % 5] for e in queries], [e.query.answers for e in queries])
    return float(metric.compute())


def assert_same_data(official, copied) -> None:
    for role in ROLES:
        assert_same_episodes(official.episodes(role), copied.episodes(role))
    assert 0 < accuracy(official.test_queries()) == accuracy(copied.test_queries()) < 1


@pytest.mark.parametrize("form", ["parquet", "save_to_disk", "parquet_folder"])
def test_vizwiz_tables_give_the_official_episodes_pixels_and_accuracy(tmp_path, form):
    root = write_vizwiz(tmp_path / "official")
    write_rotated_photo(root / "val" / "VizWiz_val_00000002.jpg")  # both turn it upright, as a viewer does
    train, test = (write_table(vizwiz_rows(root, split), form, tmp_path, split) for split in ("train", "val"))
    official = VizWiz(str(root), **SIZES)
    copied = VizWiz(train=train, test=test, **SIZES)
    assert_same_data(official, copied)
    rotated = next(e.query.images[0] for e in copied.test_queries() if e.query.text == "What colour is this 2?")
    assert load_image(rotated).size == (30, 40)  # stored landscape, shown (EXIF orientation 6) and read upright


@pytest.mark.parametrize("given", ["file", "opened PIL image"])
def test_a_rotated_photo_in_a_table_decodes_upright_like_its_file(tmp_path, given):
    photo = tmp_path / "photo.jpg"
    write_rotated_photo(photo)
    image = photo if given == "file" else Image.open(photo)  # a PIL image keeps its EXIF tag until decoded
    table = write_vqa_table(tmp_path / "table.parquet", [Example("q", (image,), ("red",))])
    split = read_table(str(table), "test", "data.init_args.test", "test", "test", DataIssues(skip=False))
    stored = split.records[0].example.images[0]
    assert isinstance(stored, StoredImage)
    shown = pixels(stored)
    assert shown.shape == (40, 30, 3)
    assert shown[:15, :, 0].mean() > 200 > shown[25:, :, 0].mean()  # red on top: turned clockwise
    if given == "file":
        np.testing.assert_array_equal(shown, pixels(photo))
    else:  # written as a lossless PNG of the decoded pixels
        np.testing.assert_array_equal(shown, pixels(Image.open(photo)))


def test_okvqa_tables_give_the_official_episodes_pixels_and_accuracy(tmp_path):
    root = write_okvqa(tmp_path / "official")
    train, test = (
        write_table(okvqa_rows(root, split), "parquet", tmp_path, split) for split in ("train2014", "val2014")
    )
    assert_same_data(OKVQA(str(root), **SIZES), OKVQA(train=train, test=test, **SIZES))


def test_a_table_for_one_split_and_the_official_layout_for_the_other(tmp_path):
    root = write_vizwiz(tmp_path / "official")
    test = write_table(vizwiz_rows(root, "val"), "parquet", tmp_path, "val")
    mixed = VizWiz(str(root), test=test, **SIZES)
    assert_same_data(VizWiz(str(root), **SIZES), mixed)
    assert all(isinstance(image, Path) for e in mixed.support_episodes() for image in e.images())
    assert str(mixed.test_queries()[0].query.images[0]).startswith(f"image of {test} (val) row ")


def prefill_hub_cache(cache: Path, repo_id: str, split: str, parquet: str) -> None:
    """The cache `datasets.load_dataset(repo_id)` leaves after reading a Hub repository online: the prepared Arrow
    table under ``<namespace>___<name>/default/0.0.0/<commit>/`` (built here from a local parquet file)."""
    namespace, name = repo_id.split("/")
    builder = Parquet(
        cache_dir=str(cache / "build"),
        dataset_name=name,
        hash="0123456789abcdef",
        data_files=DataFilesDict.from_patterns({split: [parquet]}),
    )
    builder.download_and_prepare()
    # the builder's name in snake case, as for the Hub's builder: VizWiz-VQA is cached as viz_wiz-vqa
    prepared = cache / f"{namespace}___{builder.dataset_name}" / "default" / "0.0.0" / "0123456789abcdef"
    prepared.parent.mkdir(parents=True)
    shutil.move(builder.cache_dir, prepared)


def test_a_hub_id_is_read_offline_from_the_local_cache(tmp_path, datasets_cache, monkeypatch):
    root = write_vizwiz(tmp_path / "official")
    prefill_hub_cache(datasets_cache, HUB_ID, "val", write_table(vizwiz_rows(root, "val"), "parquet", tmp_path, "val"))
    (tmp_path / "val.parquet").unlink()  # only the cache holds the table now
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)  # no folder named like the id
    assert_same_data(VizWiz(str(root), **SIZES), VizWiz(str(root), test=HUB_ID, **SIZES))
    with pytest.raises(DataError, match=r"data.init_args.test: cannot read lit-tv/not-cached \(split 'val'\)"):
        VizWiz(str(root), test="lit-tv/not-cached", **SIZES)


def test_a_table_without_a_column_is_refused_naming_the_column_and_the_file(tmp_path):
    root = write_vizwiz(tmp_path / "official")
    rows = vizwiz_rows(root, "val")
    del rows["answers"]
    test = write_table(rows, "parquet", tmp_path, "val")
    with pytest.raises(DataError, match=rf"data.init_args.test: {test} has no column 'answers' \(expected"):
        VizWiz(str(root), test=test)


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"test": "missing.parquet"}, FileNotFoundError, r"data.init_args.test: missing.parquet not found"),
        ({"test": "{root}/Annotations/val.json"}, DataError, r"data.init_args.test: .*val.json is not a .parquet"),
        ({"test": "{root}", "test_table_split": "test"}, DataError, r"data.init_args.test: cannot read .*'test'"),
        (
            {"test": "t.parquet", "test_annotations": "other.json"},
            ValueError,
            r"data.init_args.test \(t.parquet\) and data.init_args.test_annotations \(other.json\) both given",
        ),
        ({"root": None, "test": "t.parquet"}, ValueError, r"data.init_args.root is not set: the train split"),
        ({"train": "a.parquet", "test": "b.parquet"}, ValueError, r"data.init_args.root \(.*\) is given, but"),
    ],
)
def test_bad_table_options_are_refused_naming_the_option(tmp_path, monkeypatch, options, error, message):
    root = write_vizwiz(tmp_path / "official")
    monkeypatch.chdir(tmp_path)
    given = {"root": str(root), **{key: value and value.format(root=root) for key, value in options.items()}}
    with pytest.raises(error, match=message):
        VizWiz(**given)


def test_an_unreadable_image_in_a_table_is_named_by_its_row_or_skipped(tmp_path):
    root = write_vizwiz(tmp_path / "official")
    corrupt_jpeg(root / "val" / "VizWiz_val_00000001.jpg")
    test = write_table(vizwiz_rows(root, "val"), "parquet", tmp_path, "val")
    with pytest.raises(DataError, match=r"cannot read image .*named by column 'image' of .*val.parquet \(val\) row 1"):
        VizWiz(str(root), test=test, train_size=0, support_size=0).test_queries()
    skipping = VizWiz(str(root), test=test, train_size=0, support_size=0, skip_bad_data=True)
    assert len(skipping.test_queries()) == 5 and skipping.skipped == {"records with unreadable images": 1}


def test_write_vqa_table_writes_the_harness_columns_and_reads_back_the_same_queries(tmp_path):
    root = write_vizwiz(tmp_path / "official")
    official = VizWiz(str(root), train_size=0, support_size=0)
    queries = [episode.query for episode in official.test_queries()]
    written = write_vqa_table(tmp_path / "queries.parquet", queries, question_ids=[f"q{i}" for i in range(6)])
    read = datasets.Dataset.from_parquet(str(written))
    assert read.column_names == ["image", "question", "answers", "question_id"]
    assert read["question_id"] == [f"q{i}" for i in range(6)] and read["answers"][0] == list(queries[0].answers)
    copied = VizWiz(str(root), test=str(written), train_size=0, support_size=0)
    by_text = {episode.query.text: episode for episode in copied.test_queries()}
    assert_same_episodes(official.test_queries(), [by_text[query.text] for query in queries])
    # a table's images and PIL images are written too; an existing file is replaced only when asked
    drawn = Image.new("RGB", (12, 8), "teal")
    mixed = [copied.test_queries()[0].query, Example("What colour?", (drawn,), ("teal",))]
    with pytest.raises(FileExistsError, match="queries.parquet exists; pass overwrite=True"):
        write_vqa_table(written, mixed)
    write_vqa_table(written, mixed, overwrite=True)
    again = VizWiz(str(root), test=str(written), train_size=0, support_size=0, test_size=2).test_queries()
    assert {episode.query.text for episode in again} == {mixed[0].text, "What colour?"}
    teal = next(episode.query.images[0] for episode in again if episode.query.text == "What colour?")
    np.testing.assert_array_equal(pixels(teal), np.asarray(drawn))
    with pytest.raises(ValueError, match="example 0 .* holds one image, the example has 0"):
        write_vqa_table(tmp_path / "none.parquet", [Example("text only", (), ("a",))])


def test_the_documented_config_reads_lmms_labs_vizwiz_copy_offline(workdir, datasets_cache, monkeypatch):
    """docs/methods.md's config block as written: the official train split under data/vizwiz, the test split from
    lmms-lab/VizWiz-VQA, here its cache prefilled with the fixture's val split."""
    block = re.search(r"```yaml\n(data:\n  class_path: lit_tv.data.vqa.VizWiz\n.*?)```", METHODS.read_text(), re.DOTALL)
    assert block, "docs/methods.md no longer shows the VizWiz table config"
    data = yaml.safe_load(block.group(1))["data"]
    root = write_vizwiz(workdir / data["init_args"]["root"])
    copy = write_table(vizwiz_rows(root, "val"), "parquet", workdir, "val")
    prefill_hub_cache(datasets_cache, "lmms-lab/VizWiz-VQA", "val", copy)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    module, name = data["class_path"].rsplit(".", 1)
    documented = getattr(importlib.import_module(module), name)(**data["init_args"], **SIZES)
    assert_same_data(VizWiz(str(root), **SIZES), documented)
