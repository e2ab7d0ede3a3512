"""Benchmark DataModules on small fixtures in the official layouts: splits, prompts, bad data, MTV via the CLI."""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from benchmark_fixtures import (
    BIRDS,
    corrupt_jpeg,
    write_cross_modal,
    write_cub,
    write_cub_with_episodes,
    write_flowers,
    write_flowers_with_episodes,
    write_json,
    write_okvqa,
    write_okvqa_tables,
    write_vizwiz,
    write_vizwiz_with_table,
    write_vqa_jsonl,
)
from helpers import logged_scalars, paper_config_on_zoo
from PIL import Image
from scipy.io import savemat

from lit_tv.cli.command import main
from lit_tv.data.cross_modal import TASKS, CrossModalTasks
from lit_tv.data.records import DataError
from lit_tv.data.two_way import CUB200, Flowers102
from lit_tv.data.vqa import OKVQA, VizWiz, VQAJsonl
from lit_tv.episodes import Episode
from lit_tv.metrics import ExactMatch, FirstTokenMatch, VQAAccuracy
from lit_tv.model.vlm import load_image
from lit_tv.shapes.datamodule import ShapesDataModule

# The MTV reference code's VizWiz instruction and 2-way prompt, written out here to check the loaders against.
VIZWIZ_INSTRUCTION = (
    "First carefully understand the given examples. \nThen use the given image and answer the "
    "question in the same way as the examples. \nIf the question can not be answered, respond "
    "unanswerable. "
)
TWO_WAY = (
    "<image>What is the type of {kind} in the image? A.{a} B.{b}\n"
    "Answer with the option's letter from the given choice directly. Answer:"
)


def small(**overrides) -> dict:
    return {"train_size": 4, "support_size": 3, **overrides}


def images_of(episodes: list[Episode]) -> set[Path]:
    return {Path(image) for episode in episodes for image in episode.images()}


def query_images(episodes: list[Episode]) -> set[Path]:
    return {Path(image) for episode in episodes for image in episode.query.images}


# ---- VQA ----------------------------------------------------------------------------------------


def test_vizwiz_reads_the_official_layout(tmp_path):
    root = write_vizwiz(tmp_path)
    data = VizWiz(str(root), **small())
    data.setup("fit")
    support, test = data.support_episodes(), data.test_queries()
    assert len(support) == 3 and all(len(episode.shots) == 4 for episode in support)
    assert {image.parent for image in images_of(support)} == {root / "train"}
    assert len(test) == 6 and all(not episode.shots for episode in test)
    assert {image.parent for image in images_of(test)} == {root / "val"}
    query = next(episode.query for episode in test if episode.query.text == "What colour is this 3?")
    assert query.answer == "yellow"  # the majority of the ten, shown in demonstrations and scored by REINFORCE
    assert Counter(query.answers) == Counter({"yellow": 7, "unanswerable": 2, "dark yellow": 1})
    assert isinstance(data.metric(), VQAAccuracy)


def test_okvqa_joins_questions_and_annotations_and_names_coco_files(tmp_path):
    root = write_okvqa(tmp_path)
    data = OKVQA(str(root), **small())
    test = data.test_queries()
    assert len(test) == 6
    query = next(episode.query for episode in test if episode.query.text == "What colour is the fruit 2?")
    assert query.images == (root / "val2014" / "COCO_val2014_000000001002.jpg",)
    assert query.answer == "blue" and len(query.answers) == 10
    assert {image.parent for image in images_of(data.support_episodes())} == {root / "train2014"}


def test_vqa_jsonl_takes_one_answer_or_ten(tmp_path):
    root = write_vqa_jsonl(tmp_path)
    data = VQAJsonl(str(root / "train.jsonl"), str(root / "test.jsonl"), test_shots=2, **small())
    answers = {episode.query.text: episode.query.answers for episode in data.test_queries()}
    assert answers["What colour is this 2?"] == ("blue",)
    assert len(answers["What colour is this 3?"]) == 10
    assert all(len(episode.shots) == 2 for episode in data.test_queries())
    assert {
        image.name.split("_")[0]
        for episode in data.test_queries()
        for shot in episode.shots
        for image in map(Path, shot.images)
    } == {"train"}  # ICL shots come from the train split


