"""Answer and score questions with a frozen VLM patched by a task vector, outside Lightning: what a harness calls.

The prompt is built from the vector file by default (its template, chat wrap, image placeholder, patch policy and
new tokens), so a harness scores the intervention `lit-tv test` scored; a caller's other choice is explicit (an
argument) and warned about when it differs from what the file records. Without a vector the model answers
zero-shot in the prompt it is given (`template`).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace

import torch
from PIL import Image

from lit_tv.episodes import Episode, Example
from lit_tv.interventions.hooks import PatchPolicy
from lit_tv.model.compat import cache_argument
from lit_tv.model.loading import VLMOptions
from lit_tv.model.vlm import FrozenVLM
from lit_tv.prompts import PromptTemplate
from lit_tv.vectors.base import HookedModel, TaskVector
from lit_tv.vectors.kinds import load


@dataclass
class VectorAnswerer:
    """A loaded model, the prompt it answers in, and the task vector (if any) patched while it answers."""

    vlm: FrozenVLM
    template: PromptTemplate
    max_new_tokens: int
    vector: TaskVector | None = None
    task_index: int = 0
    policy: PatchPolicy | None = None

    @classmethod
    def load(
        cls,
        model: str,
        vector: str | None = None,
        *,
        template: PromptTemplate,
        max_new_tokens: int | None = None,
        task: str | None = None,
        policy: PatchPolicy | None = None,
        revision: str | None = None,
        dtype: str = "float32",
        device: str = "cpu",
        trust_remote_code: bool = False,
        allow_other_model: bool = False,
        allow_other_task: bool = False,
    ) -> VectorAnswerer:
        """The model `model` (hub id or folder) with the vector file `vector` checked against it (layout, weights,
        task). `template` and `max_new_tokens` serve when there is no vector or its file does not record them
        (then a warning says so); `max_new_tokens` given explicitly wins over the file's, with a warning."""
        file = load(vector) if vector is not None else None
        usage = file.usage if file is not None else {}
        options = VLMOptions(
            name=model,
            revision=revision,
            dtype=dtype,
            trust_remote_code=trust_remote_code,
            prompt_wrap=_text_or_none(usage.get("prompt_wrap")),
            image_placeholder=_text_or_none(usage.get("image_placeholder")),
        )
        vlm = FrozenVLM.from_options(options, device)
        if file is None:
            return cls(vlm, template, max_new_tokens or 10)
        file.check(vlm.layout.signature(), vlm.model, allow_other_model=allow_other_model)
        index = file.task_index(task, allow_other_task)
        recorded_template = file.prompt_template()
        unknown = [
            name for name in ("prompt", "prompt_wrap", "image_placeholder", "max_new_tokens") if name not in usage
        ]
        if unknown:
            warnings.warn(
                f"{file.where} does not record its {', '.join(unknown)} (exported by an earlier lit_tv): the "
                "harness's prompt and settings are used there, unchecked against how the vector was made",
                stacklevel=2,
            )
        recorded_tokens = usage.get("max_new_tokens")
        if max_new_tokens is not None and recorded_tokens not in (None, max_new_tokens):
            warnings.warn(
                f"{file.where} was scored with max_new_tokens={recorded_tokens}; {max_new_tokens} given is used",
                stacklevel=2,
            )
        tokens = max_new_tokens or (recorded_tokens if isinstance(recorded_tokens, int) else None) or 10
        return cls(vlm, recorded_template or template, tokens, file, index, policy)

    def patching(self) -> AbstractContextManager:
        """The vector patched in as its run did (its policy unless `policy` says otherwise), or nothing."""
        if self.vector is None:
            return nullcontext()
        return self.vector.patching(HookedModel(self.vlm.model, self.vlm.layout), self.task_index, self.policy)

    def _episodes(self, questions: Sequence[str], images: Sequence[Sequence[Image.Image]]) -> list[Episode]:
        return [Episode(Example(text, tuple(row))) for text, row in zip(questions, images, strict=True)]

    def answer(
        self,
        questions: Sequence[str],
        images: Sequence[Sequence[Image.Image]],
        max_new_tokens: int | None = None,
        template: PromptTemplate | None = None,
    ) -> list[str]:
        """Greedy answers to zero-shot queries (a batch, left-padded), as `lit-tv test` generates them; in
        `template` instead of the answerer's when given."""
        tokens = max_new_tokens or self.max_new_tokens
        inputs = self.vlm.build_inputs(self._episodes(questions, images), template or self.template, tokens)
        with self.patching():
            return self.vlm.generate(inputs, max_new_tokens=tokens)

    @torch.inference_mode()
    def loss(
        self, question: str, images: Sequence[Image.Image], continuation: str, template: PromptTemplate | None = None
    ) -> tuple[float, bool]:
        """The summed negative log-likelihood of `continuation` after the query's prompt, and whether greedy decoding
        gives it: the prompt runs once (patched as in generation), then the continuation one token at a time over
        the cache, so an ``every_token`` vector patches each of its tokens as it would a generated one."""
        episodes, template = self._episodes([question], [images]), template or self.template
        prompt = self.vlm.build_inputs(episodes, template)
        escaped = continuation.replace("{", "{{").replace("}", "}}")
        full = self.vlm.build_inputs(episodes, replace(template, query=template.query + escaped))
        start = prompt["input_ids"].shape[1]
        targets = full["input_ids"][0, start:]
        if targets.numel() == 0:
            raise ValueError(f"continuation {continuation!r} adds no token to the prompt")
        model, total, greedy = self.vlm.model, 0.0, True
        cache_name = cache_argument(model)
        self.vlm.forget_position_offsets()
        with self.patching():
            output = model(**prompt, use_cache=True)
            cache, mask = getattr(output, cache_name), prompt["attention_mask"]
            for position, token in enumerate(targets.tolist()):
                log_probs = torch.log_softmax(output.logits[0, -1].float(), dim=-1)
                total -= float(log_probs[token])
                greedy = greedy and int(log_probs.argmax()) == token
                if position + 1 == len(targets):
                    break
                mask = torch.cat([mask, mask.new_ones(1, 1)], dim=1)
                step = {"input_ids": targets[position : position + 1][None], "attention_mask": mask, cache_name: cache}
                output = model(**step, use_cache=True)
                cache = getattr(output, cache_name)
        return total, greedy


def _text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None
