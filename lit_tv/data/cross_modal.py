"""The six cross-modal tasks of "Task Vectors are Cross-Modal" (Luo, Darrell, Bar) from their released layout.

``annotations/{task}_{val,test}.json`` each hold a list of ``{input, output, image}`` with image paths
relative to the data root. An example is shown as text (its ``input``) or as its image, so text ICL,
image ICL and mixed episodes come from the same records. Support episodes, REINFORCE and validation
queries are drawn from the val files (the reference takes its vectors from val), test queries from
the test files, and the demonstrations of test episodes (xBase, the Random baseline) from the test file's
other records, as the reference. Prompts are the reference's ``Q:{x}\\nA:{y}\\n\\n``; answers are scored by prefix match
(case-insensitive with ``ignore_case``, an option of the reference).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Literal

from torchmetrics import Metric

from lit_tv.data.datamodules import Role, Sizes, SplitDataModule
from lit_tv.data.pool import Pool, seeded_random
from lit_tv.data.records import Record, Split, field, read_json_list, require
from lit_tv.episodes import Episode, Example, Modality
from lit_tv.metrics import FirstTokenMatch
from lit_tv.prompts import PromptTemplate

# The reference's instructions, one per task, for instruction-based task vectors.
TASK_INSTRUCTIONS = {
    "country-capital": "The capital city of the country:",
    "country-currency": "The last word of the official currency of the country:",
    "animal-latin": "The scientific name of the animal's species in latin:",
    "animal-young": "The term for the baby of the animal:",
    "food-color": "The color of the food:",
    "food-flavor": "The flavor descriptor of the food:",
}
TASKS = tuple(TASK_INSTRUCTIONS)
# The paper's chat ablation: the reference's Q/A format with the chat roles' names in place of Q and A.
ROLES_TEMPLATE = PromptTemplate(query="User:{images}{text}\nAssistant:", answer="{answer}\n\n")


class CrossModalTasks(SplitDataModule):
    """Cross-modal task episodes.

    Args:
        root: the data folder holding ``annotations/`` and the images.
        tasks: any of the six tasks (default all); accuracy is logged per task.
        shot_modality / query_modality: how demonstrations and queries show an example; ``mixed``
            picks text or image per example (seeded).
        ignore_case: the prefix match ignores case (an option of the reference's scoring).
        chat: ``roles``: ``User:`` / ``Assistant:`` in place of ``Q:`` / ``A:`` (the paper's chat ablation);
            ``template``: each example a user / assistant turn of the model's own chat template;
            ``none``: the plain ``Q:``/``A:`` text.
        test_shots_from: where test episodes' demonstrations come from: ``test``, the test file's other
            records (the reference), or ``val``, the val records the vectors are built from.

    Sizes default to the reference's use of the val files: every val record is the query of one support
    episode (the task vector is the mean over all of them) and of one validation query (the layer grid
    search); demonstrations are drawn from the other val records (``overlap``), never the query itself.
    """

    metric: Callable[[], Metric] = FirstTokenMatch
    template = PromptTemplate(query="Q:{images}{text}\nA:", answer="{answer}\n\n")

    def __init__(
        self,
        root: str,
        tasks: Sequence[str] = TASKS,
        shot_modality: Modality = "text",
        query_modality: Modality = "image",
        shots: int = 5,
        support_size: int | None = None,
        train_size: int = 0,
        val_size: int | None = None,
        overlap: bool = True,
        ignore_case: bool = False,
        chat: Literal["none", "roles", "template"] = "none",
        test_shots_from: Literal["test", "val"] = "test",
        **kwargs,
    ) -> None:
        super().__init__(
            shots=shots, support_size=support_size, train_size=train_size, val_size=val_size, overlap=overlap, **kwargs
        )
        self.metric = partial(FirstTokenMatch, ignore_case=ignore_case)
        if chat not in ("none", "roles", "template"):
            raise ValueError(f"data.init_args.chat must be 'none', 'roles' or 'template', got {chat!r}")
        if test_shots_from not in ("test", "val"):
            raise ValueError(f"data.init_args.test_shots_from must be 'test' or 'val', got {test_shots_from!r}")
        if chat == "roles":
            self.template = ROLES_TEMPLATE
        elif chat == "template":
            self.template = replace(self.template, chat=True)
        self.test_shots_from = test_shots_from
        unknown = sorted(set(tasks) - set(TASKS))
        if unknown:
            raise ValueError(f"unknown cross-modal tasks {unknown}, expected some of {list(TASKS)}")
        self.tasks = tuple(tasks)
        self.instructions = {task: TASK_INSTRUCTIONS[task] for task in self.tasks}
        self.modalities = {"shot": shot_modality, "query": query_modality}
        self.check_images = (shot_modality, query_modality) != ("text", "text")  # text-only runs need no images
        self.root = require(Path(root), "cross-modal data folder")
        self.train_split = self._read("val")
        self.test_split = self._read("test")

    def _read(self, split: str) -> Split:
        records = []
        for task in self.tasks:
            path = self.root / "annotations" / f"{task}_{split}.json"
            data = read_json_list(path, f"annotation file of task {task!r}", "{input, output, image} records")
            for index, raw in enumerate(data):
                where = f"{path}: record {index}"
                with self.issues.guard():
                    example = Example(
                        field(raw, "input", str, where),
                        (self.root / field(raw, "image", str, where),),
                        (field(raw, "output", str, where),),
                        task=task,
                    )
                    records.append(Record(example, f"field 'image' of {where}", group=task))
        return Split(f"cross-modal {split} files", records)

    def build_episodes(self, seed: int, sizes: Sizes) -> dict[Role, list[Episode]]:
        """As every split benchmark; with ``test_shots_from: test`` the test episodes' demonstrations are
        drawn from the test file's other records (each test record still the query of one episode)."""
        episodes = super().build_episodes(seed, sizes)
        if self.test_shots_from == "val" or not self.test_shots:
            return episodes
        test = Pool(self.test_split, seed, self.issues, check_images=self.check_images, overlap=True)
        queries = test.take(sizes["test"], "test queries", list(self.tasks))
        rng = seeded_random(seed, "test shots from the test file")
        episodes["test"] = self._answered(queries, test, self.test_shots, rng, "test shots")
        return episodes

    def render(self, record: Record, kind: Literal["shot", "query"], rng: random.Random) -> Example:
        """The record as text (its input, no image) or as an image (no text)."""
        modality = self.modalities[kind]
        if modality == "mixed":
            modality = rng.choice(("text", "image"))
        example = record.example
        if modality == "text":
            return Example(example.text, (), example.answers, example.task)
        return Example("", example.images, example.answers, example.task)
