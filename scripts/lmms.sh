#!/usr/bin/env bash
# lmms-eval beside lit_tv without touching .venv: lmms-eval 0.7.3 and the few packages its evaluation imports go
# into .lmms/ (installed once, --no-deps: its full requirements would replace torch 2.13 with a CUDA build and pin
# wandb), found through PYTHONPATH; then `lmms-eval "$@"` runs with .venv's python, where lit_tv's entry point
# registers `--model lit_tv`. 0.7.3 imports filelock._api, which filelock 4 removed: .lmms/ holds filelock 3.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/venv.sh"
target="$root/.lmms"
packages=(
  "lmms_eval==0.7.3" "filelock>=3.13,<4" loguru sacrebleu portalocker tabulate colorama lxml "evaluate>=0.4"
  requests urllib3 certifi charset_normalizer pytz tenacity pytablewriter dataproperty mbstrdecoder pathvalidate
  tabledata tcolorpy typepy chardet
)
stamp="$target/.installed"
wanted="$(printf '%s\n' "${packages[@]}" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  rm -rf "$target"
  "$root/.venv/bin/pip" install -q --no-deps --target "$target" "${packages[@]}"
  echo "$wanted" > "$stamp"
fi
PYTHONPATH="$target${PYTHONPATH:+:$PYTHONPATH}" exec "$root/.venv/bin/python" -m lmms_eval "$@"
