"""torchmetrics metrics for generated answers (sums synced across ranks like any Metric).

Every metric scores one prediction against the reference answers of its question and averages the
scores; only the per-question rule differs: normalised exact match (with option letters for
multiple choice), the official VQA accuracy, or the prefix match of the cross-modal tasks.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from typing import Literal

import torch
from torchmetrics import Metric

_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """Lower-case, drop punctuation and articles, squeeze spaces: 'The Star.' == 'star'."""
    text = text.lower().translate(str.maketrans("", "", string.punctuation))
    return " ".join(_ARTICLES.sub(" ", text).split())


# ---- the official VQA answer normalisation (VQA v2 evaluation script, also used by VizWiz and OK-VQA) ----

_VQA_NUMBERS = {
    "none": "0",
    "zero": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
}
_VQA_ARTICLES = frozenset({"a", "an", "the"})
_VQA_PUNCTUATION = ';/[]"{}()=+\\_-><@`,?!'  # no apostrophe, colon or period: those are handled (or kept) apart
_DIGIT_COMMA_DIGIT = re.compile(r"\d,\d")
# The official pattern writes its look-behind as a look-ahead, so in effect: a period not followed by a digit.
_PERIOD = re.compile(r"\.(?!\d)")
_CONTRACTED = """ain't aren't can't could've couldn't couldn't've didn't doesn't don't hadn't hadn't've hasn't haven't
he'd he'd've he's how'd how'll how's isn't it'd it'd've it'll ma'am mightn't mightn't've might've mustn't must've
needn't not've o'clock oughtn't 'ow's'at shan't she'd've should've shouldn't shouldn't've somebody'd've somebody'll
somebody's someone'd someone'd've someone'll someone's something'd something'd've something'll that's there'd
there'd've there're there's they'd they'd've they'll they're they've 'twas wasn't we'd've we've weren't what'll what're
what's what've when's where'd where's where've who'd who'd've who'll who's who've why'll why're why's won't would've
wouldn't wouldn't've y'all y'all'll y'all'd've you'd you'd've you'll you're you've""".split()


def _spellings_without_apostrophe(word: str) -> list[str]:
    """The official table's keys for a contraction: each spelling with one apostrophe left out."""
    positions = [index for index, char in enumerate(word) if char == "'"]
    return [word[:index] + word[index + 1 :] for index in positions]


_VQA_CONTRACTIONS = {spelling: word for word in _CONTRACTED for spelling in _spellings_without_apostrophe(word)}
_VQA_CONTRACTIONS["somebody'd"] = "somebodyd"  # sic: the official table maps this one backwards


def process_punctuation(text: str) -> str:
    """The official `processPunctuation`: a mark is deleted where it touches a space (or anywhere, once the text
    holds a digit-comma-digit like '1,000'), otherwise replaced by a space: 'yes, it is' -> 'yes it is' but
    'black-and-white' -> 'black and white'. Periods go unless a digit follows ('3.5' stays); the official call
    passes re.UNICODE (32) as the count, so at most 32 periods go."""
    delete_all = _DIGIT_COMMA_DIGIT.search(text) is not None
    out = text
    for mark in _VQA_PUNCTUATION:
        touches_space = f"{mark} " in text or f" {mark}" in text
        out = out.replace(mark, "" if delete_all or touches_space else " ")
    return _PERIOD.sub("", out, count=32)


def process_digit_article(text: str) -> str:
    """The official `processDigitArticle`: lower case, number words -> digits, no articles, contractions restored."""
    words = [_VQA_NUMBERS.get(word, word) for word in text.lower().split()]
    return " ".join(_VQA_CONTRACTIONS.get(word, word) for word in words if word not in _VQA_ARTICLES)


def _strip_whitespace(text: str) -> str:
    return text.replace("\n", " ").replace("\t", " ").strip()


def normalize_vqa_answer(text: str) -> str:
    """What the official script does to a prediction: whitespace, punctuation, then digits/articles/contractions."""
    return process_digit_article(process_punctuation(_strip_whitespace(text)))


def cut_answer(prediction: str) -> str:
    """The MTV reference's answer cut for non-Qwen models: the text before the first newline and the first '.'."""
    return prediction.split("\n", 1)[0].split(".", 1)[0]


def first_line(prediction: str) -> str:
    """The answer part of a generation: prompts end each shot's answer with a newline, so a model that
    continues the pattern writes the next question after it."""
    lines = prediction.strip().splitlines()
    return lines[0] if lines else ""