def test_vqa_prompts_follow_the_reference_format(tmp_path):
    vizwiz = VizWiz(str(write_vizwiz(tmp_path / "vizwiz")), test_shots=2, **small())
    episode = vizwiz.test_queries()[0]
    first, second = episode.shots
    assert vizwiz.template.render(episode, "<image>") == (
        f"{VIZWIZ_INSTRUCTION}<image>{first.text} Answer: {first.answer}\n<image>{second.text} Answer: "
        f"{second.answer}\n<image>{episode.query.text} Answer:"
    )
    okvqa = OKVQA(str(write_okvqa(tmp_path / "okvqa")), **small())
    episode = okvqa.test_queries()[0]
    assert okvqa.template.render(episode, "<image>") == f"<image>{episode.query.text} Answer:"


def test_queries_are_never_demonstrations_unless_overlap_is_configured(tmp_path):
    root = write_vizwiz(tmp_path, train=10)
    data = VizWiz(str(root), train_size=4, support_size=10, test_shots=2)
    demonstrations = images_of(data.support_episodes()) | {
        Path(image) for episode in data.test_queries() for shot in episode.shots for image in shot.images
    }
    assert not query_images(data.train_queries()) & demonstrations
    # 10 train records, 6 of them REINFORCE queries: a 4-shot support episode needs 5 more
    with pytest.raises(DataError, match="support episodes need 5 distinct records besides the queries but only 4"):
        VizWiz(str(root), train_size=6, support_size=1).setup()
    overlapping = VizWiz(str(root), train_size=6, support_size=10, overlap=True)
    assert query_images(overlapping.train_queries()) & images_of(overlapping.support_episodes())


def test_episodes_are_seeded_and_roles_do_not_disturb_each_other(tmp_path):
    root = str(write_vizwiz(tmp_path))
    first, again, other = (VizWiz(root, seed=seed, test_shots=1, **small()) for seed in (0, 0, 1))
    for role in ("support", "train", "test"):
        assert first.episodes(role) == again.episodes(role)
    assert first.support_episodes() != other.support_episodes()
    bigger = VizWiz(root, seed=0, test_shots=1, **small(support_size=5))
    assert bigger.support_episodes()[:3] == first.support_episodes()
    assert bigger.train_queries() == first.train_queries() and bigger.test_queries() == first.test_queries()


def test_images_stay_paths_until_a_prompt_needs_them_and_load_as_rgb(tmp_path):
    root = write_vizwiz(tmp_path)
    Image.new("L", (30, 20), 128).save(root / "val" / "VizWiz_val_00000000.jpg")
    data = VizWiz(str(root), **small())
    image = next(
        episode.query.images[0] for episode in data.test_queries() if episode.query.text == "What colour is this 0?"
    )
    assert isinstance(image, Path)
    assert load_image(image).mode == "RGB"


# ---- Flowers-102 and CUB-200 --------------------------------------------------------------------

CLASSIFICATION = {
    # benchmark: (writer, DataModule, kind, is the image file an official test image?)
    "flowers": (write_flowers, Flowers102, "flower", lambda path: (int(path.stem.split("_")[1]) - 1) % 6 >= 4),
    "cub": (write_cub, CUB200, "bird", lambda path: int(path.stem.split("_")[-2]) >= 4),
}


def options(episode: Episode) -> tuple[str, str]:
    first, second = re.search(r"A\.(.*) B\.(.*)\n", episode.query.text).groups()
    return first, second


