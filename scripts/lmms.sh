#!/usr/bin/env bash
# lmms-eval beside lit_tv without touching .venv: lmms-eval 0.7.3 and the few packages its evaluation imports go
# into .lmms/ (installed once, --no-deps: its full requirements would replace torch 2.13 with a CUDA build and pin
# wandb), found through PYTHONPATH; then `lmms-eval "$@"` runs with .venv's python, where lit_tv's entry point
# registers `--model lit_tv`. 0.7.3 imports filelock._api, which filelock 4 removed: .lmms/ holds filelock 3.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/venv.sh"
target="$root/.lmms"
packages=(  # pinned: the versions this was tested with
  lmms_eval==0.7.3 filelock==3.32.7 loguru==0.7.3 sacrebleu==2.6.0 portalocker==4.4.2 tabulate==0.10.0
  colorama==0.4.6 lxml==6.2.1 evaluate==0.4.6 requests==2.34.2 urllib3==2.8.0 certifi==2026.10.19.post1
  charset_normalizer==3.5.3 chardet==7.7.0 pytz==2026.6 tenacity==9.2.1 pytablewriter==1.2.1 dataproperty==1.1.1
  mbstrdecoder==1.1.5 pathvalidate==3.3.1 tabledata==1.3.5 tcolorpy==0.1.7 typepy==2.0.0
)
stamp="$target/.installed"
wanted="$(printf '%s\n' "${packages[@]}" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  "$root/.venv/bin/python" -m pip install -q --no-deps --upgrade --target "$target" "${packages[@]}"
  echo "$wanted" > "$stamp"
fi
PYTHONPATH="$target${PYTHONPATH:+:$PYTHONPATH}" exec "$root/.venv/bin/python" -m lmms_eval "$@"
