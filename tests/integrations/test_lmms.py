"""lmms-eval's ``lit_tv`` model, with lmms-eval installed as scripts/lmms.sh installs it (into .lmms/, beside an
unchanged .venv): registered by entry point, answering per task in lit_tv's prompts, cutting at ``until``, and
refusing loglikelihood on the lmms-eval that turns its results into strings."""

from __future__ import annotations

import random
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers import REPO

pytestmark = pytest.mark.slow  # installs lmms-eval (pip) on first use


@pytest.fixture(scope="module")
def lmms():
    """lmms_eval importable here, installed by the script the README shows; the default environment unchanged."""
    done = subprocess.run(["bash", str(REPO / "scripts" / "lmms.sh"), "--help"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    sys.path.insert(0, str(REPO / ".lmms"))
    import lit_tv.integrations.lmms as module

    yield module
    sys.path.remove(str(REPO / ".lmms"))


def test_the_extra_leaves_the_default_environment_alone(lmms):
    """torch stays the CPU 2.13 build .venv has, and lmms-eval is not in .venv's site-packages."""
    import torch

    site = next(path for path in sys.path if path.endswith("site-packages"))
    assert not list(Path(site).glob("lmms_eval*"))
    assert torch.__version__.startswith("2.13") and not torch.version.cuda


def test_lmms_eval_finds_the_model_by_its_entry_point(lmms):
    from lmms_eval.api.model import lmms as base
    from lmms_eval.models import get_model

    (point,) = [point for point in entry_points(group="lmms_eval.models") if point.name == "lit_tv"]
    assert point.load()().model_id == "lit_tv"  # the payload lmms-eval reads while its model package imports
    model_class = get_model("lit_tv")
    assert model_class is lmms.LitTVModel and issubclass(model_class, base) and model_class.is_simple


def test_a_generation_is_cut_at_the_tasks_stop_strings_and_the_first_line(lmms):
    assert lmms._cut(" red ASSISTANT: blue", ["ASSISTANT:"]) == "red"
    assert lmms._cut("red\nQ: blue", None) == "red" and lmms._cut("red.", "") == "red."


def test_loglikelihood_is_refused_where_results_would_become_strings(lmms):
    with pytest.raises(RuntimeError, match="turns loglikelihood results into strings"):
        lmms.refuse_string_results()


def request(doc_id: int, task: str, until: list[str] | None = None) -> SimpleNamespace:
    """A generate_until request as lmms-eval builds one: context, generation settings, visuals, doc, task, split."""
    return SimpleNamespace(
        args=("harness text", {"until": until or []}, lambda doc: [doc["image"]], doc_id, task, "val")
    )


def test_requests_are_answered_in_batches_of_one_task_and_each_tasks_prompt(lmms):
    """Without a vector VizWiz queries get lit_tv's VizWiz prompt (its instruction) and other tasks the harness's text;
    a batch never mixes them, and the answers come back in request order."""
    from lit_tv.shapes.world import draw, objects

    rng = random.Random(0)
    docs = [{"image": draw(obj, rng), "question": ""} for obj in objects("heldout")[:3]]
    model = lmms.LitTVModel(pretrained="lit_tv/shapes-toy", max_new_tokens=1, batch_size=4)
    model.task_dict = {task: {"val": docs} for task in ("vizwiz_vqa_val", "other")}
    seen = []
    answer = model.answerer.answer
    model.answerer.answer = lambda texts, images, tokens, template: (
        seen.append((texts, template)) or answer(texts, images, tokens, template)
    )
    requests = [request(0, "vizwiz_vqa_val"), request(1, "vizwiz_vqa_val"), request(2, "other"), request(0, "other")]
    answers = model.generate_until(requests)
    assert [len(texts) for texts, _ in seen] == [2, 2]
    assert seen[0][1] == lmms.TASK_PROMPTS["vizwiz_vqa"] and seen[0][0] == ["", ""]
    assert seen[1][1] == lmms.HARNESS_PROMPT and seen[1][0] == ["harness text"] * 2
    alone = [model.generate_until([one])[0] for one in requests]
    assert answers == alone
