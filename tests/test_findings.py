"""`python -m lit_tv.shapes.findings --fast`: every figure as a PNG and in TensorBoard, numbers from real runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from tensorboard_events import read_events

from lit_tv.shapes import findings, findings_doc
from lit_tv.shapes.findings import main

pytestmark = pytest.mark.slow  # end-to-end runs: deselect with -m 'not slow'

FIGURES = ("shots_and_iterations", "many_shot_scaling", "cross_modal_table", "sample_efficiency", "mtv_vs_fv_heads")


@pytest.mark.slow
def test_the_findings_command_writes_every_figure_and_its_numbers(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    main(["--fast", "--out", "figures", "--logdir", "tb"])
    for name in FIGURES:
        with Image.open(tmp_path / "figures" / f"{name}.png") as image:
            assert image.width >= 400 and image.height >= 250, (name, image.size)
    events = read_events(tmp_path / "tb")
    assert {f"findings/{name}" for name in FIGURES} <= set(events.Tags()["images"])
    assert events.Images("findings/mtv_vs_fv_heads")[0].width >= 300
    numbers = json.loads((tmp_path / "figures" / "findings.json").read_text())
    assert list(numbers["icl_vs_shots"]) == ["0", "1"] and list(numbers["mtv_vs_iterations"]) == ["1", "2"]
    many = numbers["many_shot"]
    assert many["seeds"] == [0, 1] and len(many["icl"]) == len(many["mtv"]) == 2  # every number once per seed
    assert many["icl"][0]["shots"] == [0, 1, 2, 3, 4] and many["mtv"][0]["iterations"] == [
        1,
        2,
    ]  # capped by the context
    assert all(len(run["random_heads"]) == 20 for run in many["mtv"])  # the control is a distribution
    table = numbers["cross_modal"]
    assert list(table) == [
        "zero-shot",
        "text ICL (xBase)",
        "text vector (xPatch)",
        "image ICL (Base)",
        "image vector (Patch)",
        "instruction vector",
        "ensemble vector",
    ]
    # two separate runs of the same zero-shot setting on the same held-out queries agree
    assert table["zero-shot"]["mean"] == numbers["icl_vs_shots"]["0"]
    assert all(0 <= value <= 1 for row in table.values() for value in row.values())
    heads = numbers["heads_overlap"]["all tasks"]
    assert heads["fv"] == 10 and 0 <= heads["both"] <= min(heads["fv"], heads["mtv"])
    assert heads["jaccard"] == heads["both"] / (heads["mtv"] + heads["fv"] - heads["both"])
    assert heads["chance"] == heads["mtv"] * heads["fv"] / 32  # random sets of these sizes among 4 x 8 heads
    assert (tmp_path / "tb" / "mtv_colour.safetensors").is_file()  # each task's fitted MTV vector
    assert sorted(path.name for path in tmp_path.iterdir()) == ["figures", "tb"]  # no stray configs or checkpoints


def test_a_smoke_run_never_writes_over_the_committed_figures(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runs = []
    monkeypatch.setattr(findings, "run_findings", lambda out, logdir, budget: runs.append((out, logdir, budget)))
    findings.main(["--fast"])
    out, logdir, budget = runs[-1]
    assert budget == findings.FAST and out == logdir == Path("logs/findings_fast"), runs
    findings.main([])  # a measurement writes the figures docs/findings.md shows
    assert runs[-1][0] == findings_doc.NUMBERS.parent
    with pytest.raises(SystemExit):
        findings.main(["--fast", "--out", str(findings_doc.NUMBERS.parent)])
    assert len(runs) == 2


def test_the_findings_page_shows_the_committed_numbers(tmp_path, monkeypatch):
    findings_doc.main(["--check"])  # `python -m lit_tv.shapes.findings_doc --check`: docs/findings.md is up to date
    numbers = json.loads(findings_doc.NUMBERS.read_text())
    numbers["heads_overlap"]["all tasks"]["both"] += 1
    monkeypatch.setattr(findings_doc, "NUMBERS", tmp_path / "findings.json")
    findings_doc.NUMBERS.write_text(json.dumps(numbers))
    with pytest.raises(SystemExit, match="out of date: run python -m lit_tv.shapes.findings_doc"):
        findings_doc.main(["--check"])
