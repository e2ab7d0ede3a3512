"""Sharing a task vector: a folder holding the file (byte for byte) and its model card, pushed to a Hugging Face Hub
model repo, from which `lit_tv.load_vector("user/name")` reads it back (`lit_tv.vectors.sources`).

    save_pretrained("logs/shapes_mtv_colour/task_vector.safetensors", "shared/colour",
                    scores=["logs/shapes_mtv_colour/version_1/test_scores.json"])
    push_to_hub("shared/colour", "user/shapes-mtv-colour")
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from huggingface_hub import HfApi

from lit_tv.files import atomic_path, write_atomic
from lit_tv.vectors.card import model_card
from lit_tv.vectors.kinds import load
from lit_tv.vectors.scores import read_scores
from lit_tv.vectors.sources import FILENAME

CARD = "README.md"


def save_pretrained(
    vector_path: str | Path,
    folder: str | Path,
    scores: Sequence[str | Path] = (),
    overwrite: bool = False,
    repo_id: str | None = None,
) -> Path:
    """Write `folder`/task_vector.safetensors (a copy of `vector_path`, checked by loading it first) and
    `folder`/README.md, its model card with the `scores` (test_scores.json files of runs that used this file).
    An existing folder is refused unless `overwrite`; `repo_id`: the hub id the card's usage names."""
    folder = Path(folder)
    vector = load(vector_path, option="vector")
    score_data = {Path(path): read_scores(path) for path in scores}
    card = model_card(vector, score_data, repo_id)  # every check before anything is written
    if folder.exists() and not overwrite:
        raise FileExistsError(f"folder {folder} already exists: pass overwrite (--overwrite) to replace its files")
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"folder {folder} is a file, not a folder")
    assert vector.path is not None  # loaded from a file
    with atomic_path(folder / FILENAME) as temporary:
        shutil.copyfile(vector.path, temporary)
    write_atomic(folder / CARD, str(card))
    return folder


def push_to_hub(
    folder: str | Path, repo_id: str, revision: str | None = None, private: bool = False, token: str | None = None
) -> str:
    """Upload a `save_pretrained` folder to the hub model repo `repo_id` (created if missing) on branch `revision`
    (None: main); returns the commit's URL."""
    folder = Path(folder)
    missing = [name for name in (FILENAME, CARD) if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(f"folder {folder} lacks {missing}: write it with save_pretrained (lit-tv-share) first")
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        if revision is not None:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        commit = api.upload_folder(
            repo_id=repo_id,
            folder_path=folder,
            allow_patterns=[FILENAME, CARD],
            revision=revision,
            commit_message=f"lit_tv task vector ({FILENAME}, model card)",
        )
    except Exception as error:  # the network's errors (no connection, no token, no rights) are of many kinds
        raise OSError(f"pushing {folder} to hub repo {repo_id} failed (the folder is kept): {error}") from error
    return str(commit.commit_url)
