"""The papers' findings as figures on the shapes world, measured by the real methods through the CLI objects.

    python -m lit_tv.shapes.studies.findings [--out docs/figures] [--logdir logs/findings] [--fast]

(1) accuracy vs shots (ICL, up to the 7 shots the toy was trained on) and vs MTV iterations (support
episodes in the mean), on the shapes toy and on the many-shot family, whose toy's context holds 4 image
shots (`lit_tv.shapes.studies.many_shot`); (2) the cross-modal table: text ICL xBase vs xPatch, image ICL Base vs Patch,
instruction and ensemble vectors; (3) exemplar vs ensemble vectors as the examples grow; (4) the heads
MTV selects vs the heads Function Vectors use. Every number comes from `lit-tv test` / `fit` runs of the
shipped configs with options changed (`lit_tv.cli.app.build_cli`); each figure is a PNG in `--out`
and a TensorBoard figure in `--logdir`, and all numbers go to `<out>/findings.json`. Every setting runs once per
seed (`Budget.seeds`, `fit_seeds`, `many_shot_seeds`): findings.json keeps each seed's number, the figures and
the printout show mean ± std (min–max), and a rerun prints the same numbers. `--fast` runs
the same code on a few queries (a smoke test, not a measurement: into logs/findings_fast, never docs/figures).

The data functions (`icl_vs_shots`, `mtv_vs_iterations`, ...) return plain numbers, so another task
family can feed the same figures.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.tensorboard import SummaryWriter

from lit_tv.cli.app import build_cli
from lit_tv.console import quiet_libraries
from lit_tv.files import write_atomic
from lit_tv.shapes.studies.findings_figures import (
    CONTEXT_SHOTS,
    efficiency_figure,
    heads_figure,
    many_shot_figure,
    markdown_table,
    save,
    scaling_figure,
    table_figure,
)
from lit_tv.shapes.studies.main_job import CONFIGS, means_only, quiet_run, run_test, test_metrics
from lit_tv.shapes.studies.many_shot import ITERATIONS, SEEDS, over_seeds
from lit_tv.shapes.studies.many_shot import table as many_shot_table
from lit_tv.shapes.world import TASKS
from lit_tv.spread import by_seed, format_spread

# the fits keep only the means callback: their vectors are exported (over the last findings run's: this command
# owns its logdir, so a rerun replaces them), no checkpoint is written
NO_CHECKPOINTS = ["--overwrite", *means_only()]


@dataclass(frozen=True)
class Budget:
    """Sizes of every run: the defaults measure, `FAST` only checks that everything runs."""

    test_size: int = 90  # held-out queries per run (balanced over the tasks in it)
    support_size: int = 100  # MTV / FV support episodes; the MTV fit's means
    train_size: int = 100
    steps: int = 40  # REINFORCE steps (configs/shapes/mtv.yaml)
    iterations: tuple[int, ...] = (1, 3, 10, 30, 100)
    shots: tuple[int, ...] = tuple(range(CONTEXT_SHOTS + 1))
    cross_support: int = 300  # cross-modal support episodes (configs/shapes/cross_modal.yaml)
    val_size: int = 60
    examples: tuple[int, ...] = (1, 2, 4, 7)  # examples per task behind one exemplar vector
    mtv_options: tuple[str, ...] = field(default=())  # e.g. fewer REINFORCE samples
    many_shot_queries: int = 150  # held-out queries per task on the many-shot family
    many_shot_iterations: tuple[int, ...] = ITERATIONS
    many_shot_draws: int = 3  # disjoint draws of the support episodes behind the kept-heads curve
    many_shot_options: dict = field(default_factory=dict)  # e.g. fewer REINFORCE samples
    # each seed draws the data (and REINFORCE, random heads, FV's shuffles); one run per seed and setting
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)  # the test-only sections: ICL by shots, cross-modal, sample efficiency
    fit_seeds: tuple[int, ...] = (0, 1, 2)  # the sections that fit MTV: MTV by support episodes, head overlap
    many_shot_seeds: tuple[int, ...] = SEEDS


FAST = Budget(
    test_size=6,
    support_size=4,
    train_size=8,
    steps=2,
    iterations=(1, 2),
    shots=(0, 1),
    cross_support=6,
    val_size=6,
    examples=(1, 2),
    mtv_options=("--model.init_args.samples=4", "--model.init_args.random_draws=4"),
    many_shot_queries=2,
    many_shot_iterations=(1, 2),
    many_shot_draws=1,
    many_shot_options={"samples": 4},
    seeds=(0, 1),
    fit_seeds=(0, 1),
    many_shot_seeds=(0, 1),
)


def _sizes(logdir: Path, seed: int, **sizes: int) -> list[str]:
    """Quiet runs of one seed whose saved config lands in `logdir`, with these DataModule sizes."""
    return [*quiet_run(seed, **sizes), f"--trainer.default_root_dir={logdir}"]


def per_task(metrics: Mapping[str, float]) -> dict[str, float]:
    return {**{task: metrics[f"test/accuracy/{task}"] for task in TASKS}, "mean": metrics["test/accuracy"]}


# ---- (1) shots and iterations --------------------------------------------------------------------------


def icl_vs_shots(budget: Budget, logdir: Path, seed: int) -> dict[int, float]:
    """Held-out accuracy of k-shot image ICL (mean over tasks) for each k of the budget, on one seed's data."""
    return {
        shots: run_test("icl.yaml", _sizes(logdir, seed, test_size=budget.test_size, test_shots=shots))["test/accuracy"]
        for shots in budget.shots
    }


