"""The one-command GPU benchmark runs end to end in its CPU mode at both prompt lengths, measures CPU memory as
the allocator sees it, and needs nothing a stock GPU image lacks."""

from __future__ import annotations

import ast
import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import REPO

from lit_tv.interventions.shared_prefix import fork_last_token
from lit_tv.model.vlm import FrozenVLM
from lit_tv.testing.zoo import BENCHMARK_MODELS

ROOT = REPO
# gpu.sh --cpu generates 2 new tokens
CONTROL_RATIO = "random-heads control, 2-token answers: a generate per head set / each prefix once (target >= 8)"
CONTROL_MEMORY = (
    "random-heads control peak memory, 2-token answers: each prefix once / one query's generate (target <= 3)"
)
# what a stock CUDA PyTorch + transformers + lightning image holds (and the standard library; filelock: torch needs it)
STOCK = {"torch", "transformers", "lightning", "torchmetrics", "safetensors", "tokenizers", "PIL", "numpy", "filelock"}


def checkout_with_venv(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A checkout whose .venv runs this interpreter, and a fresh shell's environment: no PYTHON, and a
    `python3` on PATH without torch (the system one, as before `source .venv/bin/activate`)."""
    checkout, bin_dir = tmp_path / "checkout", tmp_path / "bin"
    for folder in (checkout / ".venv" / "bin", bin_dir):
        folder.mkdir(parents=True)
    for name in ("benchmarks", "lit_tv"):
        (checkout / name).symlink_to(ROOT / name)
    for script, body in (
        (checkout / ".venv" / "bin" / "python", f'exec {sys.executable} "$@"'),
        (bin_dir / "python3", 'echo "python3: No module named torch" >&2; exit 1'),
    ):
        script.write_text(f"#!/bin/sh\n{body}\n")
        script.chmod(0o755)
    env = {key: value for key, value in os.environ.items() if key != "PYTHON"}
    return checkout, {**env, "PATH": f"{bin_dir}:/usr/bin:/bin", "PYTHONWARNINGS": "ignore"}


@pytest.mark.slow
def test_gpu_benchmark_in_cpu_mode_writes_every_ratio_and_peak_memory_at_both_prompt_lengths(tmp_path):
    """`bash benchmarks/gpu.sh OUT --cpu` as written in a fresh shell (it finds the checkout's .venv itself), on
    the tiny zoo LLaVA (43-token queries) and LLaVA-1.5's layout at tiny widths (576 image tokens) in one run."""
    out = tmp_path / "bench"
    checkout, env = checkout_with_venv(tmp_path)
    models = ["--model", "llava", "llava-1.5-tiny-random"]
    done = subprocess.run(
        ["bash", str(checkout / "benchmarks" / "gpu.sh"), str(out), "--cpu", *models],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / "speed.json").read_text())
    assert report["device"] == "cpu" and "live bytes" in report["memory_measure"]
    short, long = report["models"]
    assert short["prompt_tokens"]["0-shot"] < 100 and 576 < long["prompt_tokens"]["0-shot"] < 700
    assert long["prompt_tokens"]["16-shot"] > 16 * 576
    for model in report["models"]:
        assert model["reinforce_fast_path"] == "shared prefix (4-D mask)"
        targets = [key for key in model["ratios"] if "target" in key]
        assert len(targets) == 9, targets  # every target of the issues has its ratio
        assert "random-heads control, one-token answers: a generate per head set / each prefix once" in model["ratios"]
        assert CONTROL_RATIO in model["ratios"] and len(model["load_average"]) == 2
        for ratio in model["ratios"].values():
            assert math.isfinite(ratio["median"]) and 0 < ratio["min"] <= ratio["median"] <= ratio["max"]
        peak = {key: value["peak_mib"] for key, value in model["results"].items()}
        assert all(value > 0 for value in peak.values())
        # 32 samples over one prefix vs the prefix cache copied 32 times, or the whole prompt run 32 times
        assert peak["b_reinforce_copied_cache"] > 2 * peak["b_reinforce_shared_prefix"]
        assert peak["b_reinforce_batched"] > 2 * peak["b_reinforce_shared_prefix"]
    # the control at a second batch size, in the same command
    other = json.loads((out / "speed_batch2.json").read_text())
    assert other["batch"] == 2 and [model["model"] for model in other["models"]] == ["llava", "llava-1.5-tiny-random"]
    assert all(set(model["ratios"]) == {CONTROL_RATIO, CONTROL_MEMORY} for model in other["models"])
    printed = (out / "speed.txt").read_text()
    # the side-by-side table: one row per ratio, a column per prompt length
    row = next(line for line in printed.splitlines() if line.startswith("| REINFORCE peak memory: shared-prefix"))
    assert row.count("|") == 4, row


def _speed_module():
    if str(ROOT / "benchmarks") not in sys.path:  # speed.py imports timing.py from beside it, as a script does
        sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location("speed", ROOT / "benchmarks" / "speed.py")
    speed = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(speed)
    return speed


@pytest.mark.parametrize("name", sorted(BENCHMARK_MODELS))
def test_every_benchmark_model_takes_the_16_shot_prompt(name):
    """16 shots of 576 image tokens are longer than LLaVA-1.5's 4096 positions: the models must take them."""
    with torch.device("meta"):  # shapes only: no memory, no time
        model, processor = BENCHMARK_MODELS[name]()
    speed = _speed_module()
    vlm = FrozenVLM(model, processor, name=name)
    prompt = vlm.build_inputs([speed.episode(16, torch.Generator().manual_seed(0))], speed.TEMPLATE)
    assert prompt["input_ids"].shape[1] > 16 * 576  # refused before it got here, were it longer than the context


def _allocator_peak_mib(work) -> float:
    """Peak bytes the CPU allocator handed out inside `work` and had not got back, from the profiler's memory events."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True) as profile:
        work()
    events = sorted(
        (event for event in profile.profiler.kineto_results.events() if event.name() == "[memory]"),
        key=lambda event: event.start_ns(),
    )
    live = peak = 0
    for event in events:  # allocations positive, frees negative; frees of older blocks are not reported
        live += event.nbytes()
        peak = max(peak, live)
    return peak / 2**20


@pytest.mark.slow
def test_cpu_peak_memory_counts_what_the_allocator_hands_out(zoo_vlm):
    """The benchmark's CPU measure (op outputs' storages) agrees with the allocator's own accounting, which
    also sees buffers that ops allocate and free inside themselves."""
    speed = _speed_module()
    vlm = zoo_vlm("llava")
    layout, rng = vlm.layout, torch.Generator().manual_seed(0)
    single = vlm.build_inputs([speed.episode(0, rng)], speed.TEMPLATE)
    means = torch.randn(layout.num_layers, layout.num_heads, layout.head_dim, generator=rng)
    masks = torch.rand(32, layout.num_layers, layout.num_heads, generator=rng) < 0.27

    def step() -> None:
        fork_last_token(vlm, single, 32, along="positions").logits(means, masks)

    timer = speed.Timer("cpu", repeats=1)
    for work in (lambda: vlm.last_logits(single), step):
        work()
        assert timer.peak_mib(work) == pytest.approx(_allocator_peak_mib(work), rel=0.02)


@pytest.mark.slow
def test_a_given_python_wins_over_the_checkouts_venv(tmp_path):
    checkout, env = checkout_with_venv(tmp_path)
    chosen = tmp_path / "bin" / "python3"
    done = subprocess.run(
        ["bash", str(checkout / "benchmarks" / "gpu.sh"), str(tmp_path / "bench")],
        env={**env, "PYTHON": str(chosen)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and f"no CUDA device visible to {chosen}" in done.stderr, done.stderr


def _imported_lit_tv_modules() -> list[str]:
    code = (
        "import sys; sys.path.insert(0, 'benchmarks'); import speed; "
        "print('\\n'.join(name for name in sys.modules if name.split('.')[0] == 'lit_tv'))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.split()


def _top_level_imports(source: Path) -> set[str]:
    """What a module imports when it loads (its own statements; imports inside functions run only when called)."""
    names = set()
    for node in ast.parse(source.read_text()).body:
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.slow
def test_the_benchmark_imports_only_what_a_stock_gpu_image_has():
    sources = [ROOT / "benchmarks" / "speed.py", ROOT / "benchmarks" / "timing.py"]
    for module in _imported_lit_tv_modules():
        path = ROOT / Path(*module.split("."))
        sources.append(path / "__init__.py" if path.is_dir() else path.with_suffix(".py"))
    needed = set().union(*map(_top_level_imports, sources))
    assert needed - STOCK - {"lit_tv", "timing", "__future__"} - set(sys.stdlib_module_names) == set()
