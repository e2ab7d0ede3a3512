"""Shared fixtures: zoo models saved once per session and loaded through the public path."""

from __future__ import annotations

from pathlib import Path

import pytest
import transformers

from lit_tv.model.vlm import FrozenVLM
from lit_tv.testing.zoo import save_zoo_model

transformers.utils.logging.disable_progress_bar()
transformers.utils.logging.set_verbosity_error()


@pytest.fixture(scope="session")
def zoo_folder(tmp_path_factory):
    """name -> folder of the saved tiny model, built on first use."""
    folders = {}

    def get(name: str):
        if name not in folders:
            folders[name] = save_zoo_model(name, tmp_path_factory.mktemp(name))
        return folders[name]

    return get


@pytest.fixture(scope="session")
def zoo_vlm(zoo_folder):
    """name -> FrozenVLM loaded from its saved folder, like a user's hub id or path."""
    loaded = {}

    def get(name: str) -> FrozenVLM:
        if name not in loaded:
            loaded[name] = FrozenVLM.from_pretrained(zoo_folder(name))
        return loaded[name]

    return get


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The test runs in its own empty folder: runs write `logs/` and their outputs under the working directory."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def datasets_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`datasets` converts the tables it reads into its cache: the test's own, never the user's."""
    import datasets  # here, not at the top: 2 s that only the tests of tables need

    cache = tmp_path / "hf-datasets-cache"
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    return cache
