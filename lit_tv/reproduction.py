"""The papers' settings as data: what every config under configs/ must hold, and each deviation with its reason.

A config is named ``configs/<benchmark>/<method>_<model>.yaml``. Its expected values are the settings of
its benchmark x method row, of its model and of its method x model pair, as dotted keys of the full
configuration (`lit-tv test --config ... --print_config`). A value may differ only where `DEVIATIONS`
lists that key for that config, with the reason. tests/test_fidelity.py checks every config against
this table, and `python -m lit_tv.reproduction` writes docs/reproducing.md (the README's
"Reproducing the papers" table) from it, so the table and the configs cannot drift apart.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lit_tv.files import write_atomic
from lit_tv.paper_results import CROSS_MODAL_PAPER, MTV_PAPER, TARGETS

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
DOC = Path(__file__).resolve().parent.parent / "docs" / "reproducing.md"

M = "model.init_args."
D = "data.init_args."


@dataclass(frozen=True)
class Rule:
    """Settings (dotted keys) for the configs it matches: a benchmark folder, a method prefix and a model
    suffix of the file name, each "*" for any; `notes` are deviations that no single key expresses."""

    benchmark: str
    method: str
    model: str
    settings: dict[str, Any]
    notes: tuple[str, ...] = ()

    def matches(self, benchmark: str, method: str, model: str) -> bool:
        return all(
            want in ("*", have)
            for want, have in ((self.benchmark, benchmark), (self.method, method), (self.model, model))
        )


MTV_BENCHMARKS = ("vizwiz", "okvqa", "flowers", "cub")

# MTV (paper + Brandon3964/MultiModal-Task-Vector): REINFORCE and head selection.
_REINFORCE = {
    "trainer.max_steps": 600,
    f"{M}samples": 32,
    f"{M}learning_rate": 0.1,
    f"{M}theta_init": -1.0,
    f"{M}selection_samples": 10,
    f"{M}selection_queries": 50,
    f"{M}policy": "every_token",
    f"{D}support_size": 100,
    f"{D}train_size": 100,
    f"{D}batch_size": 1,
}
_VQA = {
    f"{M}max_new_tokens": 10,
    f"{D}test_size": None,
    f"{D}normalize_references": False,
    f"{D}target_token": "word_start",
}
_TWO_WAY = {f"{D}shots": 1, f"{D}test_shots": 1, f"{M}max_new_tokens": 20, f"{D}option_match": "exact"}
_NEWLINE = (
    "each shot's answer ends with a newline; the reference runs the shots together (a model continuing "
    "the pattern then writes the next question after a newline, not glued to its answer); undo with "
    "`--data.init_args.answer_format ' {answer}'` (OK-VQA: `'{answer}'`)",
)
_FIXED_EPISODES = (
    "test episodes are drawn (seeded) from the official test images of the held-out classes, not "
    "the reference's fixed episode list, whose file and class split are not published with the "
    "dataset; the class split is a seeded half of the classes (`data.init_args.test_class_fraction`)",
)
# the layer the released cross-modal code fixes per model (the paper instead searches a grid on val)
RELEASED_LAYERS = {"llava-1.5-7b": 15, "idefics2-8b": 16, "mantis-fuyu": 23}
# Cross-modal (paper + g-luo/task_vectors_are_cross_modal): every val record is one prompt of the vectors and
# one query of the layer search; results are means over 3 seeds.
_CROSS_MODAL_SIZES = {
    f"{D}shots": 5,
    f"{D}seeds": [0, 1, 2],
    f"{D}support_size": None,
    f"{D}val_size": None,
    f"{D}train_size": 0,
    f"{D}overlap": True,
    f"{D}ignore_case": False,
    f"{M}max_new_tokens": 1,
}
_CROSS_MODAL_DATA = {**_CROSS_MODAL_SIZES, f"{M}model.image_width": 224, f"{M}model.quantization": "nf4"}

_NO_REVISION = (
    "weights not pinned to the reference's hub revision: `VLMOptions` has no `revision` option yet "
    "(TODO: add one and pin LLaVA-1.5 and Idefics2 as the cross-modal reference does); a hub update "
    "would change every number of this model",
)

RULES: tuple[Rule, ...] = (
    # ---- MTV paper ----
    *(Rule(benchmark, "mtv", "*", {**_REINFORCE, f"{M}selection": "best_of_samples"}) for benchmark in MTV_BENCHMARKS),
    Rule("vizwiz", "mtv", "*", {**_VQA, f"{D}shots": 4, f"{D}test_shots": 0}, _NEWLINE),
    Rule("okvqa", "mtv", "*", {**_VQA, f"{D}shots": 4, f"{D}test_shots": 0}, _NEWLINE),
    Rule("flowers", "mtv", "*", {**_TWO_WAY, f"{D}test_size": 5076}, _FIXED_EPISODES),
    Rule("cub", "mtv", "*", {**_TWO_WAY, f"{D}test_size": 5023}, _FIXED_EPISODES),
    Rule("vizwiz", "icl", "*", {**_VQA, f"{D}test_shots": 4}, _NEWLINE),
    Rule("okvqa", "icl", "*", {**_VQA, f"{D}test_shots": 4}, _NEWLINE),
    Rule("flowers", "icl", "*", {**_TWO_WAY, f"{D}test_size": 5076}, _FIXED_EPISODES),
    Rule("cub", "icl", "*", {**_TWO_WAY, f"{D}test_size": 5023}, _FIXED_EPISODES),
    Rule(
        "cub",
        "transfer",
        "*",
        {
            **_TWO_WAY,
            f"{D}test_size": 5023,
            f"{D}support_size": 100,
            f"{M}transfer": "heads",
            f"{M}policy": "every_token",
        },
        _FIXED_EPISODES,
    ),
    *(
        Rule(
            benchmark,
            "vtv",
            "*",
            {
                **_REINFORCE,
                **_VQA,
                "trainer.max_steps": 10,
                f"{D}support_size": 10,
                f"{D}shots": 1,
                f"{M}selection": "best_of_samples",
            },
            _NEWLINE,
        )
        for benchmark in ("vizwiz", "okvqa")
    ),
    *(
        Rule(
            benchmark,
            "fv",
            "*",
            {
                **_VQA,
                f"{M}layer": 20,
                f"{M}top_k": 10,
                f"{M}aie_prompts": 25,
                f"{M}policy": "every_token",
                f"{D}shots": 10,
                f"{D}support_size": 100,
            },
            (
                "the FV paper's 10-shot prompts for the means; the MTV supplement states the layer (20), not the "
                "shot count",
            ),
        )
        for benchmark in ("vizwiz", "okvqa")
    ),
    # the reference cuts the answers of every model but Qwen-VL at the first '.' and newline
    *(
        Rule(benchmark, "*", model, {f"{D}answer_cut": True})
        for benchmark in ("vizwiz", "okvqa")
        for model in ("llava-1.5-7b", "idefics2-8b")
    ),
    Rule("vizwiz", "*", "qwen2-vl-7b", {f"{D}answer_cut": False}),
    Rule("okvqa", "*", "qwen2-vl-7b", {f"{D}answer_cut": False}),
    # ---- cross-modal paper ----
    Rule(
        "cross_modal",
        "xpatch",
        "*",
        {
            **_CROSS_MODAL_DATA,
            f"{D}shot_modality": "text",
            f"{D}query_modality": "image",
            f"{M}source": "exemplars",
            f"{M}position": "last_shot",
            f"{M}mode": "replace",
            f"{M}layer": None,
        },
    ),
    Rule(
        "cross_modal",
        "llm_to_vlm",
        "*",
        {
            **_CROSS_MODAL_DATA,
            f"{D}shot_modality": "text",
            f"{D}query_modality": "image",
            f"{M}source": "exemplars",
            f"{M}position": "last_shot",
            f"{M}mode": "replace",
            f"{M}layer": None,
            f"{M}extractor.quantization": "nf4",
        },
    ),
    *(
        Rule(
            "cross_modal",
            "xpatch_released",
            model,
            {
                **_CROSS_MODAL_DATA,
                f"{D}shot_modality": "text",
                f"{D}query_modality": "image",
                f"{M}source": "exemplars",
                f"{M}position": "last_shot",
                f"{M}mode": "replace",
                f"{M}layer": layer,
            },
        )
        for model, layer in RELEASED_LAYERS.items()
    ),
    Rule(
        "cross_modal",
        "ensemble",
        "idefics2-8b",
        {
            **_CROSS_MODAL_DATA,
            f"{D}shot_modality": "text",
            f"{D}query_modality": "image",
            f"{M}source": "ensemble",
            f"{M}ensemble_weight": 0.5,
            f"{M}position": "last_shot",
            f"{M}mode": "replace",
            f"{M}layer": 16,
            f"{D}ignore_case": True,
            f"{D}support_size": 180,
        },
    ),
    Rule(
        "cross_modal",
        "icl",
        "*",
        {
            **_CROSS_MODAL_DATA,
            f"{D}test_shots": 5,
            f"{D}shot_modality": "text",
            f"{D}query_modality": "image",
            f"{D}test_shots_from": "test",
        },
    ),
    Rule(
        "cross_modal",
        "majority",
        "*",
        {
            **_CROSS_MODAL_SIZES,
            f"{D}query_modality": "image",
            f"{D}test_shots": 5,
            f"{D}test_shots_from": "test",
            f"{M}source": "demonstrations",
        },
    ),
    Rule(
        "cross_modal",
        "mtv",
        "*",
        {**_REINFORCE, f"{D}shots": 5, f"{M}max_new_tokens": 1, f"{M}selection": "best_of_samples"},
        ("not a result of either paper: MTV's settings on the cross-modal tasks, one task per fit",),
    ),
    # ---- models ----
    Rule(
        "*",
        "*",
        "idefics2-8b",
        {f"{M}model.name": "HuggingFaceM4/idefics2-8b", f"{M}model.processor_kwargs.do_image_splitting": False},
        _NO_REVISION,
    ),
    # the MTV reference keeps only heads with sigmoid(theta) >= 0.8 in Idefics2's final sampling
    *(
        Rule(benchmark, "mtv", "idefics2-8b", {f"{M}selection": "pruned_best_of_samples", f"{M}threshold": 0.8})
        for benchmark in (*MTV_BENCHMARKS, "cross_modal")
    ),
    *(
        Rule(benchmark, "*", "llava-1.5-7b", {f"{M}model.name": "Efficient-Large-Model/Llama-3-VILA1.5-8B"})
        for benchmark in MTV_BENCHMARKS
    ),
    *(Rule(benchmark, "*", "qwen2-vl-7b", {f"{M}model.name": "Qwen/Qwen-VL"}) for benchmark in MTV_BENCHMARKS),
    Rule("cross_modal", "*", "llava-1.5-7b", {f"{M}model.name": "llava-hf/llava-1.5-7b-hf"}, _NO_REVISION),
    Rule(
        "cross_modal",
        "*",
        "qwen2-vl-7b",
        {f"{M}model.name": "Qwen/Qwen2-VL-7B"},
        ("not a model of the cross-modal paper: an extra architecture (M-RoPE)",),
    ),
    Rule(
        "cross_modal",
        "*",
        "mantis-fuyu",
        {f"{M}model.name": "TIGER-Lab/Mantis-8B-Fuyu", f"{M}model.dtype": "float16"},
        (
            "loaded with transformers' Fuyu classes (Mantis' own MFuyu classes are not on the hub); prompts are "
            "built in Mantis' layout by lit_tv/fuyu.py; no revision pin",
        ),
    ),
)

_QWEN = (
    "Qwen2-VL-7B instead of Qwen-VL-7B: Qwen-VL's remote code does not load in transformers 5; "
    "Qwen2-VL is its successor. Another model: its accuracies are not comparable with the paper's Qwen-VL "
    "column, only the ordering of 0-shot, ICL and the method is"
)
_VILA = (
    "LLaVA-1.5-7B instead of VILA-1.5-8B: VILA has no transformers 5 class; LLaVA-1.5 (which VILA builds "
    "on, and a model of the cross-modal paper) stands in. Another model: its accuracies are not comparable "
    "with the paper's VILA column, only the ordering of 0-shot, ICL and MTV is"
)

DEVIATIONS: dict[str, dict[str, str]] = {
    **{
        f"{benchmark}/{method}_qwen2-vl-7b.yaml": {f"{M}model.name": _QWEN}
        for benchmark in MTV_BENCHMARKS
        for method in ("mtv", "icl")
    },
    **{
        f"{benchmark}/{method}_llava-1.5-7b.yaml": {f"{M}model.name": _VILA}
        for benchmark in MTV_BENCHMARKS
        for method in ("mtv", "icl")
    },
    **{
        f"{benchmark}/{method}_qwen2-vl-7b.yaml": {f"{M}model.name": _QWEN}
        for benchmark in ("vizwiz", "okvqa")
        for method in ("fv", "vtv")
    },
}


def _test_size_deviation(config: str) -> None:
    DEVIATIONS.setdefault(config, {})[f"{D}test_size"] = (
        "null: one episode per official test image of the held-out classes (see the note on test episodes); "
        "`--data.init_args.test_size 5076` (CUB: 5023) draws the reference's count"
    )


for _benchmark in ("flowers", "cub"):
    for _method in ("mtv", "icl"):
        for _model in ("llava-1.5-7b", "idefics2-8b", "qwen2-vl-7b"):
            _test_size_deviation(f"{_benchmark}/{_method}_{_model}.yaml")
_test_size_deviation("cub/transfer_idefics2-8b.yaml")
for _model in ("llava-1.5-7b", "idefics2-8b", "qwen2-vl-7b"):
    DEVIATIONS.setdefault(f"cross_modal/mtv_{_model}.yaml", {})[f"{D}train_size"] = (
        "20: the released cross-modal val files hold 30 records per task, so 100 REINFORCE queries of one task "
        "do not exist; 10 records stay for the demonstrations. Not a paper result, so nothing to compare"
    )


# ---- reading configs against the table ------------------------------------------------------------


def config_parts(path: Path) -> tuple[str, str, str]:
    """(benchmark, method, model) of ``configs/<benchmark>/<method>_<model>.yaml``."""
    method, _, model = path.stem.rpartition("_")
    return path.parent.name, method, model


def matching_rules(path: Path) -> list[Rule]:
    """The rules of one config, in table order; a config no benchmark x method rule covers is refused."""
    benchmark, method, model = config_parts(path)
    rules = [rule for rule in RULES if rule.matches(benchmark, method, model)]
    if not any(rule.benchmark != "*" and rule.method != "*" for rule in rules):
        raise KeyError(f"{path}: no rule for ({benchmark}, {method}) in lit_tv.reproduction.RULES")
    return rules


def expected_settings(path: Path) -> dict[str, Any]:
    """The papers' values for one config (later rules win)."""
    return {key: value for rule in matching_rules(path) for key, value in rule.settings.items()}


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """A nested config as dotted keys (lists stay values)."""
    if not isinstance(tree, dict):
        return {prefix.rstrip("."): tree}
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        flat.update(flatten(value, f"{prefix}{key}."))
    return flat


