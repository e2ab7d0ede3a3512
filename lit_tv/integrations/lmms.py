"""lmms-eval's model ``lit_tv``: any Hugging Face VLM, optionally patched by a lit_tv task vector, scored by the
harness next to other models.

    lmms-eval --model lit_tv --model_args pretrained=<hub id or folder>,vector=<file, folder or hub id> \\
        --tasks vizwiz_vqa_val

Registered through the entry point group ``lmms_eval.models`` (`lit_tv.integrations.lmms_manifest`). Prompts
come from the vector file (`VectorAnswerer`), with the doc's ``question`` as the query text, so the harness scores
the prompt `lit-tv test` scored; ``prompt=harness`` puts the harness's own text (its pre/post prompts) in the query
instead. Without a vector the model answers zero-shot: for the harness's VizWiz and OK-VQA tasks in lit_tv's prompt
for them (the DataModules'), otherwise in the harness's text. lit_tv's scorers read a generation's first line, so
generation also stops at a newline. ``loglikelihood`` returns the continuation's loss (negative log-likelihood: the
harness's multiple-choice tasks take the smallest) and is refused on lmms-eval versions that turn those results
into strings (0.7.3).
"""

from __future__ import annotations

import warnings
from typing import Literal

from lmms_eval.api.instance import Instance, unwrap_generation_output
from lmms_eval.api.model import lmms
from tqdm import tqdm

from lit_tv.data.vqa import VIZWIZ_INSTRUCTION, vqa_template
from lit_tv.integrations.answering import VectorAnswerer
from lit_tv.prompts import PromptTemplate

# the harness tasks (by name prefix) lit_tv has a benchmark for: the prompt its DataModule uses
TASK_PROMPTS = {"vizwiz_vqa": vqa_template(VIZWIZ_INSTRUCTION), "ok_vqa": vqa_template(answer_format="{answer}\n")}
HARNESS_PROMPT = PromptTemplate(query="{images}{text}")  # the harness's text as it is, after the images


def _flag(value: bool | str) -> bool:
    """A ``--model_args`` boolean (the harness passes 'True'/'false' through as text or as a bool)."""
    return value if isinstance(value, bool) else str(value).strip().lower() in ("1", "true", "yes")


