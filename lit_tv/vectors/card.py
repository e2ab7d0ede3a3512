"""A shared task vector's model card (the README.md of its folder or hub repo): Hub metadata (`ModelCardData`:
library, base model, tags) and what a reader needs before using the file: what it patches (heads or layer), the
prompt format it was made and scored with, its score over seeds as mean ± std (min–max), the run that scored it,
and how to load it. Every number comes from the file's metadata or from `test_scores.json` files of runs that
scored this very file (its SHA-256), never typed in."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from huggingface_hub import ModelCard, ModelCardData

from lit_tv.model.loading import BUILTIN_MODELS
from lit_tv.spread import format_spread
from lit_tv.vectors.base import TaskVector
from lit_tv.vectors.kinds import HeadVector, ResidualVector
from lit_tv.vectors.scores import file_sha256, seed_accuracies
from lit_tv.vectors.sources import is_hub_id

MIN_SEEDS = 3  # fewer seeds than this and the card says the spread is not known


def hub_model(name: str) -> bool:
    """Whether the vector's model is a hub id (so `base_model` can link it): not a local folder or a built-in toy."""
    return name not in BUILTIN_MODELS and not Path(name).expanduser().exists() and is_hub_id(name)


def check_scores(vector: TaskVector, scores: dict[Path, dict[str, Any]]) -> None:
    """Refuse a scores file that scored another file than this one, or scored it on another model."""
    assert vector.path is not None  # a loaded vector
    own = file_sha256(vector.path)
    for path, score in scores.items():
        if own not in [scored["sha256"] for scored in score["vectors"]]:
            raise ValueError(
                f"scores file {path} scored {[scored['path'] for scored in score['vectors']]} (field 'vectors'), "
                f"not {vector.where} (its SHA-256 differs): give the {path.name} of a test run that used this file"
            )
        if score["model"] != vector.model:
            raise ValueError(f"scores file {path}: field 'model' is {score['model']!r}, the vector's {vector.model!r}")


def _heads(vector: TaskVector) -> str:
    """Which heads or layer the vector patches, in words."""
    layout = vector.layout
    if isinstance(vector, HeadVector):
        by_layer: dict[int, list[int]] = {}
        for layer, head in vector.heads.tolist():
            by_layer.setdefault(layer, []).append(head)
        listed = "; ".join(f"layer {layer}: {', '.join(map(str, heads))}" for layer, heads in sorted(by_layer.items()))
        grid = f"{layout.get('num_layers')} layers x {layout.get('num_heads')} heads"
        return f"- heads: {len(vector.heads)} of {grid}, their outputs replaced by the means ({listed})"
    assert isinstance(vector, ResidualVector)
    where = "one vector per layer (every layer stored)" if vector.vectors.dim() == 3 else "one vector"
    lines = [f"- layer: {vector.layer} (residual stream, {where} per task; mode {vector.mode}, scale {vector.scale})"]
    heads = vector.provenance.get("heads")
    if heads is not None:  # Function Vectors: the heads summed into each task's vector
        counts = ", ".join(f"{task or 'all'}: {int(row.sum())}" for task, row in zip(vector.tasks, heads, strict=True))
        lines.append(f"- heads summed into each task's vector: {counts}")
    return "\n".join(lines)


def _recorded(usage: dict[str, object], name: str) -> str:
    return f"`{json.dumps(usage[name])}`" if name in usage else "not recorded (exported by an earlier lit_tv)"


def _prompt(vector: TaskVector) -> str:
    usage = vector.usage
    prompt = usage.get("prompt")
    fields = (
        "\n".join(f"  - {key}: `{json.dumps(value)}`" for key, value in prompt.items())
        if isinstance(prompt, dict)
        else "  not recorded (exported by an earlier lit_tv)"
    )
    return (
        f"- template fields (lit_tv.prompts.PromptTemplate):\n{fields}\n"
        f"- chat wrap (`prompt_wrap`): {_recorded(usage, 'prompt_wrap')}\n"
        f"- image placeholder: {_recorded(usage, 'image_placeholder')}\n"
        f"- patch policy: `{vector.policy}` (`prompt`: the prompt's forward pass only; `every_token`: each "
        "generated token too)\n"
        f"- max_new_tokens: {_recorded(usage, 'max_new_tokens')}"
    )


