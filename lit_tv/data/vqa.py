"""Open-ended VQA benchmarks from their official releases: VizWiz-VQA, OK-VQA, and the common jsonl form.

Support episodes and REINFORCE queries come from the train split, test queries from the official
val split (the split both papers report), all scored by the official VQA accuracy. The prompt is
the MTV reference code's: ``<image>{question} Answer: {answer}`` per example (OK-VQA: ``Answer:{answer}``, no
space), VizWiz with its instruction about unanswerable questions in front. The reference code runs the shots
together without a separator; here each answer ends with a newline, as in its Flowers/CUB prompts, so the
model can tell where an answer stops (VQAAccuracy scores the first line of a generation, or with
``answer_cut`` the reference's cut at the first '.' and newline).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import ClassVar, Literal

from lit_tv.data.datamodules import SplitDataModule
from lit_tv.data.harness_tables import read_table
from lit_tv.data.records import (
    DataError,
    Record,
    Split,
    field,
    parse_json,
    ranked_answers,
    read_json,
    read_json_list,
    require,
)
from lit_tv.episodes import Example
from lit_tv.metrics import VQAAccuracy
from lit_tv.prompts import PromptTemplate

VIZWIZ_INSTRUCTION = (
    "First carefully understand the given examples. \nThen use the given image and answer the "
    "question in the same way as the examples. \nIf the question can not be answered, respond "
    "unanswerable. "
)


def vqa_template(
    instruction: str = "",
    answer_format: str = " {answer}\n",
    target_token: Literal["word_start", "continuation"] = "word_start",
) -> PromptTemplate:
    """The MTV reference's VQA prompt (``<image>{question} Answer:``): the DataModules' and, for a harness's VizWiz or
    OK-VQA task, the lit_tv model's prompt when no vector says otherwise."""
    return PromptTemplate(
        query="{images}{text} Answer:", answer=answer_format, instruction=instruction, target=target_token
    )