class LitTVModel(lmms):
    """A FrozenVLM with an optional task vector, answering the harness's requests in batches.

    Args (``--model_args``): pretrained: the model (hub id or folder); vector: the task vector (file, folder or
    hub id; none: zero-shot); task: which of the file's per-task vectors; prompt: ``vector`` (default: the
    vector's prompt, the doc's question as the query) or ``harness`` (the harness's text as the query);
    max_new_tokens: overrides the vector's and the task's; revision, dtype, device, batch_size,
    trust_remote_code, allow_other_model, allow_other_task as in lit_tv.
    """

    is_simple = True

    def __init__(
        self,
        pretrained: str = "lit_tv/shapes-toy",
        vector: str | None = None,
        task: str | None = None,
        prompt: Literal["vector", "harness"] = "vector",
        max_new_tokens: int | str | None = None,
        revision: str | None = None,
        dtype: str = "float32",
        device: str | None = None,
        batch_size: int | str = 1,
        trust_remote_code: bool | str = False,
        allow_other_model: bool | str = False,
        allow_other_task: bool | str = False,
        **ignored: object,
    ) -> None:
        super().__init__()
        if prompt not in ("vector", "harness"):
            raise ValueError(f"--model_args prompt must be 'vector' or 'harness', got {prompt!r}")
        if ignored:
            warnings.warn(f"lit_tv model: --model_args {', '.join(sorted(ignored))} not used", stacklevel=2)
        self.prompt = prompt
        self.batch_size = int(batch_size)
        self.requested_tokens = int(max_new_tokens) if max_new_tokens not in (None, "") else None
        self.answerer = VectorAnswerer.load(
            pretrained,
            vector or None,
            template=HARNESS_PROMPT,
            max_new_tokens=self.requested_tokens,
            task=task,
            revision=revision,
            dtype=dtype,
            device=device or "cpu",
            trust_remote_code=_flag(trust_remote_code),
            allow_other_model=_flag(allow_other_model),
            allow_other_task=_flag(allow_other_task),
        )
        self.has_vector = self.answerer.vector is not None

    def _template(self, task: str) -> PromptTemplate:
        if self.prompt == "harness":
            return HARNESS_PROMPT
        if self.has_vector:
            return self.answerer.template
        return next((template for prefix, template in TASK_PROMPTS.items() if task.startswith(prefix)), HARNESS_PROMPT)

    def _query(self, request: Instance) -> tuple[str, list, PromptTemplate]:
        """A request's query text, images and prompt: the doc's question in lit_tv's prompts, where it has one."""
        context, _, doc_to_visual, doc_id, task, split = request.args
        doc = self.task_dict[task][split][doc_id]
        template = self._template(task)
        text = doc["question"] if template is not HARNESS_PROMPT and "question" in doc else context
        return text, list(doc_to_visual(doc) or []), template

    def generate_until(self, requests: list[Instance]) -> list[str]:
        answers: list[str] = []
        for batch in tqdm(self._batches(requests), disable=self.rank != 0, desc="lit_tv"):
            queries = [self._query(request) for request in batch]
            settings = [request.args[1] or {} for request in batch]
            tokens = self.requested_tokens or self._new_tokens(settings[0])
            generated = self.answerer.answer([q[0] for q in queries], [q[1] for q in queries], tokens, queries[0][2])
            answers += [_cut(text, setting.get("until")) for text, setting in zip(generated, settings, strict=True)]
        return answers

    def _batches(self, requests: list[Instance]) -> list[list[Instance]]:
        """Runs of up to `batch_size` requests of one task (one prompt format and generation setting per batch)."""
        batches: list[list[Instance]] = []
        for request in requests:
            if batches and len(batches[-1]) < self.batch_size and batches[-1][0].args[4] == request.args[4]:
                batches[-1].append(request)
            else:
                batches.append([request])
        return batches

    def _new_tokens(self, setting: dict) -> int:
        """The vector's recorded new tokens (what it was scored with), else the task's, else lit_tv's default."""
        recorded = self.answerer.vector.usage.get("max_new_tokens") if self.answerer.vector is not None else None
        asked = setting.get("max_new_tokens")
        if isinstance(recorded, int):
            if asked not in (None, recorded) and not getattr(self, "_told_tokens", False):
                warnings.warn(
                    f"the task asks max_new_tokens={asked}; the vector was scored with {recorded}, which is used "
                    "(--model_args max_new_tokens=N to choose)",
                    stacklevel=2,
                )
                self._told_tokens = True
            return recorded
        return int(asked) if asked else self.answerer.max_new_tokens

    def loglikelihood(self, requests: list[Instance]) -> list[tuple[float, bool]]:
        refuse_string_results()
        return self.losses(requests)

    def losses(self, requests: list[Instance]) -> list[tuple[float, bool]]:
        """Per request, the continuation's loss after the query's prompt and whether greedy decoding gives it."""
        results = []
        for request in requests:
            text, images, template = self._query(request)
            _, target, _, doc_id, task, split = request.args
            continuation = target if isinstance(target, str) else target(self.task_dict[task][split][doc_id])
            results.append(self.answerer.loss(text, images, continuation, template))
        return results

    def generate_until_multi_round(self, requests: list[Instance]) -> list[str]:
        raise NotImplementedError(
            "lit_tv model: multi-round tasks are not supported (a task vector patches one prompt's last token)"
        )


def _cut(text: str, until: str | list[str] | None) -> str:
    """The generation up to the first stop string (the task's ``until``, and a newline: lit_tv scores first lines)."""
    stops = [until] if isinstance(until, str) else list(until or [])
    for stop in [*stops, "\n"]:
        if stop:
            text = text.split(stop, 1)[0]
    return text.strip()


def refuse_string_results() -> None:
    """lmms-eval 0.7.3 turns every (loss, is_greedy) result into a string (``unwrap_generation_output``), so a
    multiple-choice task would score text: refuse before any work instead of reporting a wrong number."""
    kept, _ = unwrap_generation_output((0.5, True))
    if isinstance(kept, str):
        raise RuntimeError(
            "lit_tv model: this lmms-eval turns loglikelihood results into strings "
            "(lmms_eval.api.instance.unwrap_generation_output, 0.7.3), which breaks multiple-choice scoring; "
            "loglikelihood tasks are refused on it (generate_until tasks such as vizwiz_vqa_val work)"
        )
