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


def checkout_with_venv(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A checkout whose .venv runs this interpreter, and a fresh shell's environment: no PYTHON, and a
    `python3` on PATH without torch (the system one, as before `source .venv/bin/activate`)."""
    checkout, bin_dir = tmp_path / "checkout", tmp_path / "bin"
    for folder in (checkout / ".venv" / "bin", bin_dir):
        folder.mkdir(parents=True)
    for name in ("benchmarks", "lit_tv"):
        (checkout / name).symlink_to(ROOT / name)
    for script, body in ((checkout / ".venv" / "bin" / "python", f'exec {sys.executable} "$@"'),
                         (bin_dir / "python3", 'echo "python3: No module named torch" >&2; exit 1')):
        script.write_text(f"#!/bin/sh\n{body}\n")
        script.chmod(0o755)
    env = {key: value for key, value in os.environ.items() if key != "PYTHON"}
    return checkout, {**env, "PATH": f"{bin_dir}:/usr/bin:/bin", "PYTHONWARNINGS": "ignore"}


def test_gpu_benchmark_in_cpu_mode_writes_every_ratio_and_peak_memory(tmp_path):
    """`bash benchmarks/gpu.sh OUT --cpu` as written in a fresh shell: it finds the checkout's .venv itself."""
    out = tmp_path / "bench"
    checkout, env = checkout_with_venv(tmp_path)
    done = subprocess.run(["bash", str(checkout / "benchmarks" / "gpu.sh"), str(out), "--cpu"],
                          env=env, capture_output=True, text=True, timeout=600)
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


def test_a_given_python_wins_over_the_checkouts_venv(tmp_path):
    checkout, env = checkout_with_venv(tmp_path)
    chosen = tmp_path / "bin" / "python3"
    done = subprocess.run(["bash", str(checkout / "benchmarks" / "gpu.sh"), str(tmp_path / "bench")],
                          env={**env, "PYTHON": str(chosen)}, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and f"no CUDA device visible to {chosen}" in done.stderr, done.stderr


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
