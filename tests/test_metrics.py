"""Metrics against hand-computed scores: official VQA accuracy, option-letter exact match, prefix match.

VQA accuracy by hand: with k of the ten (normalised) human answers equal to the (normalised)
prediction, the ten leave-one-out subsets hold k - 1 matches (k of them) or k matches (10 - k), so
the score is [k * min(1, (k-1)/3) + (10-k) * min(1, k/3)] / 10: k = 0, 1, 2, 3, >=4 give 0, 0.3, 0.6, 0.9, 1.
"""

from __future__ import annotations

import pytest
import torch

from lit_tv.metrics import ExactMatch, FirstTokenMatch, VQAAccuracy, normalize_vqa_answer


def ten(*groups: tuple[str, int]) -> tuple[str, ...]:
    """Ten human answers from (answer, count) groups."""
    answers = tuple(answer for answer, count in groups for _ in range(count))
    assert len(answers) == 10
    return answers


VQA_CASES = [
    # all ten agreeing
    ("yes", ten(("yes", 10)), 1.0),
    ("Yes.", ten(("yes", 10)), 1.0),  # case and a final period
    ("no", ten(("yes", 10)), 0.0),
    ("yes", ten(("yes", 9), ("no", 1)), 1.0),
    # fewer than three matches, and just enough
    ("red", ten(("red", 1), ("blue", 9)), 0.3),
    ("red", ten(("red", 2), ("blue", 8)), 0.6),
    ("red", ten(("red", 3), ("blue", 7)), 0.9),
    ("red", ten(("red", 4), ("blue", 6)), 1.0),
    # articles
    ("the dog", ten(("dog", 10)), 1.0),
    ("a dog", ten(("dog", 3), ("cat", 7)), 0.9),
    ("an apple", ten(("apple", 2), ("pear", 8)), 0.6),
    ("dog", ten(("the dog", 10)), 0.0),  # the official script leaves agreeing human answers as they are
    # number words to digits (zero to ten only; 'none' counts as 0)
    ("two", ten(("2", 10)), 1.0),
    ("Three", ten(("3", 3), ("4", 7)), 0.9),
    ("none", ten(("0", 10)), 1.0),
    ("zero", ten(("0", 2), ("1", 8)), 0.6),
    ("eleven", ten(("11", 10)), 0.0),
    ("two", ten(("2", 2), ("two", 1), ("3", 7)), 0.6),  # disagreeing human answers: punctuation only, 'two' stays
    # punctuation: deleted next to a space or in '1,000', otherwise a space; periods kept before digits
    ("yes, it is", ten(("yes it is", 10)), 1.0),
    ("black-and-white", ten(("black and white", 10)), 1.0),
    ("e-mail", ten(("email", 10)), 0.0),
    ("1,000", ten(("1000", 10)), 1.0),
    ("3.5", ten(("3.5", 10)), 1.0),
    ("3.5", ten(("35", 10)), 0.0),
    ("(red)", ten(("red", 10)), 1.0),
    ("red!", ten(("red", 4), ("blue", 6)), 1.0),
    ("a.m.", ten(("am", 10)), 1.0),
    ("red/blue", ten(("red blue", 10)), 1.0),
    # contractions: spellings without the apostrophe get it back (the table has no 'im', only 'Im')
    ("dont", ten(("don't", 10)), 1.0),
    ("don't", ten(("dont", 10)), 0.0),  # the prediction's 'don't' stays, the humans' 'dont' is left alone
    ("isnt", ten(("isn't", 2), ("no", 8)), 0.6),
    ("whats", ten(("what's", 10)), 1.0),
    ("I'm", ten(("im", 10)), 0.0),
    # VizWiz's unanswerable questions
    ("unanswerable", ten(("unanswerable", 10)), 1.0),
    ("Unanswerable.", ten(("unanswerable", 7), ("red", 3)), 1.0),
    ("red", ten(("unanswerable", 7), ("red", 3)), 0.9),
    ("unsuitable", ten(("unanswerable", 10)), 0.0),
    # empty answers
    ("", ten(("yes", 10)), 0.0),
    ("", ten(("", 10)), 1.0),
    # whitespace and generations that run on past the answer
    ("  yes \n", ten(("yes", 10)), 1.0),
    ("red\nWhat colour is the car? Answer: blue", ten(("red", 10)), 1.0),
    ("Red  Car", ten(("red car", 10)), 1.0),
    # a single reference (jsonl files with one answer): exact match after normalisation
    ("The Red.", ("red",), 1.0),
    ("blue", ("red",), 0.0),
]


@pytest.mark.parametrize(("prediction", "answers", "expected"), VQA_CASES)
def test_vqa_accuracy_equals_the_hand_computed_official_score(prediction, answers, expected):
    metric = VQAAccuracy()
    metric.update([prediction], [answers])
    assert metric.compute().item() == pytest.approx(expected, abs=1e-6)


# Where the official script and "normalise both sides" differ: unnormalised human answers.
REFERENCE_NORMALISATION_CASES = [
    ("dog", ten(("the dog", 10)), 0.0, 1.0),
    ("two", ten(("2", 2), ("two", 1), ("3", 7)), 0.6, 0.9),
    ("don't", ten(("dont", 10)), 0.0, 1.0),
    ("two", ten(("Two", 10)), 0.0, 1.0),
    ("red", ten(("Red", 5), ("red!", 5)), 0.0, 1.0),  # disagreeing: punctuation goes, case stays
]


