"""Side-by-side timings of lit_tv's paths against the reference way of computing, as ratios.

    python benchmarks/speed.py                      # tiny LLaVA on CPU
    python benchmarks/speed.py --model llava llava-1.5-small-random --threads 1   # 43- and 600-token prompts
    python benchmarks/speed.py --model lit_tv/shapes-toy
    python benchmarks/speed.py --model llava llava-1.5-small-random --sections afg --threads 1   # new rows only
    python benchmarks/speed.py --model llava-7b-random --device cuda --dtype bfloat16 --json speed.json
    bash benchmarks/gpu.sh OUT_DIR                  # the same on a GPU in one command (see there)

(a) patched vs unpatched generation, (b) REINFORCE step (32 samples): MTV's step, one forward with the
samples as copies of the last token after the shared prefix, vs one batch-1 forward per sample (the
reference implementation's way), one plain batched forward, the prefix cached and the samples a second
call over it (cache shared, or copied per sample), and one query forward, (c) mean-activation extraction
vs a plain forward of the same episodes, (d) MTV zero-shot query vs 4/8/16-shot ICL queries, (e) MTV's
random-heads control (20 head sets, one-token answers): a generate of the batch per head set vs each
query's prefix run once with a copy of its last token per head set (`answers_over_one_prefix`), (f) the
same control with `--new-tokens` answers: a generate per head set vs the sets' rows generated together over
each query's cached prefix, and its peak memory against one query's generate, (g) the test loop (prompts
built per batch, batches by prompt length, generated and decoded) vs plain `model.generate` over the same
8 queries of 0-2 shots in their given order, prompts built beforehand. `--sections` picks some of them.
Several models are measured one after another in one run, their ratios then printed side by side
(e.g. the tiny zoo LLaVA's 43-token queries and llava-1.5-small-random's 600-token ones: LLaVA-1.5's
layout at 1/16 of its widths). Every time is a median over rounds, measured in this run; a ratio divides
times round by round (a round runs the compared works back to back) and shows its median and min-max.
Peak memory is the working memory of one call: bytes allocated above what was allocated before it
(weights and inputs excluded), from CUDA's allocator on a GPU, and on CPU the peak of live tensor
storage bytes created inside the call (counted op by op, in a separate untimed pass: CPU allocators do
not report a peak; the count matches what the profiler sees the allocator hand out, tested).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import cast

import torch
import transformers
from PIL import Image
from timing import Timer, ratios  # benchmarks/timing.py, beside this script
from transformers import BatchFeature, GenerationMixin

from lit_tv.data.loaders import by_length
from lit_tv.episodes import Episode, Example
from lit_tv.files import write_atomic
from lit_tv.interventions.hooks import RowsAlong, record_heads, replace_heads
from lit_tv.interventions.shared_prefix import fork_last_token, repeat_rows
from lit_tv.methods.random_heads import answers_over_one_prefix, random_head_sets
from lit_tv.model.vlm import FrozenVLM
from lit_tv.prompts import PromptTemplate
from lit_tv.testing.zoo import BENCHMARK_MODELS, ZOO, save_zoo_model

TEMPLATE = PromptTemplate(query="{images}Question: {text}\nAnswer:", answer=" {answer}\n")


def load(name: str, device: str, dtype: str) -> FrozenVLM:
    """A zoo model built in memory (BENCHMARK_MODELS directly on the device), or any id/path via from_pretrained."""
    if name in BENCHMARK_MODELS:
        torch.manual_seed(0)
        default = torch.get_default_dtype()
        torch.set_default_dtype(getattr(torch, dtype))
        try:
            with torch.device(device):
                model, processor = BENCHMARK_MODELS[name]()
        finally:
            torch.set_default_dtype(default)
        return FrozenVLM(model, processor, name=name)
    if name in ZOO:
        name = str(save_zoo_model(name, Path(tempfile.mkdtemp()) / name))
    return FrozenVLM.from_pretrained(name, dtype=dtype, device=device)


def episode(shots: int, rng: torch.Generator) -> Episode:
    def example(index: int) -> Example:
        colour = tuple(int(c) for c in torch.randint(0, 256, (3,), generator=rng))
        return Example(f"What is shown in picture {index}?", (Image.new("RGB", (64, 48), colour),), ("a colour",))

    return Episode(query=example(shots), shots=tuple(example(i) for i in range(shots)))


SECTIONS = "abcdefg"


def run(
    vlm: FrozenVLM,
    timer: Timer,
    batch: int,
    new_tokens: int,
    samples: int = 32,
    draws: int = 20,
    sections: str = SECTIONS,
) -> dict[str, dict]:
    layout, rng = vlm.layout, torch.Generator().manual_seed(0)
    means = torch.randn(layout.num_layers, layout.num_heads, layout.head_dim, generator=rng) * 0.1
    selected = torch.zeros(layout.num_layers, layout.num_heads, dtype=torch.bool)
    selected.view(-1)[torch.randperm(selected.numel(), generator=rng)[: max(1, selected.numel() // 50)]] = True
    masks = torch.rand(samples, layout.num_layers, layout.num_heads, generator=rng) < 0.27
    zero_shot = [episode(0, rng) for _ in range(batch)]
    queries = vlm.build_inputs(zero_shot, TEMPLATE)
    single = vlm.build_inputs(zero_shot[:1], TEMPLATE)
    results: dict[str, dict] = {}

    def generate(patched: bool) -> None:
        if not patched:
            vlm.generate(queries, max_new_tokens=new_tokens)
            return
        with replace_heads(vlm, means, selected, policy="every_token"):
            vlm.generate(queries, max_new_tokens=new_tokens)

    if "a" in sections:
        results |= timer(
            {"a_generation_unpatched": lambda: generate(False), "a_generation_patched": lambda: generate(True)}
        )

    if "b" in sections:
        _reinforce(vlm, timer, single, means, masks, results)
    support = vlm.build_inputs([episode(4, rng) for _ in range(batch)], TEMPLATE)
    queries_by_shots = {
        shots: vlm.build_inputs([episode(shots, rng) for _ in range(batch)], TEMPLATE) for shots in (4, 8, 16)
    }

    def plain_forward() -> None:
        vlm.last_logits(support)

    def mean_activations() -> None:
        with record_heads(vlm) as heads:
            vlm.last_logits(support)
        heads.value.float().sum(0)

    if "c" in sections:
        results |= timer({"c_forward_plain": plain_forward, "c_mean_activations": mean_activations})

    by_shots: dict[str, Callable[[], object]] = {"d_query_mtv_0shot": lambda: generate(True)}
    for shots, inputs in queries_by_shots.items():
        by_shots[f"d_query_icl_{shots}shot"] = partial(vlm.generate, inputs, max_new_tokens=new_tokens)
    if "d" in sections:
        results |= timer(by_shots)
    head_sets = random_head_sets(selected, draws, seed=0, tasks=["benchmark"])  # as MTV's control draws them

    def control_by_generate(tokens: int) -> None:  # a generate of the batch per head set
        for heads in head_sets:
            with replace_heads(vlm, means, heads):
                vlm.generate(queries, max_new_tokens=tokens)

    def control_over_one_prefix(tokens: int) -> None:  # what MTV's control runs
        answers_over_one_prefix(vlm, TEMPLATE, zero_shot, means, head_sets, max_new_tokens=tokens)

    if "e" in sections:
        results |= timer(
            {
                "e_control_generate": partial(control_by_generate, 1),
                "e_control_one_prefix": partial(control_over_one_prefix, 1),
            }
        )
    if "f" in sections:
        results |= timer(
            {
                "f_control_generate": partial(control_by_generate, new_tokens),
                "f_control_one_prefix": partial(control_over_one_prefix, new_tokens),
                "f_generate_one_query": partial(vlm.generate, single, max_new_tokens=new_tokens),
            }
        )
    if "g" in sections:
        results |= _test_loop(
            vlm, timer, [episode(shots, rng) for shots in (0, 1, 0, 2, 0, 1, 0, 2)], batch, new_tokens
        )
    return results


def _test_loop(vlm: FrozenVLM, timer: Timer, episodes: list[Episode], batch: int, new_tokens: int) -> dict[str, dict]:
    """(g): the test loop's answers (lit_tv's batches: prompts built, generated, decoded) vs plain `model.generate`
    over the same queries in their given order, prompts built beforehand."""
    model = cast(GenerationMixin, vlm.model)
    given = [episodes[start : start + batch] for start in range(0, len(episodes), batch)]
    built = [vlm.build_inputs(part, TEMPLATE, new_tokens) for part in given]

    def plain() -> None:
        for inputs in built:
            model.generate(
                **inputs, max_new_tokens=new_tokens, do_sample=False, pad_token_id=vlm.tokenizer.pad_token_id
            )

    order = by_length(episodes)  # as the DataModules' test loaders batch them

    def test_loop() -> None:
        for start in range(0, len(order), batch):
            part = [episodes[index] for index in order[start : start + batch]]
            vlm.generate(vlm.build_inputs(part, TEMPLATE, new_tokens), new_tokens)

    return timer({"g_plain_generate": plain, "g_test_loop": test_loop})


def _reinforce(
    vlm: FrozenVLM,
    timer: Timer,
    single: BatchFeature,
    means: torch.Tensor,
    masks: torch.Tensor,
    results: dict[str, dict],
) -> None:
    """(b): MTV's REINFORCE step and the other ways to score the samples."""
    samples = len(masks)

    def query_forward() -> None:
        vlm.last_logits(single)

    def sequential() -> None:
        for mask in masks:
            with replace_heads(vlm, means, mask):
                vlm.last_logits(single)

    def batched() -> None:
        with replace_heads(vlm, means, masks):
            vlm.last_logits(repeat_rows(single, samples))

    def branched(along: RowsAlong) -> None:
        fork_last_token(vlm, single, samples, along=along, reuse=True).logits(means, masks)

    def forked() -> None:  # what MTV's training step runs
        fork_last_token(vlm, single, samples, along="positions").logits(means, masks)

    works = {
        "b_query_forward": query_forward,
        "b_reinforce_sequential": sequential,
        "b_reinforce_batched": batched,
        "b_reinforce_copied_cache": lambda: branched("batch"),
    }
    if fork_last_token(vlm, single, samples).along == "positions":
        works |= {"b_reinforce_cached_prefix": lambda: branched("positions"), "b_reinforce_shared_prefix": forked}
    else:  # the model refuses 4-D masks: MTV copies the cache, and so does this row
        works["b_reinforce_shared_prefix"] = works["b_reinforce_copied_cache"]
    results.update(timer(works))


