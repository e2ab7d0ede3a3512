"""`python -m lit_tv.shapes.studies.findings --fast`: every figure as a PNG and in TensorBoard, real runs' numbers."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from helpers import read_events
from PIL import Image

from lit_tv.shapes.studies import findings
from lit_tv.shapes.studies import findings_page as findings_doc
from lit_tv.shapes.studies.findings import main

pytestmark = pytest.mark.slow  # end-to-end runs: deselect with -m 'not slow'

FIGURES = ("shots_and_iterations", "many_shot_scaling", "cross_modal_table", "sample_efficiency", "mtv_vs_fv_heads")


def _one_seed(numbers: object, index: int) -> object:
    """The numbers of one seed from `findings.measure`'s: the `index`-th value of every per-seed list."""
    if isinstance(numbers, dict):
        return {key: _one_seed(value, index) for key, value in numbers.items()}
    assert isinstance(numbers, list)
    return numbers[index]


@pytest.mark.slow
def test_the_findings_command_writes_every_figure_and_its_numbers_the_same_in_any_order(workdir):
    main(["--fast", "--out", "figures", "--logdir", "tb"])
    for name in FIGURES:
        with Image.open(workdir / "figures" / f"{name}.png") as image:
            assert image.width >= 400 and image.height >= 250, (name, image.size)
    events = read_events(workdir / "tb")
    assert {f"findings/{name}" for name in FIGURES} <= set(events.Tags()["images"])
    assert events.Images("findings/mtv_vs_fv_heads")[0].width >= 300
    numbers = json.loads((workdir / "figures" / "findings.json").read_text())
    # every number once per seed: FAST's seeds (0, 1) for every section
    icl, mtv = numbers["icl_vs_shots"], numbers["mtv_vs_iterations"]
    assert list(icl) == ["0", "1"] and list(mtv) == ["1", "2"]
    assert all(len(values) == 2 for values in [*icl.values(), *mtv.values()])
    assert [len(draws) for draws in numbers["mtv_random_heads"]] == [4, 4]  # the control: 4 draws per fit seed
    many = numbers["many_shot"]
    assert many["seeds"] == [0, 1] and len(many["icl"]) == len(many["mtv"]) == 2
    assert many["icl"][0]["shots"] == [0, 1, 2, 3, 4] and many["mtv"][0]["iterations"] == [1, 2]  # the context
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
    # two separate runs of the same zero-shot setting on the same seed's held-out queries agree
    assert table["zero-shot"]["mean"] == icl["0"]
    assert all(
        len(values) == 2 and 0 <= min(values) <= max(values) <= 1 for row in table.values() for values in row.values()
    )
    assert [len(values) for values in numbers["sample_efficiency"]["ensemble"].values()] == [2, 2]
    heads = numbers["heads_overlap"]["all tasks"]
    for seed in range(2):
        mtv_heads, fv, both = heads["mtv"][seed], heads["fv"][seed], heads["both"][seed]
        assert fv == 10 and 0 <= both <= min(fv, mtv_heads)
        assert heads["jaccard"][seed] == both / (mtv_heads + fv - both)
        assert heads["chance"][seed] == mtv_heads * fv / 32  # random sets of these sizes among 4 x 8 heads
    assert (workdir / "tb" / "seed_1" / "mtv_colour.safetensors").is_file()  # each task and seed's MTV vector
    assert sorted(path.name for path in workdir.iterdir()) == ["figures", "tb"]  # no stray configs or checkpoints

    # seed 1 alone, now first in its run and into the same logdir: exactly seed 1's numbers of the first run
    again, _ = findings.measure(
        dataclasses.replace(findings.FAST, seeds=(1,), fit_seeds=(1,), many_shot_seeds=(1,)), Path("tb")
    )
    for section in ("icl_vs_shots", "mtv_vs_iterations", "cross_modal", "sample_efficiency", "heads_overlap"):
        assert _one_seed(again[section], 0) == _one_seed(numbers[section], 1), section
    assert again["mtv_random_heads"] == numbers["mtv_random_heads"][1:]
    assert again["many_shot"]["icl"] == many["icl"][1:] and again["many_shot"]["mtv"] == many["mtv"][1:]


def test_a_smoke_run_never_writes_over_the_committed_figures(monkeypatch, workdir):
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
    findings_doc.main(
        ["--check"]
    )  # `python -m lit_tv.shapes.studies.findings_page --check`: docs/findings.md is up to date
    numbers = json.loads(findings_doc.NUMBERS.read_text())
    numbers["heads_overlap"]["all tasks"]["both"][0] += 1  # one seed's count
    monkeypatch.setattr(findings_doc, "NUMBERS", tmp_path / "findings.json")
    findings_doc.NUMBERS.write_text(json.dumps(numbers))
    with pytest.raises(SystemExit, match="out of date: run python -m lit_tv.shapes.studies.findings_page"):
        findings_doc.main(["--check"])
