"""The papers' results that lit_tv reproduces: each table or figure row, the number the paper reports for it
and the configs (under configs/) that run it. lit_tv/paper/reproduction.py renders them with every deviation of
those configs into docs/reproducing.md.

Numbers are transcribed from the papers only, each cell naming its paper version (arXiv id), table and source; a row
whose numbers have not been found says so with a TODO naming its table and where it was looked for, never a guess.
tests/paper/test_reference_values.py checks every number here against a second, hand-written transcription.
"""

from __future__ import annotations

from dataclasses import dataclass

MTV_PAPER = "MTV (Huang et al., NeurIPS 2024; the numbers as arXiv 2406.15334 prints them)"
CROSS_MODAL_PAPER = (
    'Cross-modal task vectors (Luo, Darrell & Bar; the numbers of arXiv 2410.22330v1, "Task Vectors are '
    'Cross-Modal", not of the ICML 2025 version, whose tables may differ)'
)


@dataclass(frozen=True)
class Target:
    """One table or figure row of a paper that lit_tv reproduces, and the configs that run it."""

    paper: str
    result: str
    configs: tuple[str, ...]
    how: str = ""
    reported: str = ""


def _per_model(
    pattern: str, models: tuple[str, ...] = ("qwen2-vl-7b", "idefics2-8b", "llava-1.5-7b")
) -> tuple[str, ...]:
    return tuple(pattern.format(model=model) for model in models)


CM_MODELS = ("llava-1.5-7b", "idefics2-8b", "mantis-fuyu")
_XPATCH = _per_model("cross_modal/xpatch_{model}.yaml", CM_MODELS)
_CM_ICL = _per_model("cross_modal/icl_{model}.yaml", CM_MODELS)

# Where the numbers were read. The cross-modal paper's numbers are those of its first arXiv version ("Task
# Vectors are Cross-Modal", 2410.22330v1), whose tables are extracted as text in one stored copy; the ICML 2025
# version ("Vision-Language Models Create Cross-Modal Task Representations") may differ and was not found
# beyond its first pages. Its cells are six-task averages (the tables' Avg. column), accuracy in [0, 1].
LUO_V1 = (
    "arXiv 2410.22330v1, tables as extracted in github.com/deep-diver/ai-paper-reviewer "
    "content/paper-reviews/2410.22330/index.md (commit 3f5c048)"
)
# The MTV paper's arXiv text (2406.15334), whose every cell here was checked against it; accuracy in %. Its appendix
# numbers the supplement's tables on from the main text's: the NeurIPS 2024 supplement calls Tables 6a / 6b
# Tables 1a / 1b and gives only two of Table 7b's numbers.
HUANG_ARXIV = "arXiv 2406.15334"
HUANG_APPENDIX = "arXiv 2406.15334, appendix (the NeurIPS 2024 supplement's Tables 1a / 1b are its 6a / 6b)"

