#!/usr/bin/env bash
# The GPU benchmark in one command: every ratio of benchmarks/speed.py plus peak memory, one JSON file.
#
#   bash benchmarks/gpu.sh OUT_DIR            # LLaVA-1.5-7B-sized random model, bf16, on cuda (killed at 9 min)
#   bash benchmarks/gpu.sh OUT_DIR --cpu      # the tiny zoo LLaVA on CPU, a few seconds (what the tests run)
#   bash benchmarks/gpu.sh OUT_DIR --cpu --repeats 5   # further arguments go to speed.py
#   bash benchmarks/gpu.sh OUT_DIR --cpu --model llava llava-1.5-tiny-random   # also 600-token prompts (tested)
#
# Needs only torch, transformers, lightning, torchmetrics, safetensors, tokenizers and pillow: lit_tv is
# imported from this checkout (PYTHONPATH), nothing is installed or downloaded. PYTHON picks the interpreter;
# without it, the checkout's .venv (what scripts/main.sh builds) when there is one, else python3.
# Writes OUT_DIR/speed.json (and the printed table as OUT_DIR/speed.txt), and the random-heads control at the
# other batch size (GPU: 1, --cpu: 2) as OUT_DIR/speed_batchN.json and .txt; exits non-zero if anything failed.
set -euo pipefail

if [ $# -lt 1 ] || [[ "$1" == -* ]]; then
    echo "usage: bash benchmarks/gpu.sh OUT_DIR [--cpu] [speed.py options]" >&2
    exit 2
fi
out=$1
shift
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ -n "${PYTHON:-}" ]; then
    python=$PYTHON
elif [ -x "$root/.venv/bin/python" ]; then
    python=$root/.venv/bin/python
else
    python=python3
fi
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"

if [ "${1:-}" = "--cpu" ]; then
    shift
    args=(--model llava --device cpu --dtype float32 --new-tokens 2 --repeats 1 --threads 1)
    batches=(1 2)
else
    if ! "$python" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
        echo "benchmarks/gpu.sh: no CUDA device visible to $python; use --cpu for the tiny CPU run" >&2
        exit 1
    fi
    args=(--model llava-7b-random --device cuda --dtype bfloat16 --new-tokens 10 --repeats 5)
    batches=(4 1)
fi

mkdir -p "$out"
# every section at the first batch size (killed at 7 min), then the random-heads control (f) at the second (at 2)
timeout 420 "$python" "$root/benchmarks/speed.py" "${args[@]}" --batch "${batches[0]}" "$@" --json "$out/speed.json" |
    tee "$out/speed.txt"
timeout 120 "$python" "$root/benchmarks/speed.py" "${args[@]}" --batch "${batches[1]}" --sections f "$@" \
    --json "$out/speed_batch${batches[1]}.json" | tee "$out/speed_batch${batches[1]}.txt"
echo "wrote $out/speed.json and $out/speed_batch${batches[1]}.json"