@pytest.mark.parametrize("benchmark", sorted(CLASSIFICATION))
def test_two_way_episodes_are_labelled_and_train_and_test_classes_never_overlap(tmp_path, benchmark):
    writer, module, _, is_test_image = CLASSIFICATION[benchmark]
    data = module(str(writer(tmp_path)), val_size=4, **small(support_size=20))
    class_of = {
        Path(record.example.images[0]): record.group for record in data.train_split.records + data.test_split.records
    }
    roles = {role: data.episodes(role) for role in ("support", "train", "val", "test")}
    seen = {role: {name for episode in episodes for name in options(episode)} for role, episodes in roles.items()}
    train_side = seen["support"] | seen["train"] | seen["val"]
    assert len(train_side) >= 2 and len(seen["test"]) >= 2 and not train_side & seen["test"]
    assert not images_of(roles["support"] + roles["train"] + roles["val"]) & images_of(roles["test"])
    for role, episodes in roles.items():
        for episode in episodes:
            pair = options(episode)
            assert [shot.answer for shot in episode.shots] == ["A", "B"] * (len(episode.shots) // 2)
            for example in (*episode.shots, episode.query):
                assert pair["AB".index(example.answer)] == class_of[Path(example.images[0])]
            assert episode.query.images[0] not in {image for shot in episode.shots for image in shot.images}
            if role in ("val", "test"):  # queries from official test images, demonstrations from train images
                assert is_test_image(Path(episode.query.images[0]))
                assert not any(is_test_image(Path(shot.images[0])) for shot in episode.shots)
    assert set(Counter(episode.query.answer for episode in roles["test"])) == {"A", "B"}
    assert len(roles["test"]) == 8  # every official test image of the 4 test classes, once


@pytest.mark.parametrize("benchmark", sorted(CLASSIFICATION))
def test_two_way_prompt_is_the_reference_one(tmp_path, benchmark):
    writer, module, kind, _ = CLASSIFICATION[benchmark]
    data = module(str(writer(tmp_path)), **small())
    episode = data.support_episodes()[0]
    a, b = options(episode)
    line = TWO_WAY.format(kind=kind, a=a, b=b)
    assert data.template.render(episode, "<image>") == f"{line} A\n{line} B\n{line}"
    assert isinstance(data.metric(), ExactMatch) and data.metric().options == "AB"


def test_class_names_come_from_the_official_labels(tmp_path):
    flowers = Flowers102(str(write_flowers(tmp_path / "flowers")), **small())
    names = {Path(r.example.images[0]).name: r.group for r in flowers.train_split.records + flowers.test_split.records}
    assert names["image_00001.jpg"] == "pink primrose" and names["image_00048.jpg"] == "bird of paradise"
    cub = CUB200(str(write_cub(tmp_path / "cub")), **small())
    assert {record.group for record in cub.train_split.records} == {
        name.split(".", 1)[1].replace("_", " ") for name in BIRDS
    }
    assert "Black footed Albatross" in {record.group for record in cub.test_split.records}


# ---- cross-modal tasks --------------------------------------------------------------------------


def test_cross_modal_episodes_in_text_image_and_mixed_form(tmp_path):
    root = write_cross_modal(tmp_path)
    data = CrossModalTasks(str(root), train_size=6, val_size=6, support_size=6)
    assert data.instructions["country-capital"] == "The capital city of the country:"
    assert isinstance(data.metric(), FirstTokenMatch)
    assert Counter(episode.task for episode in data.train_queries()) == Counter(dict.fromkeys(data.tasks, 1))
    episode = data.support_episodes()[0]
    assert all(shot.text and not shot.images for shot in episode.shots) and len(episode.shots) == 5
    assert episode.query.text == "" and len(episode.query.images) == 1
    expected = "".join(f"Q:{shot.text}\nA:{shot.answer}\n\n" for shot in episode.shots) + "Q:<image>\nA:"
    assert data.template.render(episode, "<image>") == expected
    assert all("/test_" in str(episode.query.images[0]) for episode in data.test_queries())
    mixed = CrossModalTasks(str(root), shot_modality="mixed", train_size=6, val_size=6, support_size=6)
    kinds = {bool(shot.images) for episode in mixed.support_episodes() for shot in episode.shots}
    assert kinds == {True, False}
    with pytest.raises(ValueError, match="unknown cross-modal tasks \\['capital-country'\\]"):
        CrossModalTasks(str(root), tasks=["capital-country"])


def test_text_only_cross_modal_runs_need_no_images(tmp_path):
    root = write_cross_modal(tmp_path, tasks=("food-color",))
    shutil.rmtree(root / "images")
    data = CrossModalTasks(
        str(root),
        tasks=["food-color"],
        shot_modality="text",
        query_modality="text",
        train_size=2,
        val_size=2,
        support_size=2,
    )
    assert all(not episode.images() for episode in data.test_queries() + data.support_episodes())


# ---- bad data -----------------------------------------------------------------------------------


def _drop_field(path: Path, index: int, name: str, key: str | None = None) -> None:
    data = json.loads(path.read_text())
    del (data[key] if key else data)[index][name]
    write_json(path, data)


BAD_DATA = {
    "missing image folder": (
        write_vizwiz,
        lambda root: VizWiz(str(root), **small()),
        lambda root: shutil.rmtree(root / "val"),
        FileNotFoundError,
        r"VizWiz image folder not found: .*val",
    ),
    "missing field": (
        write_vizwiz,
        lambda root: VizWiz(str(root), **small()),
        lambda root: _drop_field(root / "Annotations" / "train.json", 2, "question"),
        DataError,
        r"Annotations/train.json: record 2: field 'question' is missing \(expected a string\)",
    ),
    "corrupt jpeg": (
        write_vizwiz,
        lambda root: VizWiz(str(root), **small()),
        lambda root: corrupt_jpeg(root / "val" / "VizWiz_val_00000001.jpg"),
        DataError,
        r"VizWiz_val_00000001.jpg: cannot read image .*\(named by field 'image' of .*val.json: record 1\)",
    ),
    "missing image": (
        write_vizwiz,
        lambda root: VizWiz(str(root), **small()),
        lambda root: (root / "val" / "VizWiz_val_00000004.jpg").unlink(),
        DataError,
        r"VizWiz_val_00000004.jpg: image file not found \(named by field 'image' of .*val.json: record 4\)",
    ),
    "okvqa annotation without answers": (
        write_okvqa,
        lambda root: OKVQA(str(root), **small()),
        lambda root: _drop_field(root / "mscoco_train2014_annotations.json", 0, "answers", key="annotations"),
        DataError,
        r"mscoco_train2014_annotations.json: annotation 0: field 'answers' is missing",
    ),
    "jsonl line without answer": (
        write_vqa_jsonl,
        lambda root: VQAJsonl(str(root / "train.jsonl"), str(root / "test.jsonl"), **small()),
        lambda root: (root / "train.jsonl").write_text('{"image": "images/train_0.jpg", "question": "q"}\n'),
        DataError,
        r"train.jsonl:1: field 'answer' or 'answers' is missing",
    ),
    "flowers setid without tstid": (
        write_flowers,
        lambda root: Flowers102(str(root), **small()),
        lambda root: savemat(root / "setid.mat", {"trnid": np.array([[1, 2]]), "valid": np.array([[3]])}),
        DataError,
        r"setid.mat: field 'tstid' is missing",
    ),
    "flowers without jpg folder": (
        write_flowers,
        lambda root: Flowers102(str(root), **small()),
        lambda root: shutil.rmtree(root / "jpg"),
        FileNotFoundError,
        r"Flowers-102 image folder not found: .*jpg",
    ),
    "cub without classes.txt": (
        write_cub,
        lambda root: CUB200(str(root), **small()),
        lambda root: (root / "classes.txt").unlink(),
        FileNotFoundError,
        r"CUB-200-2011 file not found: .*classes.txt",
    ),
    "cub corrupt jpeg": (
        write_cub,
        lambda root: CUB200(str(root), test_size=None, **small()),
        lambda root: corrupt_jpeg(root / "images" / BIRDS[0] / "Black_footed_Albatross_0004_1.jpg"),
        DataError,
        r"Black_footed_Albatross_0004_1.jpg: cannot read image .*\(named by image 5 of .*images.txt\)",
    ),
    "cross-modal record without output": (
        write_cross_modal,
        lambda root: CrossModalTasks(str(root), train_size=6, val_size=6, support_size=6),
        lambda root: _drop_field(root / "annotations" / "animal-young_val.json", 0, "output"),
        DataError,
        r"animal-young_val.json: record 0: field 'output' is missing",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_DATA))
def test_bad_data_stops_with_a_message_naming_the_file_and_field(tmp_path, case):
    writer, build, damage, error, message = BAD_DATA[case]
    root = writer(tmp_path)
    damage(root)
    with pytest.raises(error, match=message):
        build(root).setup("fit")


def test_skip_mode_leaves_bad_records_out_and_reports_the_count(tmp_path):
    root = write_vizwiz(tmp_path)
    _drop_field(root / "Annotations" / "train.json", 2, "question")
    corrupt_jpeg(root / "val" / "VizWiz_val_00000001.jpg")
    (root / "val" / "VizWiz_val_00000004.jpg").unlink()
    data = VizWiz(str(root), skip_bad_data=True, **small())
    with pytest.warns(UserWarning, match="skipped 1 bad records .*skipped 2 records with unreadable images"):
        data.setup("fit")
    assert data.skipped == {"bad records": 1, "records with unreadable images": 2}
    assert len(data.test_queries()) == 4
    assert "What colour is this 2?" not in {episode.query.text for episode in data.support_episodes()}


# ---- MTV through the CLI ------------------------------------------------------------------------

CLI_RUNS = {
    # benchmark: (writer, config folder, data arguments given the fixture root)
    "vizwiz": (write_vizwiz, "vizwiz", lambda root: ["--data.init_args.root", str(root)]),
    "okvqa": (write_okvqa, "okvqa", lambda root: ["--data.init_args.root", str(root)]),
    "vizwiz_test_table": (
        write_vizwiz_with_table,
        "vizwiz",
        lambda root: ["--data.init_args.root", str(root), "--data.init_args.test", str(root / "val.parquet")],
    ),
    "okvqa_tables": (
        write_okvqa_tables,
        "okvqa",
        lambda root: [
            "--data.init_args.root=null",
            "--data.init_args.train",
            str(root / "train2014.parquet"),
            "--data.init_args.test",
            str(root / "val2014.parquet"),
        ],
    ),
    "jsonl": (
        write_vqa_jsonl,
        "okvqa",
        lambda root: [
            "--data",
            "lit_tv.data.vqa.VQAJsonl",
            "--data.train",
            str(root / "train.jsonl"),
            "--data.test",
            str(root / "test.jsonl"),
        ],
    ),
    "flowers": (write_flowers_with_episodes, "flowers", lambda root: ["--data.init_args.root", str(root)]),
    "cub": (write_cub_with_episodes, "cub", lambda root: ["--data.init_args.root", str(root)]),
    "cross_modal": (
        write_cross_modal,
        "cross_modal",
        lambda root: [
            "--data.init_args.root",
            str(root),
            "--data.init_args.val_size",
            "6",
            f"--data.init_args.tasks=[{','.join(TASKS)}]",
        ],
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("benchmark", sorted(CLI_RUNS))
def test_mtv_fit_and_test_through_the_cli_on_each_benchmark(zoo_folder, benchmark, workdir, datasets_cache):
    writer, folder, data_args = CLI_RUNS[benchmark]
    root = writer(workdir / "data")
    args = [
        *paper_config_on_zoo(f"{folder}/mtv_llava-1.5-7b.yaml", zoo_folder("llava")),
        "--model.init_args.samples",
        "4",
        "--model.init_args.selection_samples",
        "2",
        "--model.init_args.selection_queries",
        "2",
        "--trainer.accelerator",
        "cpu",
        "--trainer.max_steps",
        "2",
        "--trainer.enable_progress_bar",
        "false",
        "--data.init_args.support_size",
        "4",
        "--data.init_args.train_size",
        "6",
        "--data.init_args.test_size",
        "6",
        *data_args(root),
    ]
    main(["fit", *args])
    run = workdir / "logs" / f"{folder}_mtv_llava-1.5-7b"
    state = torch.load(run / "smoke" / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")["state_dict"]
    assert state["mean_activations"].abs().sum() > 0
    main(["test", *args, "--ckpt_path", str(run / "smoke" / "checkpoints" / "last.ckpt")])
    scalars = logged_scalars(run / "version_1")
    assert 0.0 <= scalars["test/accuracy"][0] <= 1.0
    if benchmark == "cross_modal":  # the fixture is too small for one task alone: all six, scored per task
        assert {f"test/accuracy/{task}" for task in TASKS} <= set(scalars)


def test_an_empty_list_of_seeds_is_refused():
    with pytest.raises(ValueError, match=r"data.init_args.seeds is empty"):
        ShapesDataModule(seeds=[])


def test_seeds_alone_draw_from_each_and_record_no_seed():
    data = ShapesDataModule(seeds=[1, 2])
    assert data.seeds == [1, 2] and data.seed == 1 and data.hparams["seed"] is None
