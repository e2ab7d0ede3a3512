"""Sharing a task vector: the scores a test run writes, the model card built from them, the folder, the push (its
network calls replaced), and loading back from a folder or a hub id out of a prefilled hub cache (offline)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import COMMIT, MTV_YAML, REPO, TINY_MTV, hub_cache, logged_scalars, mtv_vector_file
from huggingface_hub import HfApi, constants

from lit_tv.cli.command import main
from lit_tv.spread import format_spread
from lit_tv.vectors.card import model_card
from lit_tv.vectors.file import TaskVectorMismatchError
from lit_tv.vectors.fitted_on import FittedOn
from lit_tv.vectors.kinds import HeadVector, load
from lit_tv.vectors.scores import SCORES_FILE, file_sha256, read_scores, write_scores
from lit_tv.vectors.sharing import push_to_hub, save_pretrained
from lit_tv.vectors.sources import FILENAME


def header_and_body(card: str) -> tuple[dict, str]:
    _, header, body = card.split("---\n", 2)
    return yaml.safe_load(header), body


def scores_for(vector: Path, folder: Path, accuracies: dict[int, float], model: str = "lit_tv/shapes-toy") -> Path:
    """Scores files as one-seed test runs of `vector` write them, one per data seed given (returns the last)."""
    for seed, accuracy in accuracies.items():
        path = folder / f"version_{seed}" / SCORES_FILE
        keys = {"all": accuracy, "colour": accuracy}
        write_scores(path, {vector: None}, accuracy=keys, queries=dict.fromkeys(keys, 6), seeds=[seed],
                     method="mtv", model=model, tasks=["colour"], config=None)  # fmt: skip
    return path


@pytest.fixture
def offline_cache(tmp_path, monkeypatch) -> Path:
    """An empty hub cache, read offline: any download attempt fails instead of reaching the network."""
    cache = tmp_path / "hub"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


@pytest.fixture(scope="module")
def scored_run(tmp_path_factory) -> Path:
    """A real short MTV fit, then three `lit-tv test` runs of its vector (data seeds 0, 1, 2): the run folder."""
    folder = tmp_path_factory.mktemp("scored")
    here = Path.cwd()
    os.chdir(folder)
    try:
        main(["fit", "--config", MTV_YAML, *TINY_MTV])
        vector = "logs/shapes_mtv_colour/smoke/task_vector.safetensors"
        for seed in (0, 1, 2):
            main(["test", "--config", MTV_YAML, *TINY_MTV, f"--model.init_args.task_vector={vector}",
                  f"--data.init_args.seed={seed}"])  # fmt: skip
    finally:
        os.chdir(here)
    return folder


@pytest.mark.slow
def test_a_test_run_of_a_vector_writes_the_scores_it_logged(scored_run):
    vector = scored_run / "logs" / "shapes_mtv_colour" / "smoke" / "task_vector.safetensors"
    assert not (scored_run / "logs" / "shapes_mtv_colour" / "version_0" / SCORES_FILE).exists()  # the fit scores none
    for version, seed in ((1, 0), (2, 1), (3, 2)):
        folder = scored_run / "logs" / "shapes_mtv_colour" / f"version_{version}"
        scores, logged = read_scores(folder / SCORES_FILE), logged_scalars(folder)
        assert scores["accuracy"] == {
            key: logged[f"test/accuracy{s}"][-1] for key, s in (("all", ""), ("colour", "/colour"))
        }
        assert scores["queries"] == {"all": 6, "colour": 6} and scores["seeds"] == [seed]
        assert scores["vectors"] == [
            {"path": "logs/shapes_mtv_colour/smoke/task_vector.safetensors", "hub": None, "sha256": file_sha256(vector)}
        ]
        assert scores["config"] == f"logs/shapes_mtv_colour/version_{version}/config.yaml"
        assert (scored_run / scores["config"]).is_file() and scores["method"] == "mtv"


@pytest.mark.slow
def test_the_card_of_a_real_export_states_its_heads_prompt_and_score_over_seeds(scored_run, tmp_path):
    vector_path = scored_run / "logs" / "shapes_mtv_colour" / "smoke" / "task_vector.safetensors"
    scores = sorted((scored_run / "logs" / "shapes_mtv_colour").glob(f"version_*/{SCORES_FILE}"))
    folder = save_pretrained(vector_path, tmp_path / "shared", scores, repo_id="user/shapes-mtv-colour")
    assert (folder / FILENAME).read_bytes() == vector_path.read_bytes()
    header, body = header_and_body((folder / "README.md").read_text())
    assert header["library_name"] == "lit_tv" and header["tags"] == ["task-vector", "lit_tv", "mtv"]
    assert "base_model" not in header  # the built-in toy is no hub model: the body names it instead
    vector = load(vector_path)
    assert isinstance(vector, HeadVector)
    assert f"heads: {len(vector.heads)} of 4 layers x 8 heads" in body and "# mtv task vector: colour" in body
    first_layer = int(vector.heads[0, 0])
    heads = [int(head) for layer, head in vector.heads.tolist() if layer == first_layer]
    assert f"layer {first_layer}: {', '.join(map(str, heads))}" in body
    assert '- query: `"{images}{text} ="`' in body and '- image placeholder: `"<image>"`' in body
    assert "- patch policy: `prompt`" in body and "- max_new_tokens: `1`" in body
    accuracies = [read_scores(path)["accuracy"]["all"] for path in scores]
    assert f"Accuracy: **{format_spread(accuracies)}**" in body and "over data seeds 0, 1, 2 (3 test runs)" in body
    assert "fewer than 3" not in body and f"lit_tv version that exported it: {vector.extra['lit_tv_version']}" in body
    assert '"class_path": "lit_tv.methods.mtv.MTV"' in body and 'load_vector("user/shapes-mtv-colour")' in body


def test_a_hub_model_is_the_cards_base_model_and_one_seed_is_said_plainly(tmp_path):
    metadata = {"model": "llava-hf/llava-1.5-7b-hf", "revision": "a1b2c3", "tasks": ["colour"]}
    path = mtv_vector_file(tmp_path, "v.safetensors", metadata=metadata)
    scored = scores_for(path, tmp_path, {4: 0.5}, model="llava-hf/llava-1.5-7b-hf")
    header, body = header_and_body(str(model_card(load(path), {scored: read_scores(scored)})))
    assert header["base_model"] == "llava-hf/llava-1.5-7b-hf" and header["base_model_revision"] == "a1b2c3"
    assert "at revision `a1b2c3`" in body and "0.500 ± 0.000 (0.500–0.500)" in body
    assert "Only 1 seed back this number (fewer than 3)" in body


def test_scores_of_another_file_are_refused_naming_them(tmp_path):
    path = mtv_vector_file(tmp_path, "v.safetensors", metadata={"tasks": ["colour"]})
    other = mtv_vector_file(tmp_path, "other.safetensors", metadata={"tasks": ["shape"]})
    scores = scores_for(other, tmp_path, {0: 0.9})
    with pytest.raises(ValueError, match=rf"scores file {scores} scored .*other.safetensors.*not task vector {path}"):
        save_pretrained(path, tmp_path / "shared", [scores])
    assert not (tmp_path / "shared").exists()  # checked before anything is written
    with pytest.raises(ValueError, match=r"lacks field\(s\) \['accuracy'"):
        (tmp_path / "bad.json").write_text("{}")
        save_pretrained(path, tmp_path / "shared", [tmp_path / "bad.json"])


def test_an_existing_folder_is_replaced_only_with_overwrite_and_loads_back(tmp_path):
    path = mtv_vector_file(tmp_path, "v.safetensors", metadata={"tasks": ["colour"]})
    folder = save_pretrained(path, tmp_path / "shared", [scores_for(path, tmp_path, {0: 0.9})])
    (folder / "notes.txt").write_text("the user's own")
    with pytest.raises(FileExistsError, match=r"folder .*shared already exists: pass overwrite \(--overwrite\)"):
        save_pretrained(path, folder)
    save_pretrained(path, folder, overwrite=True)
    assert "No test score was given" in (folder / "README.md").read_text()
    assert (folder / "notes.txt").read_text() == "the user's own"
    loaded = load(folder)
    assert loaded.path == folder / FILENAME and loaded.hub is None and loaded.tasks == ["colour"]


def test_a_hub_id_loads_from_the_cache_at_its_revision_and_messages_name_it(tmp_path, offline_cache):
    colour = mtv_vector_file(tmp_path, "colour.safetensors", metadata={"tasks": ["colour"]})
    shape = mtv_vector_file(tmp_path, "shape.safetensors", metadata={"tasks": ["shape"]})
    hub_cache(offline_cache, "user/shapes-mtv", colour)
    hub_cache(offline_cache, "user/shapes-mtv", shape, revision="v2", commit="f" * 40)
    on_main, pinned = load("user/shapes-mtv"), load("user/shapes-mtv@v2")
    assert on_main.tasks == ["colour"] and on_main.hub == "user/shapes-mtv@main"
    assert pinned.tasks == ["shape"] and pinned.hub == "user/shapes-mtv@v2"
    assert load("user/shapes-mtv", revision="v2").tasks == ["shape"] and load(f"user/shapes-mtv@{COMMIT}").tasks == [
        "colour"
    ]
    assert pinned.path is not None and pinned.path.read_bytes() == shape.read_bytes()
    with pytest.raises(TaskVectorMismatchError, match=r"task vector user/shapes-mtv@v2 was made for"):
        pinned.check_tasks(FittedOn(("colour",), None))
    with pytest.raises(FileNotFoundError, match=r"source: no task_vector.* repo user/shapes-mtv at revision v3"):
        load("user/shapes-mtv", revision="v3")
    with pytest.raises(ValueError, match=r"pins revision 'v2', and revision='v3' was given too"):
        load("user/shapes-mtv@v2", revision="v3")


@pytest.mark.parametrize("source", ["logs/missing/task_vector.safetensors", "no such file", "a/b/c"])
def test_a_source_that_is_no_path_nor_hub_id_is_refused_naming_the_option(source, offline_cache):
    with pytest.raises(FileNotFoundError, match=rf"source: '{source}' is neither an existing file, a folder holding"):
        load(source)
    assert not offline_cache.exists()  # refused before any download


def test_the_cli_names_the_task_vector_option_for_a_bad_source(workdir, capsys):
    with pytest.raises(SystemExit, match=r"lit-tv: error: model.init_args.task_vector: 'nowhere/x.safetensors' is"):
        main(["test", "--config", MTV_YAML, "--model.init_args.task_vector=nowhere/x.safetensors"])


def test_push_to_hub_uploads_the_folder_to_the_repo_and_branch(tmp_path, monkeypatch):
    calls: list[tuple[str, dict]] = []

    def record(name):
        def call(self, *args, **kwargs):
            calls.append((name, {"args": args, **kwargs}))
            return type("Commit", (), {"commit_url": "https://huggingface.co/user/x/commit/1"})()

        return call

    for name in ("create_repo", "create_branch", "upload_folder"):
        monkeypatch.setattr(HfApi, name, record(name))
    path = mtv_vector_file(tmp_path, "v.safetensors", metadata={"tasks": ["colour"]})
    folder = save_pretrained(path, tmp_path / "shared")
    assert push_to_hub(folder, "user/x", revision="v1", private=True) == "https://huggingface.co/user/x/commit/1"
    assert [name for name, _ in calls] == ["create_repo", "create_branch", "upload_folder"]
    assert calls[0][1] == {"args": ("user/x",), "private": True, "exist_ok": True}
    assert calls[1][1] == {"args": ("user/x",), "branch": "v1", "exist_ok": True}
    upload = calls[2][1]
    assert upload["repo_id"] == "user/x" and upload["revision"] == "v1" and Path(upload["folder_path"]) == folder
    assert upload["allow_patterns"] == [FILENAME, "README.md"]
    with pytest.raises(FileNotFoundError, match=r"lacks \['task_vector.safetensors', 'README.md'\]"):
        push_to_hub(tmp_path / "empty", "user/x")


@pytest.mark.slow  # a subprocess that imports torch and transformers: half a minute on 2 cores
def test_the_share_command_runs_as_a_subprocess_and_refuses_an_existing_folder(tmp_path):
    path = mtv_vector_file(tmp_path, "v.safetensors", metadata={"tasks": ["colour"]})
    scores = scores_for(path, tmp_path, {0: 0.8, 1: 0.9, 2: 1.0})
    command = [sys.executable, "-m", "lit_tv.cli.share", "--vector", str(path), "--folder", "shared", "--scores",
               *(str(tmp_path / f"version_{seed}" / SCORES_FILE) for seed in (0, 1, 2))]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert scores.is_file() and "0.900 ± 0.100 (0.800–1.000)" in (tmp_path / "shared" / "README.md").read_text()
    again = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 1 and again.stderr.strip().endswith(
        "lit-tv: error: folder shared already exists: pass overwrite (--overwrite) to replace its files"
    ), again.stderr
