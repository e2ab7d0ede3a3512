"""docs/findings.md from docs/figures/findings.json, so the page and the measured numbers cannot drift apart.

    python -m lit_tv.shapes.studies.findings_page [--check]

`python -m lit_tv.shapes.studies.findings` measures and writes the figures and findings.json; this writes the page
that shows them (tests/shapes/test_findings.py fails when the page is stale), as `lit_tv.paper.reproduction` does for
docs/reproducing.md.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

from lit_tv.files import write_atomic
from lit_tv.shapes.studies.findings_figures import CONTEXT_SHOTS, VECTOR_NAMES, markdown_table
from lit_tv.shapes.studies.many_shot import cell, claims
from lit_tv.shapes.studies.many_shot import table as many_shot_table
from lit_tv.shapes.world import MANY_SHOT_DISTRACTORS
from lit_tv.spread import on_seeds

DOCS = Path(__file__).resolve().parents[3] / "docs"
NUMBERS = DOCS / "figures" / "findings.json"
DOC = DOCS / "findings.md"
DURATION = (
    "8 min 34 s wall on 2 CPU cores at load average about 1 (2026-12-03, the random-heads control over one "
    "prefix per query; 17 min before that change at load 1-3, 49 min at load 3-10); findings.json and the "
    "figures came out byte for byte as before it"
)


def _seeds(seeds: Sequence[int]) -> str:
    return ", ".join(map(str, seeds))


def shapes_toy_section(numbers: dict) -> list[str]:
    """(1) on the shapes toy: ICL by shots, MTV by support episodes, its random heads; what held per seed."""
    icl, mtv, budget = numbers["icl_vs_shots"], numbers["mtv_vs_iterations"], numbers["budget"]
    seeds, fit_seeds = budget["seeds"], budget["fit_seeds"]
    randoms = numbers["mtv_random_heads"]
    most = mtv[list(mtv)[-1]]
    best_icl = [max(run) for run in zip(*icl.values(), strict=True)]
    best_icl = [best_icl[seeds.index(seed)] for seed in fit_seeds]  # compared with MTV on the seeds of its fits
    draws = len(randoms[0])
    return [
        "| setting (mean ± std (min–max) over seeds) | held-out accuracy |",
        "|---|---|",
        *(f"| ICL, {k} shot{'s' * (k != '1')} (seeds {_seeds(seeds)}) | {cell(values)} |" for k, values in icl.items()),
        *(
            f"| MTV, means over {n} episode{'s' * (n != '1')} (seeds {_seeds(fit_seeds)}) | {cell(values)} |"
            for n, values in mtv.items()
        ),
        f"| MTV, as many heads at random ({draws} draws per seed, {list(mtv)[-1]} episodes) | "
        f"{cell([draw for run in randoms for draw in run])} |",
        "",
        f"- 1 shot beats 0 shots on {on_seeds([one > zero for zero, one in zip(icl['0'], icl['1'], strict=True)])}."
        if "1" in icl
        else "",
        f"- MTV with {list(mtv)[-1]} episodes beats the best ICL in context on "
        f"{on_seeds([a > b for a, b in zip(most, best_icl, strict=True)])}, and every one of its seed's random "
        f"head sets on {on_seeds([a > max(run) for a, run in zip(most, randoms, strict=True)])}.",
        f"- MTV with {list(mtv)[-1]} episodes is above MTV with {list(mtv)[0]} on "
        f"{on_seeds([a > b for a, b in zip(most, mtv[list(mtv)[0]], strict=True)])}.",
    ]


def cross_modal_section(table: dict) -> list[str]:
    """(2): the table with its spread and the paper's comparisons, counted per seed."""
    mean = {setting: row["mean"] for setting, row in table.items()}

    def above(a: str, b: str) -> str:
        return f"{a} above {b} on {on_seeds([x > y for x, y in zip(mean[a], mean[b], strict=True)])}"

    return [
        markdown_table(table),
        "",
        "On image queries (7 examples; the mean column is the mean over tasks, per seed): "
        + "; ".join(
            [
                above("text vector (xPatch)", "zero-shot"),
                above("text vector (xPatch)", "text ICL (xBase)"),
                above("image vector (Patch)", "image ICL (Base)"),
                above("ensemble vector", "instruction vector"),
            ]
        )
        + ".",
    ]


def efficiency_section(efficiency: dict, instruction: Sequence[float]) -> list[str]:
    """(3): exemplar vs ensemble vectors by examples, and the instruction vector alone, counted per seed."""
    exemplars, ensemble = efficiency["exemplars"], efficiency["ensemble"]
    per_k = ", ".join(
        f"k = {k}: {on_seeds([a > b for a, b in zip(ensemble[k], exemplars[k], strict=True)])}" for k in exemplars
    )
    alone = [
        all(i > run for run in runs) for i, runs in zip(instruction, zip(*ensemble.values(), strict=True), strict=True)
    ]
    return [
        "| text examples per task | " + " | ".join(exemplars) + " |",
        "|---" * (len(exemplars) + 1) + "|",
        *(
            f"| {VECTOR_NAMES[source]} | " + " | ".join(cell(v) for v in curve.values()) + " |"
            for source, curve in efficiency.items()
        ),
        f"| instruction vector alone (no examples) | {cell(instruction)} |" + " |" * (len(exemplars) - 1),
        "",
        "With one example the vector is read from a 0-shot prompt (the example is the prompt's query). The ensemble "
        f"scores above the exemplar vector ({per_k}); the instruction vector alone, which needs no examples, is above "
        f"the ensemble at every k on {on_seeds(alone)}.",
    ]


