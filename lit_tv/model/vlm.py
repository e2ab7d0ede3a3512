"""FrozenVLM: any Hugging Face VLM (or text-only causal LM), frozen, with its layout and processor."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import torch
from PIL import Image
from torch import nn
from transformers import BatchFeature, GenerationMixin, PreTrainedModel, PreTrainedTokenizerBase
from transformers.cache_utils import Cache

from lit_tv.episodes import Episode, ImageLike
from lit_tv.images import read_image
from lit_tv.model.compat import cache_argument
from lit_tv.model.families import family_of
from lit_tv.model.layout import Layout, discover_layout
from lit_tv.model.loading import VLMOptions, check_chat_template, dispatched_device, load_pretrained
from lit_tv.prompts import PromptTemplate, word_start_token_id


def load_image(image: ImageLike, width: int | None = None) -> Image.Image:
    """Decode lazily (paths stay paths until a prompt needs them) as a viewer shows the image (`read_image`).

    With `width`, resize to that width keeping the aspect ratio, as the cross-modal reference does
    (width 224) before the model's processor sees the image.
    """
    rgb = read_image(image)
    if width is None:
        return rgb
    return rgb.resize((width, max(1, int(width / rgb.width * rgb.height))))


# the options that set an episode's shots, named when its prompt is past the model's context
QUERY_SHOTS = "data.init_args.test_shots"  # validation and test queries
SUPPORT_SHOTS = "data.init_args.shots"  # the support episodes a task vector is averaged over
# M-RoPE models (Qwen2-VL and kin) keep the last prompt's position offsets on modules with this attribute
POSITION_OFFSETS = "rope_deltas"


class FrozenVLM(nn.Module):
    """A frozen model plus what lit_tv needs to read and patch it.

    Parameters never require grad and the model stays in eval mode, so no optimizer or strategy
    can train or gradient-sync them.
    """

    def __init__(self, model: PreTrainedModel, processor, name: str = "", options: VLMOptions | None = None) -> None:
        """`options`' prompt and image fields (checked when they were made) apply; None: the model's own forms."""
        super().__init__()
        options = options or VLMOptions()
        self.prompt_wrap = options.prompt_wrap
        self.image_width = options.image_width
        self.model = model.eval().requires_grad_(False)
        self.processor = processor
        self.family = family_of(processor)
        if self.family.fix_processor is not None:
            self.family.fix_processor(processor)
        self.name = name or getattr(model.config, "_name_or_path", type(model).__name__)
        self.layout: Layout = discover_layout(model)
        self._dispatched_to = dispatched_device(model)
        # only the last positions' logits: [batch, tokens, vocab] of a long image prompt is gigabytes
        self._keeps_logits = "logits_to_keep" in inspect.signature(model.forward).parameters
        # found by attribute, not by family, so every M-RoPE model transformers ships is covered, listed or not
        self._position_offsets = [module for module in model.modules() if hasattr(module, POSITION_OFFSETS)]
        self.cache_name = cache_argument(model)  # the KV cache's argument and output field
        # a prefix LM (PaliGemma): image and prompt attend both ways in the prefill, so every prompt position sees
        # a patch at the last one, and no prefix can be shared by rows patched differently
        both_ways = getattr(model.config.get_text_config(), "use_bidirectional_attention", None)
        self.prompt_attends_both_ways = both_ways in (True, "all")
        # whether rows may share one prefix through a 4-D mask: checked on first use
        # (lit_tv.interventions.shared_prefix), or set
        self.shares_prefix: bool | None = None
        # beyond its trained positions a model still answers, just not meaningfully: such prompts are refused
        self.context_length: int | None = getattr(model.config.get_text_config(), "max_position_embeddings", None)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        start, end = self.family.image_wrapping
        placeholder = options.image_placeholder
        self.image_placeholder = start + self.image_token + end if placeholder is None else placeholder

    @classmethod
    def from_options(cls, options: VLMOptions, device: str = "cpu", chat: bool = False) -> FrozenVLM:
        """Load by hub id or local folder; VLMs with their processor, text-only LMs with their tokenizer.

        With `options.device_map` the model is dispatched while it loads and never moved afterwards; with `chat`
        (the run's prompts in the model's chat template) a model without one is refused before its weights load.
        """
        model, processor, path = load_pretrained(options, device, chat)
        return cls(model, processor, name=path, options=options)

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, device: str = "cpu", **options: Any) -> FrozenVLM:
        """`from_options` with `VLMOptions`' fields as keywords, e.g. ``dtype="bfloat16"``."""
        return cls.from_options(VLMOptions(str(name_or_path), **options), device)

    # ---- what the model is -------------------------------------------------------------------

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        return getattr(self.processor, "tokenizer", self.processor)

    @property
    def is_multimodal(self) -> bool:
        return self.processor is not self.tokenizer

    @property
    def device(self) -> torch.device:
        """Where inputs go: lm_head's device, or a dispatched model's first accelerator (its weights may be on meta)."""
        return self._dispatched_to or cast(torch.Tensor, self.layout.lm_head.weight).device

    @property
    def is_dispatched(self) -> bool:
        """Spread over devices (or offloaded) by accelerate: its hooks place every module; never move it."""
        return self._dispatched_to is not None

    @property
    def dtype(self) -> torch.dtype:
        """The dtype the model computes in: floating inputs are cast to it."""
        return cast(torch.Tensor, self.layout.lm_head.weight).dtype

    @property
    def image_token(self) -> str:
        """The token the processor expands per image (Fuyu: the placeholder lit_tv replaces with patches)."""
        token = self.family.image_token
        return getattr(self.processor, "image_token", "") if token is None else token

    # ---- prompts -------------------------------------------------------------------------------

    def render(self, episode: Episode, template: PromptTemplate) -> str:
        """Prompt text of one episode, with the model's own image placeholders or chat template; a plain
        prompt inside `prompt_wrap`, the conversation form the reference runs the model in."""
        if not template.chat:
            text = template.render(episode, self.image_placeholder)
            return text if self.prompt_wrap is None else self.prompt_wrap.format(prompt=text)
        if self.prompt_wrap is not None:
            raise ValueError(
                f"model.prompt_wrap {self.prompt_wrap!r} and the data's chat option both wrap the prompt: "
                "keep one (the chat option uses the model's own chat template)"
            )
        check_chat_template(self.processor, self.name)
        messages = []
        for index, example in enumerate((*episode.shots, episode.query)):
            text = template.render_query(example, "")
            if index == 0:
                text = template.instruction + text
            content = [{"type": "image"} for _ in example.images] + [{"type": "text", "text": text}]
            messages.append({"role": "user", "content": content if self.is_multimodal else text})
            if example is not episode.query:
                messages.append({"role": "assistant", "content": example.answer})
        return self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def _check_images(self, index: int, text: str, images: list) -> None:
        if images and not self.is_multimodal:
            raise ValueError(f"episode {index} has {len(images)} images but {self.name} is a text-only model")
        found = text.count(self.image_token) if self.image_token else 0
        if found != len(images):
            raise ValueError(
                f"episode {index}: prompt has {found} image placeholders ({self.image_token!r}) "
                f"but {len(images)} images were given"
            )

    def build_inputs(
        self,
        episodes: Sequence[Episode],
        template: PromptTemplate,
        new_tokens: int = 0,
        shots_option: str = QUERY_SHOTS,
    ) -> BatchFeature:
        """Left-padded batch on the model's device, floating inputs in its dtype; refused when a prompt and the
        `new_tokens` to be generated after it do not fit the model's context, naming `shots_option`, the option
        that sets these episodes' shots (`QUERY_SHOTS`, or `SUPPORT_SHOTS` for the episodes vectors average over).

        Position -1 is every row's last prompt token (for Fuyu too: see `lit_tv.model.fuyu`).
        """
        texts, images = [], []
        for index, episode in enumerate(episodes):
            text, row_images = self.render(episode, template), episode.images()
            self._check_images(index, text, row_images)
            texts.append(text)
            images.append([load_image(image, self.image_width) for image in row_images])
        # a prompt that already starts with BOS (a chat template writes it) gets no second one, as transformers'
        # apply_chat_template tokenizes it
        bos = self.tokenizer.bos_token
        special = {"add_special_tokens": False} if bos and all(text.startswith(bos) for text in texts) else {}
        if self.family.build_inputs is not None:
            batch = self.family.build_inputs(self.processor, texts, images)
        elif not any(images):
            batch = self.tokenizer(texts, padding=True, return_tensors="pt", **special)  # with BOS, as the processor's
        else:
            batch = self.processor(text=texts, images=images, padding=True, return_tensors="pt", **special)
        self._check_context(batch, episodes, new_tokens, shots_option)
        kept = {key: value for key, value in batch.items() if key not in self.family.dropped_inputs}
        return BatchFeature(kept).to(self.device, dtype=self.dtype)

    def _check_context(
        self, batch: BatchFeature | dict, episodes: Sequence[Episode], new_tokens: int, shots_option: str
    ) -> None:
        if self.context_length is None:
            return
        ids = batch["input_ids"]
        lengths = batch["attention_mask"].sum(1) if "attention_mask" in batch else [ids.shape[1]] * len(ids)
        for index, (episode, length) in enumerate(zip(episodes, lengths, strict=True)):
            if int(length) + new_tokens > self.context_length:
                generated = f" + {new_tokens} new tokens (model.init_args.max_new_tokens)" if new_tokens else ""
                remedies = [
                    *([f"fewer shots ({shots_option})"] if episode.shots else []),
                    "smaller images",
                    *(["fewer new tokens"] if new_tokens else []),
                ]
                raise ValueError(
                    f"episode {index} of the batch ({len(episode.shots)} shots, query {episode.query.text!r:.60}) "
                    f"is {int(length)} tokens{generated}, longer than {self.name}'s context of "
                    f"{self.context_length} (max_position_embeddings): use {', '.join(remedies[:-1])}"
                    f"{' or ' if len(remedies) > 1 else ''}{remedies[-1]}"
                )

    def answer_token_ids(self, episodes: Sequence[Episode], template: PromptTemplate) -> torch.Tensor:
        """First token of each query's target answer → `[batch]`: as it continues the prompt, or with
        ``template.target: word_start`` as a word of its own (`word_start_token_id`)."""
        if template.target == "word_start":
            ids = [word_start_token_id(self.tokenizer, episode.query.answer) for episode in episodes]
            return torch.tensor(ids, device=self.device)
        ids = []
        for episode in episodes:
            prompt = self.render(episode, template)
            prompt_ids = self.tokenizer(prompt, add_special_tokens=False).input_ids
            answered = prompt + template.render_answer(episode.query)
            full_ids = self.tokenizer(answered, add_special_tokens=False).input_ids
            if full_ids[: len(prompt_ids)] == prompt_ids and len(full_ids) > len(prompt_ids):
                ids.append(full_ids[len(prompt_ids)])
            else:
                ids.append(self.tokenizer(episode.query.answer, add_special_tokens=False).input_ids[0])
        return torch.tensor(ids, device=self.device)

    # ---- running -------------------------------------------------------------------------------

    @torch.inference_mode()
    def last_logits(self, inputs: BatchFeature | dict) -> torch.Tensor:
        """Next-token logits at the last prompt position → `[batch, vocab]` (for first-token scoring)."""
        return self.model(**inputs, **self.logits_to_keep(1)).logits[:, -1].float()

    def logits_to_keep(self, positions: int) -> dict:
        """The forward's argument that computes logits for the last `positions` only, where the model takes it."""
        return {"logits_to_keep": positions} if self._keeps_logits else {}

    def forget_position_offsets(self) -> None:
        """Before a prompt's prefill: M-RoPE offsets an earlier prompt left behind must not leak into it."""
        for module in self._position_offsets:
            setattr(module, POSITION_OFFSETS, None)

    @torch.inference_mode()
    def generate(self, inputs: BatchFeature, max_new_tokens: int = 10, cache: Cache | None = None) -> list[str]:
        """Greedy answers, decoded without the prompt and special tokens; at least one token each
        (``min_new_tokens=1``, as the MTV reference generates: an end-of-sequence first is never taken). A batch
        stops once every row ended. With `cache` (holding the prompts' first tokens), generation continues from it.
        """
        output = cast(GenerationMixin, self.model).generate(  # every model lit_tv loads generates
            **inputs,
            **({} if cache is None else {self.cache_name: cache}),
            max_new_tokens=max_new_tokens,
            min_new_tokens=1,
            do_sample=False,
            pad_token_id=self.tokenizer.pad_token_id,
        )
        return self._decode_answers(output[:, inputs["input_ids"].shape[1] :])

    def one_token_answers(self, logits: torch.Tensor) -> list[str]:
        """Each row's greedy one-token answer from its next-token logits `[rows, vocab]`, as `generate` with one
        new token gives it: an end-of-sequence token is never taken first (``min_new_tokens=1``)."""
        eos = self.model.generation_config.eos_token_id
        ends = [] if eos is None else [eos] if isinstance(eos, int) else list(eos)
        return self._decode_answers(
            logits.index_fill(-1, torch.tensor(ends, dtype=torch.long, device=logits.device), float("-inf")).argmax(-1)[
                :, None
            ]
        )

    def _decode_answers(self, new_tokens: torch.Tensor) -> list[str]:
        """Generated token ids `[rows, tokens]` as answers: without special tokens, stripped."""
        return [text.strip() for text in self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]

    def logit_lens(self, hidden: torch.Tensor) -> torch.Tensor:
        """Decode residual-stream vectors with the final norm and lm_head → logits, scaled and capped as the
        model's own forward does (`Layout.logit_scale`, `Layout.logit_softcap`)."""
        layout = self.layout
        logits = layout.lm_head(layout.final_norm(hidden.to(self.dtype))).float() * layout.logit_scale
        cap = layout.logit_softcap
        return logits if cap is None else torch.tanh(logits / cap) * cap
