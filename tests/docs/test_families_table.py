"""docs/families.md, the coverage table over transformers' image-text-to-text model types, is what
lit_tv/testing/coverage.py generates, its ✓ rows are the zoo, each check it names runs on every zoo model, and the
README states its ✓ count."""

from __future__ import annotations

import ast
import re

import pytest
from helpers import REPO, ZOO_NAMES
from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

from lit_tv.testing.chat_templates import CHAT_FORMATS
from lit_tv.testing.coverage import CHAT_CHECK, CHECKS, DOC, NO_CHAT, NOT_YET, REASONS, coverage_page, coverage_rows
from lit_tv.testing.zoo import ZOO

ROW = re.compile(r"^\| `([^`]+)` \| `[^`]+` \| (✓|✗) \| (.*) \|$", re.MULTILINE)
COUNT = re.compile(r"\*\*(\d+) of (\d+) model types are ✓\.\*\*")


def page_rows() -> dict[str, tuple[str, str]]:
    return {model_type: (status, note) for model_type, status, note in ROW.findall(DOC.read_text())}


@pytest.mark.slow  # reads every model type's default config: about 10 s
def test_the_families_page_is_up_to_date():
    assert DOC.read_text() == coverage_page(coverage_rows()), (
        "docs/families.md is stale: run python -m lit_tv.testing.coverage"
    )


def test_the_pages_checked_rows_are_the_zoo_and_its_count_is_theirs():
    rows = page_rows()
    assert set(rows) == set(MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES), "stale: run python -m lit_tv.testing.coverage"
    verified = {model_type for model_type, (status, _) in rows.items() if status == "✓"}
    assert verified == set(ZOO) & set(rows), "stale: run python -m lit_tv.testing.coverage"
    count = COUNT.search(DOC.read_text())
    assert count and (int(count[1]), int(count[2])) == (len(verified), len(rows))
    assert all(note for _, note in rows.values()), "every ✗ has its reason"
    assert all(rows.get(name) == ("✗", REASONS[name]) for name in REASONS), "each written reason is its row's ✗"


def test_the_readme_states_the_pages_count():
    count = COUNT.search(DOC.read_text())
    assert count
    readme = (REPO / "README.md").read_text()
    assert f"{count[1]} of the {count[2]} model types" in readme and "docs/families.md" in readme


def parametrizations(node: str) -> list[str]:
    """The source of the marks on the test `node` names (its own and its module's); fails where it does not exist."""
    path, test = node.split("::")
    tree = ast.parse((REPO / path).read_text())
    functions = {item.name: item for item in tree.body if isinstance(item, ast.FunctionDef)}
    assert test in functions, f"{node} does not exist"
    module_marks = [
        ast.unparse(item.value)
        for item in tree.body
        if isinstance(item, ast.Assign) and "pytestmark" in ast.unparse(item)
    ]
    marks = [ast.unparse(decorator) for decorator in functions[test].decorator_list] + module_marks
    return [mark for mark in marks if "parametrize" in mark]


@pytest.mark.parametrize(("label", "node"), CHECKS)
def test_each_check_the_page_names_runs_on_every_zoo_model(label, node):
    per_model = ("ZOO_NAMES", "zoo_params()")
    assert any(any(name in mark for name in per_model) for mark in parametrizations(node)), (
        f"{label}: {node} is not run per zoo model"
    )


def test_the_chat_check_runs_on_every_family_with_a_chat_template_and_the_others_say_they_have_none():
    # parametrized over its table of the families' turns, which it checks has the families of CHAT_FORMATS
    assert any("TURNS" in mark for mark in parametrizations(CHAT_CHECK[1])), f"{CHAT_CHECK[1]} is not run per family"
    rows = page_rows()
    for name in set(ZOO) & set(rows):
        note = rows[name][1]
        assert note.endswith(f", {CHAT_CHECK[0]}") if name in CHAT_FORMATS else note.endswith(NO_CHAT), name


def test_every_zoo_key_names_its_model_type():
    """The table matches the zoo to model types by key; the layout test checks each model's own type."""
    assert ZOO_NAMES == sorted(ZOO)
    assert set(ZOO) - set(MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES) == {"llama"}  # the text-only model


def test_reasons_come_from_the_default_config_and_the_zoo():
    mapping = {
        "gemma3": "Gemma3ForConditionalGeneration",
        "shieldgemma2": "Gemma3ForConditionalGeneration",
        "florence2": "Florence2ForConditionalGeneration",
        "pi0": "PI0ForConditionalGeneration",
        "dots3_note": "Dots3NoteForConditionalGeneration",
        "aria": "AriaForConditionalGeneration",
        "paligemma": "PaliGemmaForConditionalGeneration",
    }
    notes = {row.model_type: row.note for row in coverage_rows(mapping, zoo={"gemma3": None, "paligemma": None})}
    assert notes["gemma3"] == ", ".join(label for label, _ in (*CHECKS, CHAT_CHECK))
    assert notes["paligemma"] == f"{', '.join(label for label, _ in CHECKS)}; {NO_CHAT}"  # it has no chat template
    assert notes["shieldgemma2"].startswith("same model class as `gemma3` (✓)")
    assert notes["florence2"].startswith("encoder-decoder")
    assert notes["pi0"].startswith("its text config has no attention heads")
    assert notes["dots3_note"].startswith("head count set per layer")
    assert notes["aria"] == NOT_YET
    without = {row.model_type: row.verified for row in coverage_rows(mapping, zoo={})}
    assert not any(without.values())