class VQADataModule(SplitDataModule):
    """Shared by the VQA loaders: the reference prompt format (with an optional instruction) and VQA accuracy.

    Args:
        instruction: text before the first shot.
        answer_format: how a shot's answer follows its ``Answer:`` (VizWiz ``" {answer}\\n"``, OK-VQA
            ``"{answer}\\n"``: the reference has no space there); the reference's shots run together: ``" {answer}"``
            / ``"{answer}"``, the paper configs'.
        answer_cut: score the text before the first '.' and newline (the MTV reference does so for non-Qwen
            models); off: the first line.
        normalize_references: normalise the human answers fully too (off: as the official script).
        target_token: the answer token REINFORCE and FV's indirect effects score: ``word_start`` (the MTV
            reference: the answer as a word of its own, " yes" not OK-VQA's "yes" glued to ``Answer:``)
            or ``continuation`` (how the shot's answer format continues the prompt).
    """

    benchmark: ClassVar[str] = "VQA"  # the official splits' names begin with it

    def __init__(
        self,
        instruction: str = "",
        answer_format: str = " {answer}\n",
        answer_cut: bool = False,
        normalize_references: bool = False,
        target_token: Literal["word_start", "continuation"] = "word_start",
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.template = vqa_template(instruction, answer_format, target_token)
        self.metric = partial(VQAAccuracy, answer_cut=answer_cut, normalize_references=normalize_references)

    def _split(
        self,
        role: Literal["train", "test"],
        table: str | None,
        table_split: str,
        root: str | None,
        layout: dict[str, str],
        read_official: Callable[[Path], Split],
    ) -> Split:
        """The ``role`` split from its harness-format table, or else from the official layout under ``root``
        (``layout``: the role's official-layout options, the first naming the file the table copies). A table is
        drawn in that file's order, so the same records give the same episodes."""
        if table is None:
            if root is None:
                raise ValueError(
                    f"data.init_args.root is not set: the {role} split is read from the official layout under it "
                    f"(or give data.init_args.{role}: a harness-format table)"
                )
            return read_official(Path(root))
        defaults = inspect.signature(type(self).__init__).parameters
        for option, value in layout.items():
            if value != defaults[option].default:
                raise ValueError(
                    f"data.init_args.{role} ({table}) and data.init_args.{option} ({value}) both given: the {role} "
                    "split comes from a table or from the official layout, not both"
                )
        official = f"{self.benchmark} {Path(next(iter(layout.values()))).name}"
        name = f"{self.benchmark} {table} ({table_split})"
        return read_table(table, table_split, f"data.init_args.{role}", name, official, self.issues)

    @staticmethod
    def _refuse_unread_root(root: str | None, train: str | None, test: str | None) -> None:
        if root is not None and train is not None and test is not None:
            raise ValueError(
                f"data.init_args.root ({root}) is given, but data.init_args.train and data.init_args.test are "
                "tables, so nothing is read from it; set root to null"
            )


class VizWiz(VQADataModule):
    """VizWiz-VQA: ``Annotations/{train,val}.json`` (lists of ``{image, question, answers: [{answer,
    answer_confidence}], answer_type, answerable}``) and the ``train/`` and ``val/`` image folders.

    Paths are relative to ``root``. The test split has no public answers; the val split is the test set.
    ``train`` / ``test``: that split from a harness-format table instead (`lit_tv.data.harness_tables`: a
    ``.parquet`` file, a folder or a Hub id such as ``lmms-lab/VizWiz-VQA``), its split ``train_table_split`` /
    ``test_table_split``; not together with that split's official-layout options.
    """

    benchmark = "VizWiz"

    def __init__(
        self,
        root: str | None = None,
        train_annotations: str = "Annotations/train.json",
        test_annotations: str = "Annotations/val.json",
        train_images: str = "train",
        test_images: str = "val",
        instruction: str = VIZWIZ_INSTRUCTION,
        train: str | None = None,
        test: str | None = None,
        train_table_split: str = "train",
        test_table_split: str = "val",
        **kwargs,
    ) -> None:
        super().__init__(instruction=instruction, **kwargs)
        self._refuse_unread_root(root, train, test)
        self.train_split = self._split(
            "train",
            train,
            train_table_split,
            root,
            {"train_annotations": train_annotations, "train_images": train_images},
            lambda base: self._read(base / train_annotations, require(base / train_images, "VizWiz image folder")),
        )
        self.test_split = self._split(
            "test",
            test,
            test_table_split,
            root,
            {"test_annotations": test_annotations, "test_images": test_images},
            lambda base: self._read(base / test_annotations, require(base / test_images, "VizWiz image folder")),
        )

    def _read(self, path: Path, images: Path) -> Split:
        records = []
        raw_records = read_json_list(path, "VizWiz annotation file", "{image, question, answers} records")
        for index, raw in enumerate(raw_records):
            where = f"{path}: record {index}"
            with self.issues.guard():
                example = Example(
                    field(raw, "question", str, where),
                    (images / field(raw, "image", str, where),),
                    ranked_answers(field(raw, "answers", list, where), where),
                )
                records.append(Record(example, f"field 'image' of {where}"))
        return Split(f"{self.benchmark} {path.name}", records)


class OKVQA(VQADataModule):
    """OK-VQA: ``OpenEnded_mscoco_{split}_questions.json`` (``{questions: [{image_id, question, question_id}]}``),
    ``mscoco_{split}_annotations.json`` (``{annotations: [{question_id, answers: [{answer, ...}]}]}``) and
    the COCO image folders, whose names give the file names (``train2014/COCO_train2014_<id:012>.jpg``).

    ``train`` / ``test``: that split from a harness-format table instead (`lit_tv.data.harness_tables`: a
    ``.parquet`` file, a folder or a Hub id such as ``lmms-lab/OK-VQA``), its split ``train_table_split`` /
    ``test_table_split``; not together with that split's official-layout options.
    """

    benchmark = "OK-VQA"

    def __init__(
        self,
        root: str | None = None,
        train_questions: str = "OpenEnded_mscoco_train2014_questions.json",
        train_annotations: str = "mscoco_train2014_annotations.json",
        train_images: str = "train2014",
        test_questions: str = "OpenEnded_mscoco_val2014_questions.json",
        test_annotations: str = "mscoco_val2014_annotations.json",
        test_images: str = "val2014",
        answer_format: str = "{answer}\n",
        train: str | None = None,
        test: str | None = None,
        train_table_split: str = "train2014",
        test_table_split: str = "val2014",
        **kwargs,
    ) -> None:
        super().__init__(answer_format=answer_format, **kwargs)
        self._refuse_unread_root(root, train, test)
        self.train_split = self._split(
            "train",
            train,
            train_table_split,
            root,
            {"train_questions": train_questions, "train_annotations": train_annotations, "train_images": train_images},
            lambda base: self._read(base / train_questions, base / train_annotations, base / train_images),
        )
        self.test_split = self._split(
            "test",
            test,
            test_table_split,
            root,
            {"test_questions": test_questions, "test_annotations": test_annotations, "test_images": test_images},
            lambda base: self._read(base / test_questions, base / test_annotations, base / test_images),
        )

    def _read(self, questions_path: Path, annotations_path: Path, images: Path) -> Split:
        require(images, "COCO image folder")
        answers: dict[int, tuple[str, ...]] = {}
        annotations = field(
            read_json(annotations_path, "OK-VQA annotation file"), "annotations", list, str(annotations_path)
        )
        for index, raw in enumerate(annotations):
            where = f"{annotations_path}: annotation {index}"
            with self.issues.guard():
                question_id = field(raw, "question_id", int, where)
                answers[question_id] = ranked_answers(field(raw, "answers", list, where), where)
        records = []
        questions = field(read_json(questions_path, "OK-VQA question file"), "questions", list, str(questions_path))
        for index, raw in enumerate(questions):
            where = f"{questions_path}: question {index}"
            with self.issues.guard():
                question_id = field(raw, "question_id", int, where)
                if question_id not in answers:
                    raise DataError(f"{where}: question_id {question_id} has no answers in {annotations_path}")
                image = images / f"COCO_{images.name}_{field(raw, 'image_id', int, where):012d}.jpg"
                example = Example(field(raw, "question", str, where), (image,), answers[question_id])
                records.append(Record(example, f"field 'image_id' of {where}"))
        return Split(f"{self.benchmark} {questions_path.name}", records)


class VQAJsonl(VQADataModule):
    """The jsonl form of many VQA codebases: one ``{image, question, answer | answers, question_id}`` per line.

    ``answers`` may list strings or official ``{"answer": ...}`` objects; a single ``answer`` is scored by
    exact match (VQA accuracy needs the ten human answers). Image paths are relative to ``image_root``
    (default: each file's folder).
    """

    def __init__(self, train: str, test: str, image_root: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.train_split = self._read(Path(train), image_root)
        self.test_split = self._read(Path(test), image_root)

    def _read(self, path: Path, image_root: str | None) -> Split:
        images = Path(image_root) if image_root is not None else path.parent
        records = []
        for number, line in enumerate(require(path, "VQA jsonl file").read_text().splitlines(), start=1):
            where = f"{path}:{number}"
            if not line.strip():
                continue
            with self.issues.guard():
                raw = parse_json(line, where)
                if isinstance(raw, dict) and "answers" in raw:
                    answers = ranked_answers(field(raw, "answers", list, where), where)
                elif isinstance(raw, dict) and "answer" in raw:
                    answers = (field(raw, "answer", str, where),)
                else:
                    raise DataError(f"{where}: field 'answer' or 'answers' is missing")
                example = Example(
                    field(raw, "question", str, where), (images / field(raw, "image", str, where),), answers
                )
                records.append(Record(example, f"field 'image' of {where}"))
        return Split(f"{self.benchmark} {path.name}", records)
