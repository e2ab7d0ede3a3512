#!/usr/bin/env bash
# The README's test command: set up .venv, lint, run the whole suite on CPU.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/venv.sh"
cd "$root"
.venv/bin/ruff format --check lit_tv tests benchmarks
.venv/bin/ruff check lit_tv tests benchmarks
.venv/bin/mypy
.venv/bin/python -m pytest -q "$@"