def prompt_tokens(vlm: FrozenVLM) -> dict[str, int]:
    """Tokens of one zero-shot query and of one 16-shot ICL prompt: the lengths the ratios were measured at."""
    rng = torch.Generator().manual_seed(0)
    return {
        f"{shots}-shot": vlm.build_inputs([episode(shots, rng)], TEMPLATE)["input_ids"].shape[1] for shots in (0, 16)
    }


def measure(name: str, args: argparse.Namespace, timer: Timer) -> dict:
    """Build one model and time every path on it: that model's part of the report."""
    start, load_before = time.perf_counter(), os.getloadavg()[0]
    vlm = load(name, args.device, args.dtype)
    build_seconds = time.perf_counter() - start
    results = run(vlm, timer, args.batch, args.new_tokens, args.samples, sections=args.sections)
    along = (
        "shared prefix (4-D mask)"
        if "b_reinforce_cached_prefix" in results
        else "copied cache (the model refused the 4-D mask, or a sliding window is too short)"
        if "b_reinforce_shared_prefix" in results
        else "not measured"
    )
    return {
        "model": name,
        "prompt_tokens": prompt_tokens(vlm),
        "build_seconds": build_seconds,
        "seconds": time.perf_counter() - start,
        "load_average": [load_before, os.getloadavg()[0]],  # the machine's 1-minute load, before and after
        "reinforce_fast_path": along,
        "parameters": sum(parameter.numel() for parameter in vlm.model.parameters()),
        "results": results,
        "ratios": ratios(results, args.new_tokens),
    }


