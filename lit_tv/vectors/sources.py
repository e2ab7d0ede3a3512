"""Where a task vector is read from: a file, a folder holding one (`save_pretrained`'s layout), or a Hugging Face
Hub model repo (``user/name``, optionally ``user/name@revision``), downloaded through `hf_hub_download` into the
hub cache (``HF_HUB_OFFLINE=1`` reads that cache only). An existing local path always wins over a hub id; a string
that is neither is refused naming the option it came from, before any download."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import hf_hub_download
from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, HFValidationError
from huggingface_hub.utils import validate_repo_id

FILENAME = "task_vector.safetensors"  # the file's name in a shared folder and in a hub repo


@dataclass(frozen=True)
class Source:
    """A task vector's local file, and the hub repo and revision it was downloaded from (None: a local path)."""

    path: Path
    repo_id: str | None = None
    revision: str | None = None

    @property
    def label(self) -> str:
        """How messages name it: the path, or ``user/name@revision`` for a hub download."""
        return str(self.path) if self.repo_id is None else f"{self.repo_id}@{self.revision or 'main'}"


def is_hub_id(text: str) -> bool:
    """Whether `text` reads as a hub model id ``user/name``: one slash, valid characters, not a file name."""
    if text.count("/") != 1 or text.endswith(".safetensors") or text.startswith((".", "/", "~")):
        return False
    try:
        validate_repo_id(text)
    except HFValidationError:
        return False
    return True


def resolve_source(source: str | Path, revision: str | None = None, option: str = "source") -> Source:
    """The local file of `source` (see the module doc); `revision` (or ``@revision`` in the id): a hub branch, tag
    or commit. `option` names the argument in errors (``model.init_args.task_vector`` for the CLI)."""
    local = Path(source).expanduser()
    if local.is_dir():
        if not (local / FILENAME).is_file():
            raise FileNotFoundError(f"{option}: folder {source} holds no {FILENAME} (a shared vector's folder does)")
        return Source(local / FILENAME)
    if local.exists() or isinstance(source, Path):
        if revision is not None:
            raise ValueError(f"{option}: {source} is a local file; revision={revision!r} applies to hub ids only")
        return Source(local)
    repo_id, _, pinned = str(source).partition("@")
    if pinned and revision is not None and pinned != revision:
        raise ValueError(f"{option}: {source} pins revision {pinned!r}, and revision={revision!r} was given too")
    if not is_hub_id(repo_id):
        raise FileNotFoundError(
            f"{option}: {source!r} is neither an existing file, a folder holding {FILENAME}, nor a hub id "
            "'user/name' (or 'user/name@revision')"
        )
    revision = pinned or revision
    try:
        path = hf_hub_download(repo_id, FILENAME, revision=revision)
    except (EntryNotFoundError, HfHubHTTPError) as error:  # also the offline cache's miss (LocalEntryNotFoundError)
        raise FileNotFoundError(
            f"{option}: no {FILENAME} found for hub repo {repo_id} at revision {revision or 'main'} "
            f"({type(error).__name__}: {str(error).splitlines()[0]})"
        ) from error
    return Source(Path(path), repo_id, revision)
