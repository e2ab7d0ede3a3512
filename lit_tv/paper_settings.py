"""The papers' settings as data: the values every config under configs/ must hold (`RULES`) and each listed
deviation with its reason and its switch (`DEVIATIONS`). lit_tv/reproduction.py checks configs against them
and renders docs/reproducing.md."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