TARGETS: tuple[Target, ...] = (
    Target(
        MTV_PAPER,
        "Table 2a, VizWiz: 0-shot / 4-shot ICL / MTV (Qwen-VL, Idefics2, VILA)",
        _per_model("vizwiz/icl_{model}.yaml") + _per_model("vizwiz/mtv_{model}.yaml"),
        "0-shot: the ICL config with `--data.init_args.test_shots 0`",
        f"35.2/42.0/45.6, 31.3/40.8/52.5, 28.0/39.3/55.2 (Table 2a; {HUANG_ARXIV})",
    ),
    Target(
        MTV_PAPER,
        "Table 2a, OK-VQA: 0-shot / 4-shot ICL / MTV (Qwen-VL, Idefics2, VILA)",
        _per_model("okvqa/icl_{model}.yaml") + _per_model("okvqa/mtv_{model}.yaml"),
        "0-shot: the ICL config with `--data.init_args.test_shots 0`",
        f"58.6/62.0/62.0, 52.4/51.5/53.0, 32.8/35.6/40.6 (Table 2a; {HUANG_ARXIV})",
    ),
    Target(
        MTV_PAPER,
        "Flowers / CUB: 1-shot ICL -> MTV + 1-shot (Idefics2; other models as extras)",
        _per_model("flowers/icl_{model}.yaml")
        + _per_model("flowers/mtv_{model}.yaml")
        + _per_model("cub/icl_{model}.yaml")
        + _per_model("cub/mtv_{model}.yaml"),
        reported=f"Idefics2: 82.8 -> 83.8 / 88.7 -> 89.8 (Table 2b; {HUANG_ARXIV})",
    ),
    Target(
        MTV_PAPER,
        "MTV + ICL (MTV heads with 4 shots in the prompt)",
        ("vizwiz/mtv_idefics2-8b.yaml",),
        "`lit-tv test` of the MTV config with `--data.init_args.test_shots 4`",
        "not in the paper: its only MTV + ICL numbers are MTV + 1-shot ICL on Flowers / CUB (Table 2b, the "
        "Flowers / CUB row); none with 4 VQA shots in the prompt (read: the results section, Tables 2, 3, 5-8)",
    ),
    Target(
        MTV_PAPER,
        "Flowers -> CUB: heads chosen on Flowers, means recomputed on CUB (the paper's result is "
        "VILA's; here Idefics2 runs it, so the numbers are not comparable, only the transfer itself)",
        ("flowers/mtv_idefics2-8b.yaml", "cub/transfer_idefics2-8b.yaml"),
        reported=f"VILA-1.5-8B, Flowers / CUB: 1-shot ICL 87.4 / 88.4, MTV-Flowers + 1-shot ICL 89.3 / 89.9 "
        f"(Table 6a; {HUANG_APPENDIX})",
    ),
    Target(
        MTV_PAPER,
        "Baselines on Qwen-VL: Visual Task Vectors, Function Vectors (VizWiz / OK-VQA)",
        (
            "vizwiz/vtv_qwen2-vl-7b.yaml",
            "okvqa/vtv_qwen2-vl-7b.yaml",
            "vizwiz/fv_qwen2-vl-7b.yaml",
            "okvqa/fv_qwen2-vl-7b.yaml",
        ),
        reported=f"VTV 37.0 / 58.9; FV 36.4 / 59.0 ({HUANG_ARXIV}, one of main Tables 1-4: table number not recorded)",
    ),
    Target(
        MTV_PAPER,
        "Accuracy vs shots per iteration and vs iterations",
        ("vizwiz/mtv_idefics2-8b.yaml",),
        "sweep `--data.init_args.shots` and `--data.init_args.support_size` of the MTV config",
    ),
    Target(
        MTV_PAPER,
        "Supplement: 4 shots, 1 iteration (the means from one 4-shot prompt); the paper's numbers are "
        "VILA-1.5-8B's, run here by its stand-in LLaVA-1.5",
        ("vizwiz/mtv_llava-1.5-7b.yaml", "okvqa/mtv_llava-1.5-7b.yaml"),
        "`--data.init_args.shots 4 --data.init_args.support_size 1`",
        f"VizWiz / OK-VQA: 0-shot 28.0 / 32.8, 4-shot ICL 39.3 / 35.6, MTV 4 shots x 1 iteration 57.4 / 40.0 "
        f"(Table 6b; {HUANG_APPENDIX})",
    ),
    Target(
        MTV_PAPER,
        "Supplement: mean (standard deviation) over 5 seeds of the example order; the paper's numbers are "
        "Qwen-VL's, run here by its stand-in Qwen2-VL",
        ("vizwiz/mtv_qwen2-vl-7b.yaml",),
        "five fits and tests with `--seed_everything N --data.init_args.seed N`, N = 0 ... 4; shots x iterations "
        "by `--data.init_args.shots` and `--data.init_args.support_size`",
        "MTV 4 shots x 100 iterations 45.2 (0.7), 4 x 200 48.3 (0.4), 8 x 100 50.4 (0.9), 8 x 200 51.8 (0.6); "
        f"4-shot ICL 41.3 (0.8), 8-shot ICL 42.9 (1.5) (Table 7b, dataset not named in the table; "
        f"{HUANG_APPENDIX}; the supplement gives two of these numbers)",
    ),
    Target(
        CROSS_MODAL_PAPER,
        "No Context: the image query alone (no demonstrations, no vector)",
        _CM_ICL,
        "`--data.init_args.test_shots 0` on the ICL configs",
        f"LLaVA-1.5 0.00, Mantis-Fuyu 0.00, Idefics2 0.01 (Table 3; {LUO_V1})",
    ),
    Target(
        CROSS_MODAL_PAPER,
        "Text ICL: xBase (text shots + image query) / xPatch (text vector -> image query), "
        "layer by the paper's validation grid search",
        _CM_ICL + _XPATCH,
        reported="xBase / xPatch: LLaVA-1.5 0.18 / 0.32, Mantis-Fuyu 0.09 / 0.31, Idefics2 0.18 / 0.51 "
        f"(Table 3; {LUO_V1})",
    ),
    Target(
        CROSS_MODAL_PAPER,
        "xPatch at the released code's fixed layers (LLaVA 15, Idefics2 16, Mantis-Fuyu 23; "
        "the released pipeline never runs the grid)",
        _per_model("cross_modal/xpatch_released_{model}.yaml", CM_MODELS),
        reported="none of its own: the paper reports one xPatch per model (the row above)",
    ),
    Target(
        CROSS_MODAL_PAPER,
        "Text -> text patching (text vector -> text query)",
        _XPATCH,
        "`--data.init_args.query_modality text` on the xPatch configs",
        f"LLaVA-1.5 0.59, Mantis-Fuyu 0.34, Idefics2 0.65 (Table 8; {LUO_V1})",
    ),
    Target(
        CROSS_MODAL_PAPER,
        "Image ICL: Base / Patch",
        _XPATCH,
        "`--data.init_args.shot_modality image` on the ICL and xPatch configs",
        f"Base / Patch: LLaVA-1.5 - (no image ICL), Mantis-Fuyu 0.18 / 0.20, Idefics2 0.43 / 0.31 (Table 3; {LUO_V1})",
    ),
    Target(
        CROSS_MODAL_PAPER,
        "Image -> text transfer",
        _XPATCH,
        "`--data.init_args.shot_modality image --data.init_args.query_modality text`",
        f"LLaVA-1.5 - (no image ICL), Mantis-Fuyu 0.25, Idefics2 0.42 (Table 8; {LUO_V1})",
    ),
    Target(
        CROSS_MODAL_PAPER,
        "Instruction vectors / ensemble of instruction and exemplars",
        _XPATCH,
        "`--model.init_args.source instruction` / `ensemble` (the reference's instructions)",
        "no table: a figure and two claims relative to the exemplar vector, which are its result: an instruction "
        "vector does about as well as an exemplar vector from 5 examples, and the ensemble of the two improves on "
        "the 5-example exemplar vector by 18% (arXiv 2410.22330v1, text beside the figure)",
    ),
    Target(
        CROSS_MODAL_PAPER,
        "Figure 8: the ensemble from n = 5 ... 30 random 5-shot prompts, layer 16, case-insensitive",
        ("cross_modal/ensemble_idefics2-8b.yaml",),
        "sweep `--data.init_args.support_size` 30 ... 180 (6 tasks x n)",
        "a figure: read the curve off it",
    ),
    Target(
        CROSS_MODAL_PAPER,
        "LLM -> VLM: vectors from the base LLM patched into the VLM",
        _per_model("cross_modal/llm_to_vlm_{model}.yaml", CM_MODELS),
        reported="VLM -> VLM / LLM -> VLM xPatch: LLaVA-1.5 (from Vicuna) 0.32 / 0.37, Idefics2 (from Mistral) "
        f"0.51 / 0.52; Mantis-Fuyu: none, not run by the paper (Table 4, per task appendix Table 7; {LUO_V1})",
    ),
    Target(
        CROSS_MODAL_PAPER,
        "Random baseline: the majority answer of each query's own 5 demonstrations",
        ("cross_modal/majority_label.yaml",),
        "`--model.init_args.source task`: each task's most frequent val answer instead",
        f"0.14 (Table 3's Random row; {LUO_V1})",
    ),
    Target(
        CROSS_MODAL_PAPER,
        "Idefics2 chat ablation (User / Assistant in place of Q / A)",
        ("cross_modal/xpatch_idefics2-8b.yaml",),
        "`--data.init_args.chat roles` (`template`: each example a turn of Idefics2's own chat template)",
        "No Context 0.01, Image ICL Base 0.44, Text ICL xBase 0.15, xPatch 0.54 (Table 6, the template ablation; "
        f"{LUO_V1})",
    ),
    Target(
        CROSS_MODAL_PAPER,
        "Extras, not results of either paper: Qwen2-VL on the cross-modal tasks, MTV there",
        ("cross_modal/icl_qwen2-vl-7b.yaml",)
        + _per_model("cross_modal/mtv_{model}.yaml", ("llava-1.5-7b", "idefics2-8b", "qwen2-vl-7b")),
        reported="none (not in either paper)",
    ),
)