def mtv_vs_iterations(budget: Budget, logdir: Path, seed: int) -> dict[str, Any]:
    """One seed's MTV accuracy (mean over tasks) with the means over N support episodes, each task's heads, and
    the random-heads control: every draw's accuracy (mean over tasks) with the most episodes.

    Per task, one `lit-tv fit` (means over `support_size` episodes, REINFORCE) chooses the heads; each N
    is then a `lit-tv test` with those heads (`transfer: heads`) and the means recomputed over N episodes.
    """
    heads, accuracy = {}, {n: 0.0 for n in budget.iterations}
    random_heads: list[list[float]] = []  # per task, every draw's accuracy
    for task in TASKS:
        vector = logdir / f"seed_{seed}" / f"mtv_{task}.safetensors"
        options = [
            *_sizes(logdir, seed, support_size=budget.support_size, train_size=budget.train_size),
            f"--data.init_args.tasks=[{task}]",
            f"--data.init_args.test_size={budget.test_size // 3 or 1}",
            f"--model.init_args.selection_queries={min(50, budget.train_size)}",
            *budget.mtv_options,
        ]
        fit = build_cli(
            CONFIGS / "mtv.yaml",
            [*options, f"--trainer.max_steps={budget.steps}", *NO_CHECKPOINTS, f"--model.init_args.export={vector}"],
        )
        fit.trainer.fit(fit.model, datamodule=fit.datamodule)
        heads[task] = fit.model.selected_heads.cpu()
        for n in budget.iterations:
            control = ["--model.init_args.test_heads=random"] if n == max(budget.iterations) else []
            cli = build_cli(
                CONFIGS / "mtv.yaml",
                [
                    *options,
                    f"--data.init_args.support_size={n}",
                    f"--model.init_args.task_vector={vector}",
                    "--model.init_args.transfer=heads",
                    "--model.init_args.export=null",
                    *control,
                ],
            )
            accuracy[n] += test_metrics(cli)["test/accuracy"] / len(TASKS)
            if control:
                random_heads.append(cli.model.random_control.accuracies())
    draws = [sum(draw) / len(TASKS) for draw in zip(*random_heads, strict=True)]
    return {"accuracy": accuracy, "random_heads": draws, "heads": heads}


# ---- (2) the cross-modal table ---------------------------------------------------------------------------

# setting -> (config, options): the reference's settings on the toy (7 shots; image queries unless said)
CROSS_MODAL = {
    "zero-shot": ("icl.yaml", ["--data.init_args.test_shots=0"]),
    "text ICL (xBase)": ("icl.yaml", ["--data.init_args.test_shots=7", "--data.init_args.shot_modality=text"]),
    "text vector (xPatch)": ("cross_modal.yaml", []),
    "image ICL (Base)": ("icl.yaml", ["--data.init_args.test_shots=7", "--data.init_args.shot_modality=image"]),
    "image vector (Patch)": ("cross_modal.yaml", ["--data.init_args.shot_modality=image"]),
    "instruction vector": ("cross_modal.yaml", ["--model.init_args.source=instruction"]),
    "ensemble vector": ("cross_modal.yaml", ["--model.init_args.source=ensemble"]),
}
CROSS_MODAL_RUN = ["--trainer.callbacks=[]", "--model.init_args.export=null"]
# lines drawn beside the sample-efficiency curves: name -> setting of the cross-modal table
EFFICIENCY_BASELINES = {"instruction vector alone": "instruction vector", "zero-shot": "zero-shot"}