def heads_section(heads: dict) -> list[str]:
    """(4): heads in both against chance, per seed."""
    union = heads["all tasks"]
    below = on_seeds([b < c for b, c in zip(union["both"], union["chance"], strict=True)])
    return [
        f"Over the three tasks' fits MTV selects {cell(union['mtv'])} heads per seed; Function Vectors use "
        f"{cell(union['fv'])} (top AIE, shared by the tasks). They share {cell(union['both'])} (Jaccard "
        f"{cell(union['jaccard'])}), against {cell(union['chance'])} that random head sets of these sizes share on "
        f"average: fewer than chance on {below}. Per task, heads in both of MTV's: "
        + ", ".join(
            f"{task} {cell(row['both'])} of {cell(row['mtv'])}" for task, row in heads.items() if task != "all tasks"
        )
        + "."
    ]


def render_document(numbers: dict) -> str:
    """The page: each figure, the numbers behind it (mean ± std (min–max) over seeds), and what held per seed."""
    many, budget = numbers["many_shot"], numbers["budget"]
    return "\n".join(
        [
            "# The papers' findings on the shapes world",
            "",
            "Generated by `python -m lit_tv.shapes.studies.findings_page` from `docs/figures/findings.json`, which",
            "`python -m lit_tv.shapes.studies.findings` writes with the figures; `tests/shapes/test_findings.py` fails "
            "when this page",
            "is stale. The toy world and its two models: [shapes.md](shapes.md).",
            "",
            "```bash",
            "python -m lit_tv.shapes.studies.findings [--out docs/figures] [--logdir logs/findings] [--fast]",
            "python -m lit_tv.shapes.studies.findings_page   # then this page from docs/figures/findings.json",
            "```",
            "",
            "The first runs the shipped configs with options changed (the same objects `lit-tv fit/test` builds;",
            "nothing is re-implemented) and writes five PNGs and `findings.json` to `--out` and the same figures to",
            "TensorBoard (`findings/*`, plus the cross-modal table as text) under `--logdir`. It needs nothing but the",
            f"shipped toys (no retraining) and took {DURATION}. Every setting runs once per seed",
            "(each seed draws the data, the REINFORCE samples, the random heads and FV's label shuffles), and every",
            "number below is mean ± std (min–max) over the seeds, each comparison counted per seed: seeds "
            f"{_seeds(budget['seeds'])} for ICL by shots, the cross-modal table and sample efficiency; "
            f"{_seeds(budget['fit_seeds'])} for the MTV fits (MTV by support episodes, head overlap); "
            f"{_seeds(budget['many_shot_seeds'])} on the many-shot family.",
            f"This run used {budget['test_size']} held-out queries per run and {budget['many_shot_queries']} per task",
            "on the many-shot family. `--fast` runs",
            "everything on a few queries, as a smoke test (`tests/shapes/test_findings.py`). Running it twice prints "
            "the",
            "same numbers.",
            "",
            "## (1) Accuracy by shots and by MTV's support episodes",
            "",
            "![accuracy vs shots and MTV iterations](figures/shots_and_iterations.png)",
            "",
            f"ICL by shots (the toy was trained on up to {CONTEXT_SHOTS}); MTV with the heads of "
            f"one {budget['steps']}-step fit per task over {budget['support_size']} support episodes and the means",
            "recomputed over N episodes of 4 shots (`transfer: heads`), its random-heads control beside it:",
            "",
            *shapes_toy_section(numbers),
            "",
            "The many-shot family is built so that a few shots are not enough",
            f"({MANY_SHOT_DISTRACTORS:.0%} of its shots answer another attribute of their object):",
            "",
            "![many-shot family: ICL capped by the context, MTV by support episodes](figures/many_shot_scaling.png)",
            "",
            many_shot_table(many),
            "",
            f"Over the seeds ({_seeds(many['seeds'])}; each draws the data, the REINFORCE samples and the random",
            "heads):",
            "",
            *(f"- {claim}" for claim in claims(many)),
            "",
            "MTV's gains over the prompts that fit come with those labelled queries, which ICL never sees. The last",
            "column keeps the heads found with the most episodes and recomputes only the means",
            f"({budget['many_shot_draws']} disjoint draws per row), to see what the means themselves carry.",
            "Why distractors rather than arbitrary per-task label mappings (argued, not measured): MTV writes one",
            "constant vector into every query, so it can say which task, but it cannot hold a per-object lookup table.",
            "`python -m lit_tv.shapes.studies.many_shot` prints this table alone.",
            "",
            "## (2) Cross-modal task vectors",
            "",
            "![cross-modal table](figures/cross_modal_table.png)",
            "",
            *cross_modal_section(numbers["cross_modal"]),
            "",
            "## (3) Sample efficiency",
            "",
            "![sample efficiency](figures/sample_efficiency.png)",
            "",
            "Vectors made from one support episode of k text examples per task, and the ensemble of each with the",
            "instruction vector (image queries, mean over tasks):",
            "",
            *efficiency_section(numbers["sample_efficiency"], numbers["cross_modal"]["instruction vector"]["mean"]),
            "",
            "## (4) The heads MTV selects and the Function Vector heads",
            "",
            "![MTV vs FV heads](figures/mtv_vs_fv_heads.png)",
            "",
            *heads_section(numbers["heads_overlap"]),
            "",
        ]
    )


def main(argv: list[str] | None = None) -> None:
    """Write (default) or ``--check`` docs/findings.md."""
    text = render_document(json.loads(NUMBERS.read_text()))
    if "--check" in (argv if argv is not None else sys.argv[1:]):
        if not DOC.is_file() or DOC.read_text() != text:
            raise SystemExit(f"{DOC} is out of date: run python -m lit_tv.shapes.studies.findings_page")
        return
    write_atomic(DOC, text)


if __name__ == "__main__":
    main()
