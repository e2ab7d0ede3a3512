"""The score a task vector got, as data: a test run that used (or exported) one writes ``test_scores.json`` into its
logger's run folder, the accuracies it printed with the vector files it scored (by SHA-256), so that a model card
(`lit_tv.vectors.card`) states a number that belongs to the file it is shared with, and nothing else."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from huggingface_hub.utils.sha import sha_fileobj

from lit_tv.files import write_atomic

SCORES_FILE = "test_scores.json"
FIELDS = ("accuracy", "queries", "seeds", "vectors", "method", "model", "tasks")  # what a card reads


def file_sha256(path: str | Path) -> str:
    """The file's SHA-256, as the Hub shows it for an LFS file (the whole file, not its tensors)."""
    with open(path, "rb") as file:
        return sha_fileobj(file).hex()


def write_scores(path: str | Path, vectors: dict[Path, str | None], **scores: Any) -> Path:
    """Write `scores` (the run's accuracies per key, queries per key, seeds, method, model, ...) with each scored
    vector file's path, hub id (None: local) and SHA-256, atomically."""
    scored = [{"path": str(file), "hub": hub, "sha256": file_sha256(file)} for file, hub in vectors.items()]
    return write_atomic(path, json.dumps({**scores, "vectors": scored}, indent=2) + "\n")


def read_scores(path: str | Path) -> dict[str, Any]:
    """A scores file, refused with its path and the missing field when it is not one `write_scores` wrote."""
    try:
        scores = json.loads(Path(path).read_text())
    except FileNotFoundError as error:
        raise FileNotFoundError(f"scores file not found: {path} (a test writes <log folder>/{SCORES_FILE})") from error
    except ValueError as error:
        raise ValueError(f"scores file {path} is not JSON: {error}") from error
    missing = [field for field in FIELDS if not isinstance(scores, dict) or field not in scores]
    if missing:
        raise ValueError(f"scores file {path} lacks field(s) {missing}: not a {SCORES_FILE} that `lit-tv test` wrote")
    return scores


def seed_accuracies(scores: dict[str, Any]) -> dict[int, float]:
    """Accuracy per data seed: each seed's own over several seeds, else the run's overall accuracy for its seed."""
    seeds, accuracy = scores["seeds"], scores["accuracy"]
    if len(seeds) == 1:
        return {} if accuracy.get("all") is None else {seeds[0]: accuracy["all"]}
    return {seed: accuracy[f"seed_{seed}"] for seed in seeds if accuracy.get(f"seed_{seed}") is not None}
