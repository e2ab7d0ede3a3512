"""The papers' settings as data: the values every config under configs/ must hold (`RULES`) and each listed
deviation with its reason and its switch (`DEVIATIONS`). lit_tv/paper/reproduction.py checks configs against them
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
    f"{M}selection_from": "train_split",  # mtv_eval.py scores the final masks on train_dataset[:50]
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
_TWO_WAY = {
    f"{D}shots": 1,
    f"{D}test_shots": 1,
    f"{M}max_new_tokens": 20,
    f"{D}option_match": "exact",
    f"{D}episodes": ".",
}
# the reference's shots run together, nothing after an answer (MTV/preprocess.py format_vizwiz / format_okvqa)
_ANSWER_FORMATS = {"vizwiz": " {answer}", "okvqa": "{answer}"}
_FIRST_RECORDS = (
    "the final heads are scored on the first 50 records of the official train file (VizWiz: annotations, OK-VQA: "
    "questions), in its order "
    "(`selection_from: train_split`); the reference reads them from its own jsonl, whose preprocessing it does "
    "not release, so that its order is the official file's is assumed, not checked. The first 50 of the seeded "
    "REINFORCE queries instead: `--model.init_args.selection_from reinforce_queries`",
)
_FIXED_EPISODES = (
    "episodes: the reference's own files (MTV/data/flower/flower_{train,test}.json, MTV/data/cub/cub_*.json) "
    "placed in the dataset root; what remains different: each episode's option order is one seeded coin "
    "flip (the reference flips anew at every use), and support episodes are drawn once and apart from the "
    "REINFORCE queries (the reference samples each iteration from the whole train file); the MTV configs score "
    "the final heads on the train file's first 50 episodes, as the reference (`selection_from: train_split`; "
    "their queries show 5 Flowers / 2 CUB classes). Without the files, `--data.init_args.episodes null "
    "--data.init_args.test_size null` draws seeded episodes over a seeded half of the classes "
    "(`test_class_fraction`): another test set, not comparable",
)
# the layer the released cross-modal code fixes per model (the paper instead searches a grid on val)
RELEASED_LAYERS = {"llava-1.5-7b": 15, "idefics2-8b": 16, "mantis-fuyu": 23}
# Cross-modal (paper + g-luo/task_vectors_are_cross_modal): every val record is one prompt of the vectors and
# one query of the layer search; results are means over seeds 1-3 (xpatch_evaluate.py: SEED_START = 1; lit_tv's
# sampler is its own, so the same seed values draw other demonstrations than the reference's).
_CROSS_MODAL_SIZES = {
    f"{D}shots": 5,
    f"{D}seeds": [1, 2, 3],
    f"{D}support_size": None,
    f"{D}val_size": None,
    f"{D}train_size": 0,
    f"{D}overlap": True,
    f"{D}ignore_case": False,
    f"{M}max_new_tokens": 1,
}
_CROSS_MODAL_DATA = {**_CROSS_MODAL_SIZES, f"{M}model.image_width": 224, f"{M}model.quantization": "nf4"}
# xPatch: the mean of text demonstrations' states at the last shot's delimiter replaces an image query's state
_XPATCH = {
    **_CROSS_MODAL_DATA,
    f"{D}shot_modality": "text",
    f"{D}query_modality": "image",
    f"{M}source": "exemplars",
    f"{M}position": "last_shot",
    f"{M}mode": "replace",
}

_VILA_WRAP = (
    "the reference runs VILA-1.5 inside its llama_3 chat template (system prompt, header tokens), the whole "
    "few-shot prompt one user turn, each `<image>` followed by a newline; LLaVA-1.5 runs in its own "
    "`USER: ... ASSISTANT:` form with the same `<image>\\n` (`model.prompt_wrap`, `model.image_placeholder`): "
    "the same shape of wrapping, not VILA's tokens or system prompt. The bare prompt: "
    "`--model.init_args.model.prompt_wrap null --model.init_args.model.image_placeholder null`",
)
QWEN_VL_PIXELS = 448 * 448  # Qwen-VL's input size: 256 image tokens; Qwen2-VL makes one token per 28 x 28 pixels
_QWEN_BUDGET = (
    "Qwen-VL sees every image squashed to 448 x 448 (256 tokens); Qwen2-VL at native resolution gives a VizWiz "
    "image 1.6-2.7k tokens, so `model.processor_kwargs.max_pixels: 200704` (448 x 448) caps it at 256 tokens "
    "of 28 x 28 pixels, keeping each image's aspect ratio (so mostly somewhat fewer than 256). Native "
    "resolution: `--model.init_args.model.processor_kwargs '{}'`",
)
# The hub revisions the cross-modal reference pins: g-luo/task_vectors_are_cross_modal configs/models/
# {llava,idefics2,mantis,vicuna,mistral}.yaml `model_revision` (commit 25c7463), which src/xpatch_helpers.py
# load_hf_model passes to every from_pretrained (model and processor / tokenizer).
CROSS_MODAL_REVISIONS = {  # by the configs' model name
    "llava-1.5-7b": "a272c74b2481d8aff3aa6fc2c4bf891fe57334fb",
    "idefics2-8b": "2c42686c57fe21cf0348c9ce1077d094b72e7698",
    "mantis-fuyu": "ea76e7446341b399d9af2d7af390abb83fda6b28",
}
# LLM -> VLM: each VLM's base LLM and its pin. The reference runs Vicuna -> LLaVA-1.5 and Mistral -> Idefics2
# (README); Persimmon -> Mantis-Fuyu is lit_tv's, unpinned.
BASE_LLMS = {
    "llava-1.5-7b": ("lmsys/vicuna-7b-v1.5", "3321f76e3f527bd14065daf69dad9344000a201d"),
    "idefics2-8b": ("mistralai/Mistral-7B-v0.1", "7231864981174d9bee8c7687c24c8344414eae6b"),
    "mantis-fuyu": ("adept/persimmon-8b-base", None),
}
_NOT_A_REFERENCE_RUN = (
    "not a run of the paper or the released scripts (they patch Vicuna -> LLaVA-1.5 and Mistral -> Idefics2 "
    "only): Fuyu's base LLM Persimmon-8B, unpinned as the reference names no revision for it",
)
_MTV_UNPINNED = (
    "no hub revision pinned, as in the MTV reference: its MTV/mtv_utils.py load_model reads Qwen/Qwen-VL, "
    "Efficient-Large-Model/Llama-3-VILA1.5-8b and HuggingFaceM4/idefics2-8b without a `revision`, so its "
    "numbers belong to whatever the hub served then (the cross-modal reference's Idefics2 pin: "
    "`--model.init_args.model.revision 2c42686c57fe21cf0348c9ce1077d094b72e7698`)",
)

RULES: tuple[Rule, ...] = (
    # ---- MTV paper ----
    *(Rule(benchmark, "mtv", "*", {**_REINFORCE, f"{M}selection": "best_of_samples"}) for benchmark in MTV_BENCHMARKS),
    Rule("vizwiz", "mtv", "*", {**_VQA, f"{D}shots": 4, f"{D}test_shots": 0}, _FIRST_RECORDS),
    Rule("okvqa", "mtv", "*", {**_VQA, f"{D}shots": 4, f"{D}test_shots": 0}, _FIRST_RECORDS),
    Rule("flowers", "mtv", "*", {**_TWO_WAY, f"{D}test_size": 5076}, _FIXED_EPISODES),
    Rule("cub", "mtv", "*", {**_TWO_WAY, f"{D}test_size": 5023}, _FIXED_EPISODES),
    Rule("vizwiz", "icl", "*", {**_VQA, f"{D}test_shots": 4}),
    Rule("okvqa", "icl", "*", {**_VQA, f"{D}test_shots": 4}),
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
            _FIRST_RECORDS,
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
    *(Rule(benchmark, "*", "*", {f"{D}answer_format": answer}) for benchmark, answer in _ANSWER_FORMATS.items()),
    # the reference cuts the answers of every model but Qwen-VL at the first '.' and newline
    *(
        Rule(benchmark, "*", model, {f"{D}answer_cut": model != "qwen2-vl-7b"})
        for benchmark in ("vizwiz", "okvqa")
        for model in ("llava-1.5-7b", "idefics2-8b", "qwen2-vl-7b")
    ),
    # ---- cross-modal paper ----
    Rule("cross_modal", "xpatch", "*", {**_XPATCH, f"{M}layer": None}),
    Rule("cross_modal", "llm_to_vlm", "*", {**_XPATCH, f"{M}layer": None, f"{M}extractor.quantization": "nf4"}),
    *(
        Rule("cross_modal", "xpatch_released", model, {**_XPATCH, f"{M}layer": layer})
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
    ),
    *(Rule(benchmark, "*", "*", {f"{M}model.revision": None}, _MTV_UNPINNED) for benchmark in MTV_BENCHMARKS),
    *(Rule("cross_modal", "*", model, {f"{M}model.revision": pin}) for model, pin in CROSS_MODAL_REVISIONS.items()),
    *(
        Rule(
            "cross_modal",
            "llm_to_vlm",
            model,
            {f"{M}extractor.name": name, f"{M}extractor.revision": pin},
            () if pin else _NOT_A_REFERENCE_RUN,
        )
        for model, (name, pin) in BASE_LLMS.items()
    ),
    # the MTV reference keeps only heads with sigmoid(theta) >= 0.8 in Idefics2's final sampling
    *(
        Rule(benchmark, "mtv", "idefics2-8b", {f"{M}selection": "pruned_best_of_samples", f"{M}threshold": 0.8})
        for benchmark in (*MTV_BENCHMARKS, "cross_modal")
    ),
    *(
        Rule(
            benchmark,
            "*",
            "llava-1.5-7b",
            {
                f"{M}model.name": "Efficient-Large-Model/Llama-3-VILA1.5-8B",
                f"{M}model.image_placeholder": "<image>\n",
                f"{M}model.prompt_wrap": "USER: {prompt} ASSISTANT:",
            },
            _VILA_WRAP,
        )
        for benchmark in MTV_BENCHMARKS
    ),
    *(
        Rule(
            benchmark,
            "*",
            "qwen2-vl-7b",
            {f"{M}model.name": "Qwen/Qwen-VL", f"{M}model.processor_kwargs.max_pixels": QWEN_VL_PIXELS},
            _QWEN_BUDGET,
        )
        for benchmark in MTV_BENCHMARKS
    ),
    Rule("cross_modal", "*", "llava-1.5-7b", {f"{M}model.name": "llava-hf/llava-1.5-7b-hf"}),
    Rule(
        "cross_modal",
        "*",
        "qwen2-vl-7b",
        {f"{M}model.name": "Qwen/Qwen2-VL-7B", f"{M}model.revision": None},
        ("not a model of the cross-modal paper: an extra architecture (M-RoPE), so no reference revision to pin",),
    ),
    Rule(
        "cross_modal",
        "*",
        "mantis-fuyu",
        {f"{M}model.name": "TIGER-Lab/Mantis-8B-Fuyu", f"{M}model.dtype": "float16"},
        (
            "loaded with transformers' Fuyu classes (Mantis' own MFuyu classes are not on the hub) from the "
            "reference's pinned revision; prompts are built in Mantis' layout by lit_tv/model/fuyu.py",
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

# every MTV-paper config of a substituted model names the substitution (the cross-modal paper runs LLaVA-1.5 itself)
DEVIATIONS: dict[str, dict[str, str]] = {
    f"{benchmark}/{method}_{model}.yaml": {f"{M}model.name": reason}
    for model, reason in (("qwen2-vl-7b", _QWEN), ("llava-1.5-7b", _VILA))
    for benchmark in MTV_BENCHMARKS
    for method in ("mtv", "icl", "fv", "vtv")
    if method in ("mtv", "icl") or (model == "qwen2-vl-7b" and benchmark in ("vizwiz", "okvqa"))  # FV, VTV: Qwen on VQA
}


for _model in ("llava-1.5-7b", "idefics2-8b", "qwen2-vl-7b"):
    DEVIATIONS.setdefault(f"cross_modal/mtv_{_model}.yaml", {}).update(
        {
            f"{D}train_size": "20: the released cross-modal val files hold 30 records per task, so 100 REINFORCE "
            "queries of one task do not exist; 10 records stay for the demonstrations. Not a paper result, so "
            "nothing to compare",
            f"{M}selection_from": "reinforce_queries: a task's 30 val records are fewer than the 50 first records "
            "the reference scores its final heads on; they are scored on the 20 REINFORCE queries",
        }
    )
