"""How benchmarks/speed.py measures: median wall time over interleaved rounds, and peak working memory
(CUDA's allocator on a GPU; on CPU, which reports no peak, live tensor storage bytes counted op by op)."""

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
