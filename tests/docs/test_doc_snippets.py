"""Every python snippet of the README and docs/ runs as written, from a folder holding what the main job writes."""

from __future__ import annotations

import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
from helpers import REPO, residual_file
from transformers import AutoModelForImageTextToText, PreTrainedModel

from lit_tv.model.loading import BUILTIN_MODELS

ROOT = REPO
PAGES = [ROOT / "README.md", ROOT / "benchmarks" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SNIPPET = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def snippets(page: Path) -> list[str]:
    return SNIPPET.findall(page.read_text())


ALL = [(page, index, code) for page in PAGES for index, code in enumerate(snippets(page))]


def test_the_readme_shows_frozen_vlm_and_apply_task_vector():
    readme = snippets(ROOT / "README.md")
    assert any("FrozenVLM.from_pretrained" in code and "heads.value" in code for code in readme), readme
    assert any("lit_tv.apply_task_vector" in code for code in readme), readme


@cache
def shapes_toy() -> PreTrainedModel:
    """The model the README's vector file is stamped with (its fingerprint is checked when applied)."""
    return AutoModelForImageTextToText.from_pretrained(BUILTIN_MODELS["lit_tv/shapes-toy"])


@pytest.mark.slow
@pytest.mark.parametrize(("page", "index", "code"), ALL, ids=[f"{p.relative_to(ROOT)}:{i}" for p, i, _ in ALL])
def test_the_snippet_runs_as_written(page, index, code, workdir):
    """In a checkout-like folder after `bash scripts/main.sh`: the toy's files, and the cross-modal vectors file."""
    (workdir / "lit_tv").symlink_to(ROOT / "lit_tv")
    vectors = workdir / "logs" / "shapes_cross_modal" / "seed_0" / "task_vectors.safetensors"
    vectors.parent.mkdir(parents=True)
    residual_file(vectors, shapes_toy(), ["colour", "shape", "position"], hidden=128, head_dim=16)
    namespace: dict = {}
    exec(compile(code, f"{page.relative_to(ROOT)} snippet {index}", "exec"), namespace)  # noqa: S102
    if "answers" in namespace and "queries" in namespace:
        assert len(namespace["answers"]) == len(namespace["queries"])


@pytest.mark.slow
def test_the_zoo_command_saves_a_tiny_model(tmp_path):
    """docs/methods.md: `python -m lit_tv.testing.zoo llava /tmp/tiny-llava` saves one to try the CLI."""
    done = subprocess.run(
        [sys.executable, "-m", "lit_tv.testing.zoo", "llava", str(tmp_path / "tiny-llava")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "tiny-llava" / "config.json").is_file() and "tiny-llava" in done.stdout