def cross_modal_table(budget: Budget, logdir: Path, seed: int) -> dict[str, dict[str, float]]:
    """Accuracy per task (and mean) on one seed's image queries for every setting of `CROSS_MODAL`."""
    table = {}
    for setting, (config, options) in CROSS_MODAL.items():
        sizes = _sizes(logdir, seed, test_size=budget.test_size)
        if config == "cross_modal.yaml":
            sizes += [
                *CROSS_MODAL_RUN,
                f"--data.init_args.support_size={budget.cross_support}",
                f"--data.init_args.val_size={budget.val_size}",
            ]
        table[setting] = per_task(run_test(config, [*sizes, *options]))
    return table


# ---- (3) sample efficiency --------------------------------------------------------------------------------


def vectors_vs_examples(budget: Budget, logdir: Path, seed: int) -> dict[str, dict[int, float]]:
    """Image-query accuracy (mean over tasks) of text-exemplar and ensemble vectors made from k examples per task.

    One support episode of k text examples per task: the vector is that episode's residual at the last
    demonstration; the ensemble averages it with the instruction vector.
    """
    curves: dict[str, dict[int, float]] = {"exemplars": {}, "ensemble": {}}
    for source, curve in curves.items():
        for k in budget.examples:
            sizes = {"test_size": budget.test_size, "support_size": len(TASKS), "shots": k, "val_size": budget.val_size}
            options = [*_sizes(logdir, seed, **sizes), *CROSS_MODAL_RUN, f"--model.init_args.source={source}"]
            curve[k] = run_test("cross_modal.yaml", options)["test/accuracy"]
    return curves


# ---- (4) MTV heads vs FV heads ---------------------------------------------------------------------------


def fv_heads(budget: Budget, logdir: Path, seed: int) -> torch.Tensor:
    """The heads Function Vectors sum (top-10 of the AIE averaged over tasks, shared by every task)."""
    cli = build_cli(
        CONFIGS / "function_vectors.yaml",
        [
            *_sizes(logdir, seed, test_size=budget.test_size, support_size=budget.support_size),
            f"--model.init_args.seed={seed}",  # its label shuffles
            "--model.init_args.export=null",
        ],
    )
    test_metrics(cli)
    return cli.model.selected_heads[0].cpu()


def overlap(mtv: dict[str, torch.Tensor], fv: torch.Tensor) -> dict[str, dict[str, float]]:
    """Heads in both sets and their Jaccard index, for the union of MTV's per-task heads and per task."""
    union = torch.stack(list(mtv.values())).any(0)

    def stats(heads: torch.Tensor) -> dict[str, float]:
        both, either = int((heads & fv).sum()), int((heads | fv).sum())
        return {
            "mtv": int(heads.sum()),
            "fv": int(fv.sum()),
            "both": both,
            "jaccard": both / either if either else 0.0,
            # expected heads in both for random sets of these sizes (hypergeometric mean)
            "chance": int(heads.sum()) * int(fv.sum()) / fv.numel(),
        }

    return {"all tasks": stats(union), **{task: stats(heads) for task, heads in mtv.items()}}


# ---- the command -----------------------------------------------------------------------------------------