class AnswerMetric(Metric):
    """Mean of a per-question score in [0, 1]; subclasses say how one prediction is scored."""

    higher_is_better = True
    full_state_update = False
    correct: torch.Tensor  # states, added in __init__
    total: torch.Tensor

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("correct", default=torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0.0), dist_reduce_fx="sum")

    def score(self, prediction: str, references: Sequence[str]) -> float:
        raise NotImplementedError

    def update(self, predictions: list[str], references: list[tuple[str, ...]]) -> None:
        if len(predictions) != len(references):
            raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
        for prediction, answers in zip(predictions, references, strict=True):
            self.correct += self.score(prediction, answers)
        self.total += len(predictions)

    def compute(self) -> torch.Tensor:
        """The mean score; NaN when nothing was scored (a task that got no query has no accuracy, not 0)."""
        return self.correct / self.total if self.total > 0 else torch.full_like(self.correct, float("nan"))


_OPTION_LETTER = re.compile(r"\s*\(?([A-Za-z])(?![A-Za-z])")


def option_letter(prediction: str) -> str:
    """The option a prediction starts with, upper-cased: 'B', 'b.', '(B) rose' -> 'B'; 'Bird' -> ''."""
    match = _OPTION_LETTER.match(prediction)
    return match.group(1).upper() if match else ""


class ExactMatch(AnswerMetric):
    """Fraction of predictions equal to any reference answer after normalisation.

    With ``options`` (e.g. ``"AB"``) the references are option letters (plain normalisation would drop 'A'
    as an article and let an empty answer match it). ``option_match: exact`` is the MTV reference's rule:
    the text before the first '.' and newline, stripped, must be the letter (any case); ``leading_letter``
    counts a prediction by the letter it starts with ('(B) rose' -> B).
    """

    def __init__(self, options: str = "", option_match: Literal["exact", "leading_letter"] = "exact", **kwargs) -> None:
        super().__init__(**kwargs)
        if option_match not in ("exact", "leading_letter"):
            raise ValueError(f"option_match must be 'exact' or 'leading_letter', got {option_match!r}")
        self.options = options.upper()
        self.option_match = option_match

    def score(self, prediction: str, references: Sequence[str]) -> float:
        if self.options:
            letter = (
                option_letter(prediction)
                if self.option_match == "leading_letter"
                else cut_answer(prediction).strip().upper()
            )
            return float(letter in self.options and letter in {reference.strip().upper() for reference in references})
        return float(normalize_answer(prediction) in {normalize_answer(reference) for reference in references})


class VQAAccuracy(AnswerMetric):
    """Official VQA accuracy (GT-Vision-Lab vqaEval.py): min(1, matches / 3) averaged over the leave-one-out
    subsets of the human answers.

    As the official script: the prediction always gets the full normalisation (`normalize_vqa_answer`); the
    human answers get only their whitespace stripped and, when they disagree, `process_punctuation` (the
    released annotations are normalised already). ``normalize_references`` gives them the full normalisation
    too (then 'Two' also matches ten '2's in unnormalised jsonl data). The prediction is its first line (see
    `first_line`), or with ``answer_cut`` the MTV reference's cut for non-Qwen models (`cut_answer`). A
    question with a single reference (some jsonl files) is scored by exact match, since leaving its one answer
    out would leave nothing to match.
    """

    def __init__(self, normalize_references: bool = False, answer_cut: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.normalize_references = normalize_references
        self.answer_cut = answer_cut

    def _references(self, references: Sequence[str]) -> list[str]:
        if self.normalize_references:
            return [normalize_vqa_answer(reference) for reference in references]
        stripped = [_strip_whitespace(reference) for reference in references]
        return [process_punctuation(reference) for reference in stripped] if len(set(stripped)) > 1 else stripped

    def score(self, prediction: str, references: Sequence[str]) -> float:
        if not references:
            return 0.0
        answer = normalize_vqa_answer(cut_answer(prediction) if self.answer_cut else first_line(prediction))
        matches = [reference == answer for reference in self._references(references)]
        if len(matches) == 1:
            return float(matches[0])
        total = sum(matches)
        return sum(min(1.0, (total - own) / 3) for own in matches) / len(matches)


class FirstTokenMatch(AnswerMetric):
    """The cross-modal tasks' prefix match: prediction and reference, stripped and non-empty, one a prefix of
    the other. With one generated token 'Par' counts for 'Paris'; a longer generation 'Paris\\n\\nQ:' does too."""

    def __init__(self, ignore_case: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.ignore_case = ignore_case

    def score(self, prediction: str, references: Sequence[str]) -> float:
        def clean(text: str) -> str:
            return text.strip().lower() if self.ignore_case else text.strip()

        predicted = clean(prediction)
        return float(
            bool(predicted)
            and any(
                reference and (predicted.startswith(reference) or reference.startswith(predicted))
                for reference in map(clean, references)
            )
        )
