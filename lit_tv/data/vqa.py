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

from collections import Counter
from functools import partial
from pathlib import Path
from typing import Literal

from lit_tv.data.datamodules import SplitDataModule
from lit_tv.data.records import DataError, Record, Split, field, parse_json, read_json, read_json_list, require
from lit_tv.episodes import Example
from lit_tv.metrics import VQAAccuracy
from lit_tv.prompts import PromptTemplate

VIZWIZ_INSTRUCTION = (
    "First carefully understand the given examples. \nThen use the given image and answer the "
    "question in the same way as the examples. \nIf the question can not be answered, respond "
    "unanswerable. "
)


def _answers(raw: list, where: str) -> tuple[str, ...]:
    """A non-empty list of answers, each a string or an official ``{"answer": ...}`` object, the most common one
    first (ties: the first seen): it is what demonstrations show and what the REINFORCE loss scores; the order
    does not change VQA accuracy."""
    if not raw:
        raise DataError(f"{where}: field 'answers' is empty (expected the human answers)")
    answers = [
        item if isinstance(item, str) else field(item, "answer", str, f"{where}, answers[{rank}]")
        for rank, item in enumerate(raw)
    ]
    top = Counter(answers).most_common(1)[0][0]
    answers.remove(top)
    return (top, *answers)


def vqa_template(
    instruction: str = "", answer_format: str = " {answer}\n", target_token: Literal["word_start", "continuation"] = "word_start"
) -> PromptTemplate:
    """The MTV reference's VQA prompt (``<image>{question} Answer:``): the DataModules' and, for a harness's VizWiz or
    OK-VQA task, the lit_tv model's prompt when no vector says otherwise."""
    return PromptTemplate(query="{images}{text} Answer:", answer=answer_format, instruction=instruction, target=target_token)


class VQADataModule(SplitDataModule):
    """Shared by the VQA loaders: the reference prompt format (with an optional instruction) and VQA accuracy.

    Args:
        instruction: text before the first shot.
        answer_format: how a shot's answer follows its ``Answer:`` (VizWiz ``" {answer}\\n"``, OK-VQA
            ``"{answer}\\n"``: the reference has no space there).
        answer_cut: score the text before the first '.' and newline (the MTV reference does so for non-Qwen
            models); off: the first line.
        normalize_references: normalise the human answers fully too (off: as the official script).
        target_token: the answer token REINFORCE and FV's indirect effects score: ``word_start`` (the MTV
            reference: the answer as a word of its own, " yes" not OK-VQA's "yes" glued to ``Answer:``)
            or ``continuation`` (how the shot's answer format continues the prompt).
    """

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


class VizWiz(VQADataModule):
    """VizWiz-VQA: ``Annotations/{train,val}.json`` (lists of ``{image, question, answers: [{answer,
    answer_confidence}], answer_type, answerable}``) and the ``train/`` and ``val/`` image folders.

    Paths are relative to ``root``. The test split has no public answers; the val split is the test set.
    """

    def __init__(
        self,
        root: str,
        train_annotations: str = "Annotations/train.json",
        test_annotations: str = "Annotations/val.json",
        train_images: str = "train",
        test_images: str = "val",
        instruction: str = VIZWIZ_INSTRUCTION,
        **kwargs,
    ) -> None:
        super().__init__(instruction=instruction, **kwargs)
        base = Path(root)
        self.train_split = self._read(base / train_annotations, require(base / train_images, "VizWiz image folder"))
        self.test_split = self._read(base / test_annotations, require(base / test_images, "VizWiz image folder"))

    def _read(self, path: Path, images: Path) -> Split:
        records = []
        raw_records = read_json_list(path, "VizWiz annotation file", "{image, question, answers} records")
        for index, raw in enumerate(raw_records):
            where = f"{path}: record {index}"
            with self.issues.guard():
                example = Example(
                    field(raw, "question", str, where),
                    (images / field(raw, "image", str, where),),
                    _answers(field(raw, "answers", list, where), where),
                )
                records.append(Record(example, f"field 'image' of {where}"))
        return Split(f"VizWiz {path.name}", records)


class OKVQA(VQADataModule):
    """OK-VQA: ``OpenEnded_mscoco_{split}_questions.json`` (``{questions: [{image_id, question, question_id}]}``),
    ``mscoco_{split}_annotations.json`` (``{annotations: [{question_id, answers: [{answer, ...}]}]}``) and
    the COCO image folders, whose names give the file names (``train2014/COCO_train2014_<id:012>.jpg``).
    """

    def __init__(
        self,
        root: str,
        train_questions: str = "OpenEnded_mscoco_train2014_questions.json",
        train_annotations: str = "mscoco_train2014_annotations.json",
        train_images: str = "train2014",
        test_questions: str = "OpenEnded_mscoco_val2014_questions.json",
        test_annotations: str = "mscoco_val2014_annotations.json",
        test_images: str = "val2014",
        answer_format: str = "{answer}\n",
        **kwargs,
    ) -> None:
        super().__init__(answer_format=answer_format, **kwargs)
        base = Path(root)
        self.train_split = self._read(base / train_questions, base / train_annotations, base / train_images)
        self.test_split = self._read(base / test_questions, base / test_annotations, base / test_images)

    def _read(self, questions_path: Path, annotations_path: Path, images: Path) -> Split:
        require(images, "COCO image folder")
        answers: dict[int, tuple[str, ...]] = {}
        annotations = field(
            read_json(annotations_path, "OK-VQA annotation file"), "annotations", list, str(annotations_path)
        )
        for index, raw in enumerate(annotations):
            where = f"{annotations_path}: annotation {index}"
            with self.issues.guard():
                answers[field(raw, "question_id", int, where)] = _answers(field(raw, "answers", list, where), where)
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
        return Split(f"OK-VQA {questions_path.name}", records)


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
                    answers = _answers(field(raw, "answers", list, where), where)
                elif isinstance(raw, dict) and "answer" in raw:
                    answers = (field(raw, "answer", str, where),)
                else:
                    raise DataError(f"{where}: field 'answer' or 'answers' is missing")
                example = Example(
                    field(raw, "question", str, where), (images / field(raw, "image", str, where),), answers
                )
                records.append(Record(example, f"field 'image' of {where}"))
        return Split(f"VQA {path.name}", records)