def _spread(ratio: dict[str, float]) -> str:
    return f"{ratio['median']:.2f} ({ratio['min']:.2f}-{ratio['max']:.2f})"


def print_model(report: dict) -> None:
    tokens = report["prompt_tokens"]
    print(
        f"\n{report['model']} ({report['parameters'] / 1e6:.1f}M parameters): {tokens['0-shot']}-token query, "
        f"{tokens['16-shot']}-token 16-shot ICL prompt; built in {report['build_seconds']:.1f} s, measured in "
        f"{report['seconds']:.1f} s at load average {report['load_average'][0]:.1f} to "
        f"{report['load_average'][1]:.1f}; REINFORCE fast path: {report['reinforce_fast_path']}"
    )
    for key, value in report["results"].items():
        rounds = [seconds * 1000 for seconds in value["rounds"]]
        print(
            f"  {key:<28} {value['seconds'] * 1000:9.1f} ms ({min(rounds):.1f}-{max(rounds):.1f})   "
            f"peak {value['peak_mib']:9.1f} MiB"
        )
    for key, value in report["ratios"].items():
        print(f"  {_spread(value):>20}x  {key}")


def print_side_by_side(reports: list[dict]) -> None:
    """One Markdown table: a row per ratio, a column per model (median and min-max over the rounds)."""
    columns = [f"{report['model']}, {report['prompt_tokens']['0-shot']}-token query" for report in reports]
    print(f"\n| ratio | {' | '.join(columns)} |\n| --- |{' --- |' * len(reports)}")
    for key in reports[0]["ratios"]:
        cells = [_spread(report["ratios"][key]) if key in report["ratios"] else "n/a" for report in reports]
        print(f"| {key} | {' | '.join(cells)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--model",
        nargs="+",
        default=["llava"],
        help=f"zoo names ({', '.join([*ZOO, *BENCHMARK_MODELS])}) or ids/paths, measured one after "
        "another in this run, their ratios then side by side",
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--batch", type=int, default=4, help="queries per generation / episodes per forward")
    parser.add_argument("--new-tokens", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds (after one warm-up round)")
    parser.add_argument("--samples", type=int, default=32, help="REINFORCE mask samples per step (reference: 32)")
    parser.add_argument(
        "--threads", type=int, help="CPU threads (torch.set_num_threads): 1 keeps a shared machine's timings steady"
    )
    parser.add_argument(
        "--sections",
        default=SECTIONS,
        help=f"which of the sections ({SECTIONS}, see above) to measure, e.g. 'afg'; default: all",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    timer = Timer(args.device, args.repeats)
    if set(args.sections) - set(SECTIONS):
        parser.error(f"--sections takes letters of {SECTIONS!r}, got {args.sections!r}")
    print(
        f"on {device_name} ({args.dtype}, {torch.get_num_threads()} CPU threads), batch {args.batch}, "
        f"{args.new_tokens} new tokens, {args.samples} REINFORCE samples; times: median (min-max) of "
        f"{args.repeats} rounds; peak memory: {timer.memory_measure}"
    )
    reports = []
    for name in args.model:
        reports.append(measure(name, args, timer))
        print_model(reports[-1])
    if len(reports) > 1:
        print_side_by_side(reports)
    if args.json:
        report = {
            "device": device_name,
            "dtype": args.dtype,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "threads": torch.get_num_threads(),
            "batch": args.batch,
            "new_tokens": args.new_tokens,
            "samples": args.samples,
            "repeats": args.repeats,
            "sections": args.sections,
            "memory_measure": timer.memory_measure,
            "models": reports,
        }
        write_atomic(args.json, json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