def measure(budget: Budget, logdir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every section, one run per seed and setting: the numbers (each leaf a list, one value per seed, in the
    order of the section's seeds) and the head masks behind the heads figure."""

    def each_seed(section: Callable[[Budget, Path, int], Any], seeds: tuple[int, ...]) -> list[Any]:
        return [section(budget, logdir, seed) for seed in seeds]

    # the sections that fit MTV, per seed: its accuracy by support episodes, its control, the FV heads
    fits = [
        {**mtv_vs_iterations(budget, logdir, seed), "fv": fv_heads(budget, logdir, seed)} for seed in budget.fit_seeds
    ]
    numbers = {
        "icl_vs_shots": by_seed(each_seed(icl_vs_shots, budget.seeds)),
        "mtv_vs_iterations": by_seed([fit["accuracy"] for fit in fits]),
        "mtv_random_heads": [fit["random_heads"] for fit in fits],
        # (1) on the many-shot family, where a few shots are not enough: `lit_tv.shapes.studies.many_shot`'s numbers
        "many_shot": over_seeds(
            budget.many_shot_seeds,
            queries=budget.many_shot_queries,
            iterations=budget.many_shot_iterations,
            steps=budget.steps,
            draws=budget.many_shot_draws,
            **budget.many_shot_options,
        ),
        "cross_modal": by_seed(each_seed(cross_modal_table, budget.seeds)),
        "sample_efficiency": by_seed(each_seed(vectors_vs_examples, budget.seeds)),
        "heads_overlap": by_seed([overlap(fit["heads"], fit["fv"]) for fit in fits]),
        "budget": vars(budget),
    }
    return json.loads(json.dumps(numbers)), {"mtv": [fit["heads"] for fit in fits], "fv": [fit["fv"] for fit in fits]}


def run_findings(out: Path, logdir: Path, budget: Budget = Budget()) -> dict[str, Any]:
    """Measure everything, write the five figures and findings.json; print the numbers and return them (as in
    findings.json: JSON's string keys)."""
    quiet_libraries()
    out.mkdir(parents=True, exist_ok=True)
    numbers, masks = measure(budget, logdir)
    writer = SummaryWriter(str(logdir))
    table = numbers["cross_modal"]
    save(
        scaling_figure(numbers["icl_vs_shots"], numbers["mtv_vs_iterations"], numbers["mtv_random_heads"]),
        "shots_and_iterations",
        out,
        writer,
    )
    save(many_shot_figure(numbers["many_shot"]), "many_shot_scaling", out, writer)
    save(table_figure(table), "cross_modal_table", out, writer)
    writer.add_text("findings/cross_modal_table", markdown_table(table), 0)
    baselines = {name: table[setting]["mean"] for name, setting in EFFICIENCY_BASELINES.items()}
    save(efficiency_figure(numbers["sample_efficiency"], baselines), "sample_efficiency", out, writer)
    save(heads_figure(masks["mtv"], masks["fv"], numbers["heads_overlap"]), "mtv_vs_fv_heads", out, writer)
    writer.close()
    write_atomic(out / "findings.json", json.dumps(numbers, indent=1))
    print(f"\n{summary(numbers)}\nfigures in {out}, TensorBoard in {logdir}")
    return numbers


def _curve(curve: dict[str, list[float]]) -> str:
    return "; ".join(f"{key}: {format_spread(values)}" for key, values in curve.items())


def summary(numbers: dict[str, Any]) -> str:
    """Every measured number as mean ± std (min–max) over its seeds."""
    efficiency = numbers["sample_efficiency"]
    return "\n".join(
        [
            f"findings, mean ± std (min–max) over seeds; ICL by shots {_curve(numbers['icl_vs_shots'])}",
            f"MTV by support episodes {_curve(numbers['mtv_vs_iterations'])}",
            f"MTV, random heads: {format_spread([d for run in numbers['mtv_random_heads'] for d in run])}",
            many_shot_table(numbers["many_shot"]),
            markdown_table(numbers["cross_modal"]),
            *(f"{source} vectors by examples {_curve(curve)}" for source, curve in efficiency.items()),
            f"MTV vs FV heads {_curve(numbers['heads_overlap']['all tasks'])}",
        ]
    )


COMMITTED = Path(__file__).resolve().parents[3] / "docs" / "figures"  # the measured figures docs/findings.md shows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="PNG files and findings.json (default docs/figures; --fast: logdir)")
    parser.add_argument(
        "--logdir", type=Path, help="TensorBoard event files (logs/findings; --fast: logs/findings_fast)"
    )
    parser.add_argument("--fast", action="store_true", help="a few queries per run: checks that it runs")
    args = parser.parse_args(argv)
    logdir = args.logdir or Path("logs/findings_fast" if args.fast else "logs/findings")
    out = args.out or (logdir if args.fast else COMMITTED)
    if args.fast and out.resolve() == COMMITTED:  # smoke numbers measure nothing
        parser.error(f"--fast --out {out}: a smoke run never writes over the committed figures; give another --out")
    run_findings(out, logdir, FAST if args.fast else Budget())


if __name__ == "__main__":
    main()