@pytest.mark.parametrize(("prediction", "answers", "official", "both"), REFERENCE_NORMALISATION_CASES)
def test_official_scoring_leaves_human_answers_as_the_script_does(prediction, answers, official, both):
    for metric, expected in ((VQAAccuracy(), official), (VQAAccuracy(normalize_references=True), both)):
        metric.update([prediction], [answers])
        assert metric.compute().item() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    ("prediction", "expected"),
    [("yes. The sign says so", 1.0), ("yes\nQuestion: what", 1.0), ("3.5 inches", 0.0), ("no.", 0.0)],
)
def test_answer_cut_keeps_the_text_before_the_first_period_and_newline(prediction, expected):
    cut, uncut = VQAAccuracy(answer_cut=True), VQAAccuracy()
    cut.update([prediction], [ten(("yes", 10))])
    uncut.update([prediction], [ten(("yes", 10))])
    assert cut.compute().item() == expected
    if "\n" not in prediction and expected:
        assert uncut.compute().item() == 0.0  # the cut is what makes it count


def test_vqa_accuracy_averages_over_questions():
    metric = VQAAccuracy()
    metric.update(["red", "two"], [ten(("red", 1), ("blue", 9)), ten(("2", 10))])
    metric.update(["no"], [ten(("yes", 10))])
    assert metric.compute().item() == pytest.approx((0.3 + 1.0 + 0.0) / 3)


@pytest.mark.parametrize(
    ("text", "normalised"),
    [
        ("The Red Car!", "red car"),
        ("yes, it is", "yes it is"),
        ("1,000 dollars.", "1000 dollars"),
        ("a.m.", "am"),
        ("it's (about) three-ish", "it's about 3 ish"),
        ("Two Dogs; one cat", "2 dogs 1 cat"),
        ("shouldnt've", "shouldn't've"),
        ("\tten\n", "10"),
    ],
)
def test_official_normalisation(text, normalised):
    assert normalize_vqa_answer(text) == normalised


@pytest.mark.parametrize(
    ("prediction", "expected"),
    [
        ("A", 1.0),
        ("A.", 1.0),
        ("(a)", 1.0),
        ("A. pink primrose", 1.0),
        ("A\nWhat is", 1.0),
        ("B", 0.0),
        ("", 0.0),
        ("Answer", 0.0),
        ("C", 0.0),
    ],
)
def test_exact_match_scores_option_letters_by_their_leading_letter(prediction, expected):
    metric = ExactMatch(options="AB", option_match="leading_letter")
    metric.update([prediction], [("A",)])
    assert metric.compute().item() == expected


@pytest.mark.parametrize(
    ("prediction", "expected"),
    [
        ("A", 1.0),
        ("a", 1.0),
        ("A.", 1.0),
        (" A \nWhat is", 1.0),
        ("A. pink primrose", 1.0),
        ("(a)", 0.0),
        ("A pink primrose", 0.0),
        ("B", 0.0),
        ("", 0.0),
        ("Answer", 0.0),
    ],
)
def test_exact_match_scores_option_letters_as_the_mtv_reference(prediction, expected):
    """The reference: the text before the first '.' and newline, stripped, equals the letter (any case)."""
    metric = ExactMatch(options="AB")
    metric.update([prediction], [("A",)])
    assert metric.compute().item() == expected


@pytest.mark.parametrize("metric_class", [ExactMatch, VQAAccuracy, FirstTokenMatch])
def test_a_metric_that_scored_nothing_has_no_value_not_zero(metric_class):
    metric = metric_class()
    assert torch.isnan(metric.compute())
    metric.update(["x"], [("y",)])
    assert metric.compute().item() == 0.0


def test_exact_match_without_options_keeps_its_normalised_behaviour():
    metric = ExactMatch()
    metric.update(["The Star.", "moon", "Blue"], [("star",), ("sun", "planet"), ("green", "blue")])
    assert metric.compute().item() == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    ("prediction", "references", "ignore_case", "expected"),
    [
        ("Par", ("Paris",), False, 1.0),  # one generated token: a prefix of the answer
        ("Paris\n\nQ:", ("Paris",), False, 1.0),  # a longer generation starting with it
        (" Paris", ("Paris",), False, 1.0),
        ("paris", ("Paris",), False, 0.0),
        ("paris", ("Paris",), True, 1.0),
        ("Lon", ("Paris",), False, 0.0),
        ("", ("Paris",), False, 0.0),
        ("Rome", ("Paris", "Rome"), False, 1.0),
    ],
)
def test_first_token_match_is_the_reference_prefix_match(prediction, references, ignore_case, expected):
    metric = FirstTokenMatch(ignore_case=ignore_case)
    metric.update([prediction], [references])
    assert metric.compute().item() == expected


@pytest.mark.parametrize("make", [VQAAccuracy, ExactMatch, FirstTokenMatch])
def test_states_are_sums_so_ranks_combine_exactly(make):
    """What DDP's sync does: each rank's sums reduced by addition give the score of all questions."""
    predictions, references = ["yes", "no", "two", "red"], [("yes",) * 10, ("yes",) * 10, ("2",) * 10, ("red",) * 10]
    whole, rank0, rank1 = make(), make(), make()
    whole.update(predictions, references)
    rank0.update(predictions[:1], references[:1])
    rank1.update(predictions[1:], references[1:])
    rank0.merge_state(rank1)
    torch.testing.assert_close(rank0.compute(), whole.compute())


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError, match="2 predictions for 1 references"):
        VQAAccuracy().update(["a", "b"], [("a",)])
