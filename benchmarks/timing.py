"""How benchmarks/speed.py measures: median wall time over interleaved rounds, and peak working memory
(CUDA's allocator on a GPU; on CPU, which reports no peak, live tensor storage bytes counted op by op); and
the ratios it reports, divided round by round."""

from __future__ import annotations

import statistics
import time
import weakref
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves


class LiveTensorBytes(TorchDispatchMode):
    """Peak bytes of tensor storages that ops inside the context created and that are still alive.

    The CPU stand-in for `torch.cuda.max_memory_allocated`: every op's outputs whose storage is new
    are counted until the storage is freed (views and in-place results of existing tensors are not).
    """

    def __init__(self) -> None:
        super().__init__()
        self.live = self.peak = 0
        self._counted: set[int] = set()

    def _free(self, key: int, size: int) -> None:
        self._counted.discard(key)
        self.live -= size

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        existing = {
            leaf.untyped_storage().data_ptr() for leaf in tree_leaves((args, kwargs)) if isinstance(leaf, torch.Tensor)
        }
        for leaf in tree_leaves(out):
            if not isinstance(leaf, torch.Tensor):
                continue
            storage = leaf.untyped_storage()
            key = storage.data_ptr()
            if key in existing or key in self._counted or storage.nbytes() == 0:
                continue
            self._counted.add(key)
            self.live += storage.nbytes()
            self.peak = max(self.peak, self.live)
            weakref.finalize(storage, self._free, key, storage.nbytes())
        return out


class Timer:
    """Median wall time of named callables, run round-robin, then each one's peak working memory.

    Interleaving the repeats spreads machine noise evenly over everything compared.
    """

    def __init__(self, device: str, repeats: int) -> None:
        self.cuda = device.startswith("cuda")
        self.repeats = repeats

    def _seconds(self, work: Callable[[], object]) -> float:
        if self.cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        work()
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - start

    def peak_mib(self, work: Callable[[], object]) -> float:
        """Working memory of one call: the peak allocated above what was allocated before it."""
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            before = torch.cuda.memory_allocated()
            work()
            torch.cuda.synchronize()
            return (torch.cuda.max_memory_allocated() - before) / 2**20
        with LiveTensorBytes() as counter:
            work()
        return counter.peak / 2**20

    @property
    def memory_measure(self) -> str:
        return (
            "torch.cuda.max_memory_allocated above the allocation before the call"
            if self.cuda
            else "peak live bytes of tensor storages created inside the call (CPU proxy, counted per op)"
        )

    def __call__(self, works: Mapping[str, Callable[[], object]]) -> dict[str, dict[str, Any]]:
        for work in works.values():
            work()  # warm-up
        runs: dict[str, list[float]] = {name: [] for name in works}
        for _ in range(self.repeats):
            for name, work in works.items():
                runs[name].append(self._seconds(work))
        return {
            name: {"seconds": statistics.median(values), "rounds": values, "peak_mib": self.peak_mib(works[name])}
            for name, values in runs.items()
        }


STEP = "b_reinforce_shared_prefix"
# (ratio, numerator, denominator, of peak memory rather than time), printed in this order where both were measured
RATIOS: tuple[tuple[str, str, str, bool], ...] = (
    ("patched / unpatched generation (target <= 1.05)", "a_generation_patched", "a_generation_unpatched", False),
    (
        "REINFORCE step: one sequential batch-1 forward per sample / shared-prefix step (target >= 25)",
        "b_reinforce_sequential",
        STEP,
        False,
    ),
    ("REINFORCE step: shared-prefix step / one query forward (target <= 2)", STEP, "b_query_forward", False),
    ("REINFORCE step: one plain forward of all samples / shared-prefix step", "b_reinforce_batched", STEP, False),
    ("REINFORCE step: prefix cache copied per sample / shared-prefix step", "b_reinforce_copied_cache", STEP, False),
    ("REINFORCE peak memory: shared-prefix step / one query forward (target <= 1.3)", STEP, "b_query_forward", True),
    (
        "REINFORCE peak memory: prefix cache copied per sample / one query forward",
        "b_reinforce_copied_cache",
        "b_query_forward",
        True,
    ),
    ("mean-activation throughput / plain forward (target >= 0.9)", "c_forward_plain", "c_mean_activations", False),
    (
        "REINFORCE step: prefix cached once, samples a second call / shared-prefix step",
        "b_reinforce_cached_prefix",
        STEP,
        False,
    ),
    (
        "random-heads control, one-token answers: a generate per head set / each prefix once",
        "e_control_generate",
        "e_control_one_prefix",
        False,
    ),
    (
        "random-heads control, N-token answers: a generate per head set / each prefix once (target >= 8)",
        "f_control_generate",
        "f_control_one_prefix",
        False,
    ),
    (
        "random-heads control peak memory, N-token answers: each prefix once / one query's generate (target <= 3)",
        "f_control_one_prefix",
        "f_generate_one_query",
        True,
    ),
    (
        "test loop tokens per second / plain model.generate over the same queries (target >= 0.9)",
        "g_plain_generate",
        "g_test_loop",
        False,
    ),
    *(
        (
            f"{shots}-shot ICL query / MTV query" + (" (target >= 10)" if shots == 16 else ""),
            f"d_query_icl_{shots}shot",
            "d_query_mtv_0shot",
            False,
        )
        for shots in (4, 8, 16)
    ),
)


def ratios(results: dict[str, dict], new_tokens: int) -> dict[str, dict[str, float]]:
    """Each ratio's median, min and max: times divided round by round, peak memory (one pass) once; only the
    ratios whose works were measured (see `--sections`)."""
    out = {}
    for name, numerator, denominator, memory in RATIOS:
        if numerator in results and denominator in results:
            top, bottom = (
                torch.tensor([results[key]["peak_mib"]] if memory else results[key]["rounds"], dtype=torch.float64)
                for key in (numerator, denominator)
            )
            out[name.replace("N-token", f"{new_tokens}-token")] = top / bottom
    return {
        key: {"median": statistics.median(values.tolist()), "min": float(values.min()), "max": float(values.max())}
        for key, values in out.items()
    }