def drift(path: Path, effective: dict[str, Any]) -> list[str]:
    """How a config's effective values differ from the paper's, beyond its listed deviations (empty: faithful).

    A listed deviation whose value now equals the paper's is reported too: the table would be stale.
    """
    name = str(path.relative_to(CONFIGS))
    listed = DEVIATIONS.get(name, {})
    problems = []
    for key, wanted in expected_settings(path).items():
        found = effective.get(key, "<missing>")
        if key in listed and found == wanted:
            problems.append(f"{name}: {key} = {found!r} equals the paper now; drop its listed deviation")
        elif key not in listed and found != wanted:
            problems.append(f"{name}: {key} = {found!r}, the paper's setting is {wanted!r} (or list a deviation)")
    problems += [
        f"{name}: deviation listed for {key}, which the table does not set"
        for key in listed
        if key not in expected_settings(path)
    ]
    return problems


# ---- the document -----------------------------------------------------------------------------------


def _deviations(config: str) -> list[str]:
    keys = [f"`{key.removeprefix(M).removeprefix(D)}`: {reason}" for key, reason in DEVIATIONS.get(config, {}).items()]
    return keys + [note for rule in matching_rules(CONFIGS / config) for note in rule.notes]


def render_document() -> str:
    """docs/reproducing.md: one row per target, its configs and every deviation of those configs."""
    lines = [
        "# Reproducing the papers",
        "",
        "Generated by `python -m lit_tv.reproduction` from `lit_tv/reproduction.py`; "
        "`tests/test_fidelity.py` checks every config against the same table. Paths are under `configs/`.",
        "",
    ]
    for paper in (MTV_PAPER, CROSS_MODAL_PAPER):
        lines += [f"## {paper}", "", "| result | paper reports | run | deviations |", "| --- | --- | --- | --- |"]
        for target in (t for t in TARGETS if t.paper == paper):
            run = "<br>".join(f"`{config}`" for config in target.configs)
            if target.how:
                run += f"<br>{target.how}"
            notes = list(dict.fromkeys(note for config in target.configs for note in _deviations(config)))
            lines.append(f"| {target.result} | {target.reported} | {run} | {'<br>'.join(notes) or 'none'} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Write (default) or ``--check`` docs/reproducing.md."""
    text = render_document()
    if "--check" in (argv if argv is not None else sys.argv[1:]):
        if not DOC.is_file() or DOC.read_text() != text:
            raise SystemExit(f"{DOC} is out of date: run python -m lit_tv.reproduction")
        return
    DOC.parent.mkdir(exist_ok=True)
    write_atomic(DOC, text)


if __name__ == "__main__":
    main()
