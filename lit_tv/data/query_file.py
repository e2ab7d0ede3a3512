"""Questions from a jsonl file, one `{"images": [...], "question": ...}` per line, for `lit-tv predict`."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from torch.utils.data import DataLoader

from lit_tv.data.loaders import by_length
from lit_tv.data.records import DataError, field, image_problem, parse_json
from lit_tv.episodes import Episode, Example
from lit_tv.options import require_at_least
from lit_tv.prompts import PromptTemplate


def read_queries(path: Path) -> list[Episode]:
    """Zero-shot episodes; image paths are relative to the file's folder. Errors name file, line and field."""
    if not path.is_file():
        raise FileNotFoundError(f"query file not found: {path}")
    episodes = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        record = parse_json(line, f"{path}:{number}")
        question = field(record, "question", str, f"{path}:{number}")
        images = record.get("images", [])
        if not isinstance(images, list) or not all(isinstance(image, str) for image in images):
            raise ValueError(f"{path}:{number}: field 'images' must be a list of paths")
        for image in images:
            problem = image_problem(path.parent / image)
            if problem:
                raise DataError(f"{path}:{number}: {problem}: {path.parent / image}")
        episodes.append(Episode(query=Example(question, tuple(path.parent / image for image in images))))
    if not episodes:
        raise ValueError(f"query file {path} has no questions (expected one {{images, question}} object per line)")
    return episodes


class QueryFile(L.LightningDataModule):
    """Predict-only data: a jsonl of questions answered with the template the model expects."""

    def __init__(self, path: str, template: PromptTemplate | None = None, batch_size: int = 8) -> None:
        super().__init__()
        self.path = Path(path)
        self.template = template or PromptTemplate()
        require_at_least("data.init_args.batch_size", batch_size, 1)
        self.batch_size = batch_size
        self.episodes = read_queries(self.path)  # checked now, before any model loads

    def transfer_batch_to_device(self, batch: list[Episode], device, dataloader_idx: int) -> list[Episode]:
        """Episodes stay as they are: the model's `build_inputs` moves the tensors it makes."""
        return batch

    def predict_dataloader(self) -> DataLoader[list[Episode]]:
        # a list is a map-style dataset (torch's stubs type the argument as Dataset)
        # batches of similar prompt lengths pad little; the answers file restores the file's order (AnswersWriter)
        return DataLoader(
            self.episodes,  # type: ignore[arg-type]
            batch_size=self.batch_size,
            sampler=by_length(self.episodes),
            collate_fn=list,
        )
