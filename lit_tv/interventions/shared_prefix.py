"""One prompt's last token scored in many rows over one prefix, each row with its own head patch.

REINFORCE (MTV) scores every mask sample, and Function Vectors every single head, on the same prompt:
only the last position is patched, so the prompt's prefix is the same for every row and is run once.
`fork_last_token` picks how the rows sit over the prefix and patches them to match (`LastTokenRows.logits`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn
from transformers import BatchFeature

from lit_tv.interventions.hooks import RowsAlong, removed_on_exit, replace_heads
from lit_tv.model.compat import decoder_cache, keep_rollback
from lit_tv.model.vlm import FrozenVLM

LOGGER = logging.getLogger(__name__)
# attention implementations that apply a user-supplied 4-D mask (eager adds it; sdpa and flex take it as is)
MASKED_ATTENTION = ("eager", "sdpa", "flex_attention")
# text config options of attention that sees only part of the sequence: the last tokens (a sliding window) or its
# own chunk's (Llama 4's chunked attention); a 4-D mask over a longer sequence would have to cut the prefix too
WINDOW_OPTIONS = ("sliding_window", "attention_chunk_size")


@dataclass
class LastTokenRows:
    """One prompt's last token in `rows` rows over its prefix, ready to score.

    along ``positions``: the rows are copies of the last token in the one sequence (batch 1), each seeing
    the prefix and itself (a 4-D `mask`), all at the last token's position; ``batch``: the prefix's cache
    was copied to `rows` sequences. `cached`: the prefix sits in a KV cache and `inputs` are the step over
    it, which is cropped off after each scoring, so the rows can be scored again; otherwise `inputs` are
    the whole prompt, run in one forward with the copies appended (no cache kept, nothing copied), or along
    ``batch`` repeated whole per row.
    """

    vlm: FrozenVLM = field(repr=False)
    inputs: BatchFeature | dict
    rows: int
    along: RowsAlong
    cached: bool
    mask: torch.Tensor | None = None

    def logits(self, values: torch.Tensor | None = None, heads: torch.Tensor | None = None) -> torch.Tensor:
        """Next-token logits of every row → `[rows, vocab]`; with `heads` `[rows, layers, heads]`, each row's
        selected heads replaced by `values` (`replace_heads` addressing these rows; a step over a cache is not
        a prefill, so it is patched as every token)."""
        if heads is None:
            return self._logits()
        assert values is not None, "heads are replaced by values"
        with replace_heads(
            self.vlm, values, heads, policy="every_token" if self.cached else "prompt", rows_along=self.along
        ):
            return self._logits()

    @torch.inference_mode()
    def _logits(self) -> torch.Tensor:
        vlm = self.vlm
        if not self.cached:
            if self.along == "batch":  # a prompt attending both ways: each row runs all of it
                return vlm.last_logits(repeat_rows(self.inputs, self.rows))
            return _forked_logits(vlm, self.inputs, self.rows)
        if self.along == "batch":
            logits = vlm.last_logits(self.inputs)
        else:
            assert self.mask is not None  # a step of rows at one position has its mask
            with _rows_at_one_position(vlm, self.mask, self.rows):
                logits = vlm.model(**self.inputs, **vlm.logits_to_keep(self.rows)).logits[0, -self.rows :].float()
        self.inputs[vlm.cache_name].crop(-(self.rows if self.along == "positions" else 1))
        return logits


def fork_last_token(
    vlm: FrozenVLM, inputs: BatchFeature, rows: int, along: RowsAlong | None = None, reuse: bool = False
) -> LastTokenRows:
    """`rows` copies of one unpadded prompt's last token over its prefix, to score (`LastTokenRows.logits`).

    Scored once, the copies sit at the end of the one sequence and everything runs in one forward (the
    REINFORCE fast path). With `reuse` (scored several times: Function Vectors' head chunks) the prefix
    runs once into a KV cache, and the copies are a step over it. A model that refuses a 4-D mask
    (checked once per model), or a prompt past a sliding attention window, gets the prefix's cache
    copied per row instead (``along="batch"``). `along` forces one layout (the benchmark compares them).
    A prompt that attends both ways (`FrozenVLM.prompt_attends_both_ways`) runs whole in every row.
    """
    ids = inputs["input_ids"]
    if ids.shape[0] != 1 or not inputs["attention_mask"].all():
        raise ValueError(f"fork_last_token takes one unpadded prompt, got a batch of shape {tuple(ids.shape)}")
    if vlm.prompt_attends_both_ways:  # the prefix sees the patched last token: nothing to share
        return LastTokenRows(vlm, inputs, rows, "batch", cached=False)
    if along is None:
        along = "positions" if _can_share_prefix(vlm, inputs, 1 if reuse else rows) else "batch"
    if along == "positions" and not reuse:
        return LastTokenRows(vlm, inputs, rows, along, cached=False)
    return _cache_prefix(vlm, inputs, rows, along)


@torch.inference_mode()
def _cache_prefix(vlm: FrozenVLM, inputs: BatchFeature, rows: int, along: RowsAlong) -> LastTokenRows:
    """Prefill all but the last token once; the last token as a step of `rows` rows over that cache."""
    aligned = [key for key in inputs if _aligned(key, inputs)]
    prefix = {key: value[:, :-1] if key in aligned else value for key, value in inputs.items()}
    vlm.forget_position_offsets()
    cache = getattr(vlm.model(**prefix, use_cache=True), vlm.cache_name)
    keep_rollback(cache)  # each scoring's step is cropped off again
    length = cache.get_seq_length()
    windows = [size for layer in cache.layers if (size := layer.get_max_length()) > 0]
    if along == "positions" and windows and length + rows >= min(windows):
        along = "batch"  # past a sliding window the 4-D mask would have to crop the prefix too
    step = {key: inputs[key][:, -1:] for key in aligned if key != "attention_mask"}
    if along == "batch":  # positions continue from the cache; one prompt has no padding: no mask needed
        cache.batch_repeat_interleave(rows)
        step = {key: value.repeat(rows, *[1] * (value.dim() - 1)) for key, value in step.items()}
    else:
        step = {key: value.repeat(1, rows, *[1] * (value.dim() - 2)) for key, value in step.items()}
    mask = _rows_mask(vlm, length, rows) if along == "positions" else None
    return LastTokenRows(vlm, {**step, vlm.cache_name: cache, "use_cache": True}, rows, along, cached=True, mask=mask)


@torch.inference_mode()
def _forked_logits(vlm: FrozenVLM, inputs: BatchFeature | dict, rows: int) -> torch.Tensor:
    """The prompt with its last token repeated `rows` times, in one forward: a 4-D mask lets each copy see
    the prefix and itself only, and every copy sits at the last token's position → `[rows, vocab]`."""
    length = inputs["input_ids"].shape[1] - 1
    extended = {
        key: torch.cat([value, value[:, -1:].expand(-1, rows - 1, *value.shape[2:])], dim=1)
        if _aligned(key, inputs)
        else value
        for key, value in inputs.items()
        if key != "attention_mask"
    }
    vlm.forget_position_offsets()
    blocked = torch.finfo(vlm.dtype).min
    causal = torch.full((length, length + rows), blocked, dtype=vlm.dtype, device=vlm.device).triu_(1)
    mask = torch.cat([causal[None, None], _rows_mask(vlm, length, rows)], dim=2)
    with _rows_at_one_position(vlm, mask, rows):
        logits = vlm.model(**extended, use_cache=False, **vlm.logits_to_keep(rows)).logits
    return logits[0, -rows:].float()


def _can_share_prefix(vlm: FrozenVLM, inputs: BatchFeature, rows: int) -> bool:
    """Whether `rows` copies of this prompt's last token may share its prefix through a 4-D mask: the
    model honours such masks (`vlm.shares_prefix`, checked on first use) and no attention window or chunk
    (`WINDOW_OPTIONS`) is shorter than the sequence."""
    if vlm.shares_prefix is None:
        vlm.shares_prefix = _check_shared_prefix(vlm, inputs)
    text_config = vlm.model.config.get_text_config()
    windows = [size for option in WINDOW_OPTIONS if (size := getattr(text_config, option, None))]
    return vlm.shares_prefix and not (windows and inputs["input_ids"].shape[1] + rows > min(windows))


def _aligned(key: str, inputs: BatchFeature | dict) -> bool:
    """Inputs with one entry (or a block of them) per token: ids, mask, Fuyu's patch indices, Qwen2-VL's token types,
    Mllama's cross-attention mask `[batch, tokens, images, tiles]`."""
    value = inputs[key]
    return torch.is_tensor(value) and value.shape[:2] == inputs["input_ids"].shape


def _rows_mask(vlm: FrozenVLM, length: int, rows: int) -> torch.Tensor:
    """Additive `[1, 1, rows, length + rows]` mask: every row sees the prefix and itself only."""
    blocked = torch.finfo(vlm.dtype).min
    own = torch.full((rows, rows), blocked, dtype=vlm.dtype, device=vlm.device).fill_diagonal_(0)
    prefix = torch.zeros(rows, length, dtype=vlm.dtype, device=vlm.device)
    return torch.cat([prefix, own], dim=1)[None, None]


@contextmanager
def _rows_at_one_position(vlm: FrozenVLM, mask: torch.Tensor, rows: int) -> Iterator[None]:
    """While the decoder runs: `mask` is its attention mask and its last `rows` tokens share the first
    one's position ids, whatever the model computed (plain, or Qwen2-VL's M-RoPE components)."""

    def hook(module: nn.Module, args: tuple, kwargs: dict) -> tuple:
        positions = kwargs.get("position_ids")
        if positions is None:
            cache = decoder_cache(kwargs)
            start = cache.get_seq_length() if cache is not None else 0
            tokens = kwargs.get("inputs_embeds")
            length = (tokens if tokens is not None else kwargs["input_ids"]).shape[1]
            positions = torch.arange(start, start + length, device=mask.device)[None]
        positions = positions.clone()
        positions[..., -rows:] = positions[..., -rows, None]
        return args, {**kwargs, "attention_mask": mask, "position_ids": positions}

    with removed_on_exit([vlm.layout.decoder.register_forward_pre_hook(hook, with_kwargs=True)]):
        yield


def _check_shared_prefix(vlm: FrozenVLM, inputs: BatchFeature) -> bool:
    """Two identical rows over one prefix must score alike and like the plain forward: a model that
    ignores or refuses the 4-D mask or the position ids fails this. Run once per model; the choice is logged."""
    attention = getattr(vlm.model.config.get_text_config(), "_attn_implementation", None) or "eager"
    if attention not in MASKED_ATTENTION:  # flash attention takes padding masks only
        LOGGER.warning(
            "%s runs attn_implementation=%r, which takes no custom 4-D attention mask: REINFORCE "
            "copies the prompt cache per sample instead (use one of %s to share it)",
            vlm.name,
            attention,
            MASKED_ATTENTION,
        )
        return False
    try:
        shared = _forked_logits(vlm, inputs, 2)
    except (TypeError, ValueError, RuntimeError, IndexError) as error:
        LOGGER.warning(
            "%s refuses a custom 4-D attention mask (%s): REINFORCE copies the prompt cache per sample instead",
            vlm.name,
            error,
        )
        return False
    plain = vlm.last_logits(inputs)
    # identical rows in one call agree closely in any precision; another kernel only roughly in bf16
    tight, loose = (1e-5, 1e-4) if vlm.dtype == torch.float32 else (1e-2, 1e-1)
    scale = float(plain.abs().max()) + 1e-6
    if (shared[0] - shared[1]).abs().max() > tight * scale or (shared - plain).abs().max() > loose * scale:
        LOGGER.warning(
            "%s does not honour a custom 4-D attention mask or position ids (rows over a shared "
            "prefix score differently): REINFORCE copies the prompt cache per sample instead",
            vlm.name,
        )
        return False
    LOGGER.info("%s: mask samples share one prefix (4-D attention mask)", vlm.name)
    return True


def repeat_rows(inputs: BatchFeature | dict, times: int) -> BatchFeature:
    """One prompt's model inputs repeated `times` along every tensor's first dim (images included)."""
    return BatchFeature(
        {
            key: value.repeat(times, *[1] * (value.dim() - 1)) if torch.is_tensor(value) else value
            for key, value in inputs.items()
        }
    )
