"""Where every-token patching's time goes: one query's generation profiled plain and patched, operator by operator.

    python benchmarks/patching_profile.py --model llava-1.5-small-random --rounds 5 --heads 1

Wall-clock ratios of patched / unpatched generation swing by more than the 5% target on a shared machine (speed.py
section a: 0.96 with 0.79-1.05 over its rounds). The profiler counts each operator's own CPU time, so it shows what
patching adds: the operators only the patched run calls (the head replacement's `where`, the clone of the
out-projection input, the indexed write), their time per generation, and their share of its operator time.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
from speed import TEMPLATE, episode, load
from torch.profiler import profile

from lit_tv.interventions.hooks import replace_heads


def operator_times(run: Callable[[], None], rounds: int) -> dict[str, tuple[float, int]]:
    """Each operator's own CPU time (ms) and calls per round, over `rounds` runs after a warm-up one."""
    run()
    with profile() as profiled:
        for _ in range(rounds):
            run()
    return {
        event.key: (event.self_cpu_time_total / 1000 / rounds, event.count // rounds)
        for event in profiled.key_averages()
    }


def added_calls(
    plain: dict[str, tuple[float, int]], patched: dict[str, tuple[float, int]]
) -> dict[str, tuple[float, int]]:
    """The operators the patched run calls more often: the added calls' share of their time (ms) and their count."""
    added = {}
    for key, (ms, calls) in patched.items():
        more = calls - plain.get(key, (0.0, 0))[1]
        if more > 0:
            added[key] = (ms * more / calls, more)
    return added


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="llava-1.5-small-random")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--heads", type=int, default=1, help="heads patched (the first ones of layer 0 on)")
    parser.add_argument("--new-tokens", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(1)
    vlm = load(args.model, "cpu", "float32")
    layout, rng = vlm.layout, torch.Generator().manual_seed(0)
    means = torch.randn(layout.num_layers, layout.num_heads, layout.head_dim, generator=rng) * 0.1
    selected = torch.zeros(layout.num_layers, layout.num_heads, dtype=torch.bool)
    selected.view(-1)[: args.heads] = True
    query = vlm.build_inputs([episode(0, rng)], TEMPLATE)

    def plain() -> None:
        vlm.generate(query, max_new_tokens=args.new_tokens)

    def patched() -> None:
        with replace_heads(vlm, means, selected, policy="every_token"):
            plain()

    times = {"plain": operator_times(plain, args.rounds), "patched": operator_times(patched, args.rounds)}
    totals = {name: sum(ms for ms, _ in ops.values()) for name, ops in times.items()}
    prompt = int(query["input_ids"].shape[1])
    print(f"{args.model}: {prompt}-token query, {args.new_tokens} new tokens, {args.heads} heads patched every token")
    print(f"operator time per generation: plain {totals['plain']:.1f} ms, patched {totals['patched']:.1f} ms")
    print("operators the patched run calls more often (ms per generation, calls):")
    extra = added_calls(times["plain"], times["patched"])
    for key, (ms, calls) in sorted(extra.items(), key=lambda item: -item[1][0]):
        print(f"  {key:32s} +{calls:4d} calls  +{ms:7.3f} ms")
    added = sum(ms for ms, _ in extra.values())
    print(f"patching adds {added:.2f} ms of {totals['plain']:.1f} ms: ratio {1 + added / totals['plain']:.4f}")


if __name__ == "__main__":
    main()