def _score(scores: dict[Path, dict[str, Any]]) -> str:
    if not scores:
        return "No test score was given for this file (`lit-tv-share --scores`): it is unscored here."
    by_seed = [(seed, value) for score in scores.values() for seed, value in seed_accuracies(score).items()]
    values = [value for _, value in by_seed]
    seeds = ", ".join(str(seed) for seed, _ in by_seed)
    runs = f"{len(scores)} test run{'s' if len(scores) > 1 else ''}"
    lines = [f"Accuracy: **{format_spread(values)}** (mean ± std (min–max)) over data seeds {seeds} ({runs})."]
    if len(values) < MIN_SEEDS:
        lines.append(
            f"Only {len(values)} seed{'s' if len(values) > 1 else ''} back this number (fewer than {MIN_SEEDS}): "
            "its spread over seeds is not known."
        )
    first = next(iter(scores.values()))
    keys = list(first["accuracy"])
    lines += ["", "| key | accuracy over runs | queries per run |", "| --- | --- | --- |"]
    for key in keys:
        accuracies = [score["accuracy"].get(key) for score in scores.values()]
        scored = [accuracy for accuracy in accuracies if accuracy is not None]
        shown = format_spread(scored) if scored else "-"
        queries = ", ".join(str(score["queries"].get(key, "-")) for score in scores.values())
        lines.append(f"| {key} | {shown} | {queries} |")
    configs = [str(score.get("config")) for score in scores.values() if score.get("config")]
    benchmark = first.get("benchmark", "?")
    lines += ["", f"Benchmark: {benchmark}; scored by `lit-tv test` with run config(s): {', '.join(configs) or '-'}"]
    return "\n".join(lines)


def model_card(vector: TaskVector, scores: dict[Path, dict[str, Any]], repo_id: str | None = None) -> ModelCard:
    """The card of `vector` (loaded from its file) with the scores of runs that tested it (checked first)."""
    check_scores(vector, scores)
    tasks = ", ".join(task or "(all)" for task in vector.tasks) or "(not recorded)"
    data = ModelCardData(
        library_name="lit_tv",
        base_model=vector.model if hub_model(vector.model) else None,
        base_model_revision=vector.revision,
        tags=["task-vector", "lit_tv", vector.method],
    )
    source = repo_id or "<this folder>"
    task = f', task="{vector.tasks[0]}"' if vector.tasks and vector.tasks[0] else ""
    config = vector.usage.get("config")
    made = f"```json\n{json.dumps(config, indent=2)}\n```" if config else "Not recorded (an earlier lit_tv's export)."
    revision = f" at revision `{vector.revision}`" if vector.revision else " (no revision pinned)"
    body = f"""
# {vector.method} task vector: {tasks}

A task vector for the frozen model `{vector.model}`{revision}: a {vector.kind} vector made by lit_tv's
{vector.method}. The model's weights are not changed: the vector is patched into its activations at the last prompt
token while it answers.

- lit_tv version that exported it: {vector.extra.get("lit_tv_version", "(not recorded)")}

## What it patches

- method: {vector.method}
- tasks: {tasks}
- benchmark it was made on: {vector.extra.get("benchmark", "(not recorded)")}, shots: {vector.extra.get("shots", "-")}
{_heads(vector)}

## Prompt format

Queries must be prompted as the vector was made and scored:

{_prompt(vector)}

## Score

{_score(scores)}

## How it was made

The run's model and data config blocks, as the file records them:

{made}

## Use

```python
import lit_tv

vector = lit_tv.load_vector("{source}")  # revision="..." pins a branch, tag or commit
prompt = vector.render_prompt("<question>", images=1)  # the prompt format above, for one query
with lit_tv.apply_task_vector(model, "{source}"{task}):  # a plain transformers model, left-padded batch
    output = model.generate(**inputs, max_new_tokens={vector.extra.get("max_new_tokens", 1)})
```

or in a run: `lit-tv test --config <config> --model.init_args.task_vector {source}`; in lmms-eval (lit_tv's
`scripts/lmms.sh`): `--model lit_tv --model_args pretrained={vector.model},vector={source}`.
"""
    return ModelCard(f"---\n{data.to_yaml()}\n---\n{body}")
