"""The one-command GPU benchmark runs end to end in its CPU mode, and needs nothing a stock GPU image lacks."""

from __future__ import annotations

import ast
import json
import math
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# what a stock CUDA PyTorch + transformers + lightning image holds (and the standard library)
STOCK = {"torch", "transformers", "lightning", "torchmetrics", "safetensors", "tokenizers", "PIL", "numpy"}


def test_gpu_benchmark_in_cpu_mode_writes_every_ratio_and_peak_memory(tmp_path):
    out = tmp_path / "bench"
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu.sh"), str(out), "--cpu"],
                          env={**os.environ, "PYTHON": sys.executable, "PYTHONWARNINGS": "ignore"},
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / "speed.json").read_text())
    assert report["device"] == "cpu" and report["reinforce_fast_path"] == "shared prefix (4-D mask)"
    assert "live bytes" in report["memory_measure"]
    targets = [key for key in report["ratios"] if "target" in key]
    assert len(targets) == 6, targets  # every target of the issue has its ratio
    assert all(math.isfinite(value) and value > 0 for value in report["ratios"].values())
    peak = {key: value["peak_mib"] for key, value in report["results"].items()}
    assert all(value > 0 for value in peak.values())
    # 32 samples over one prefix vs the prefix cache copied 32 times, or the whole prompt run 32 times
    assert peak["b_reinforce_copied_cache"] > 2 * peak["b_reinforce_shared_prefix"]
    assert peak["b_reinforce_batched"] > 2 * peak["b_reinforce_shared_prefix"]
    assert "shared-prefix step / one query forward" in (out / "speed.txt").read_text()


def _imported_lit_tv_modules() -> list[str]:
    code = ("import sys; sys.path.insert(0, 'benchmarks'); import speed; "
            "print('\\n'.join(name for name in sys.modules if name.split('.')[0] == 'lit_tv'))")
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


def test_the_benchmark_imports_only_what_a_stock_gpu_image_has():
    sources = [ROOT / "benchmarks" / "speed.py"]
    for module in _imported_lit_tv_modules():
        path = ROOT / Path(*module.split("."))
        sources.append(path / "__init__.py" if path.is_dir() else path.with_suffix(".py"))
    needed = set().union(*map(_top_level_imports, sources))
    assert needed - STOCK - {"lit_tv", "__future__"} - set(sys.stdlib_module_names) == set()
