"""Exact reads and writes of a frozen model's internals, as context managers around forward/generate.

Heads are read and written at the **input** of each layer's attention out-projection (a forward
pre-hook, so bias, quantisation or adapters of the projection still apply). The residual stream
is each decoder layer's output. Batches are left-padded, so position -1 is the last prompt token.
Every hook is removed on exit, also when the body raises.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol, cast

import torch
from torch import nn

from lit_tv.model.compat import decoder_cache
from lit_tv.model.layout import Layout

if TYPE_CHECKING:
    from transformers import PreTrainedModel

PatchPolicy = Literal["prompt", "every_token"]
PATCH_POLICIES = ("prompt", "every_token")
Position = int | torch.Tensor


class Hookable(Protocol):
    """What the hooks need: a `FrozenVLM`, or a plain HF model with its layout (`lit_tv.vectors.base.HookedModel`)."""

    @property
    def model(self) -> PreTrainedModel: ...

    @property
    def layout(self) -> Layout: ...

    @property
    def device(self) -> torch.device: ...


@dataclass
class _Step:
    """Whether the decoder call now running is the prefill (no cached tokens yet)."""

    prefill: bool = True


@contextmanager
def removed_on_exit(handles: list) -> Iterator[None]:
    with ExitStack() as stack:
        for handle in handles:
            stack.callback(handle.remove)
        yield


def _track_prefill(vlm: Hookable, step: _Step, cached_prefix: int = 0):
    """A decoder pre-hook: prefill = called without a cache or with one holding only the prompt's
    `cached_prefix` tokens (0: an empty one; see `decoder_cache`)."""

    def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
        cache = decoder_cache(kwargs)
        step.prefill = cache is None or cache.get_seq_length() == cached_prefix

    return vlm.layout.decoder.register_forward_pre_hook(hook, with_kwargs=True)


def _select(hidden: torch.Tensor, position: Position) -> torch.Tensor:
    """Rows of `[B, T, ...]` at one position, or at a per-row position tensor `[B]`."""
    if isinstance(position, int):
        return hidden[:, position]
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), position.to(hidden.device)]


def _layer_output(output) -> torch.Tensor:
    """Decoder layers return a tensor in transformers 5; older code paths return a tuple."""
    return output[0] if isinstance(output, tuple) else output


@dataclass
class Recording:
    """Filled during the prefill of the wrapped call; `value` stacks layers on dim 1."""

    per_layer: dict[int, torch.Tensor] = field(default_factory=dict)

    @property
    def value(self) -> torch.Tensor:
        if not self.per_layer:
            raise RuntimeError("nothing was recorded: run a forward pass inside the context")
        return torch.stack([self.per_layer[index] for index in sorted(self.per_layer)], dim=1)


@contextmanager
def record_heads(vlm: Hookable) -> Iterator[Recording]:
    """Record each layer's per-head out-projection input at the last prompt position.

    `recording.value` is `[batch, layers, heads, head_dim]`, detached, in the model's dtype; a layer with narrower
    heads than `head_dim` (`Layout.head_dims`) fills each head's first entries, zeros after.
    """
    layout, step, recording = vlm.layout, _Step(), Recording()

    def make_hook(index: int):
        def hook(module: nn.Module, args: tuple) -> None:
            if step.prefill:  # to one device: a dispatched model runs its layers on several
                last = args[0][:, -1].detach().to(vlm.device)
                recording.per_layer[index] = layout.pad_heads(index, last)

        return hook

    handles = [_track_prefill(vlm, step)]
    handles += [proj.register_forward_pre_hook(make_hook(i)) for i, proj in enumerate(layout.out_projections)]
    with removed_on_exit(handles):
        yield recording


def _check_policy(policy: str) -> None:
    if policy not in PATCH_POLICIES:
        raise ValueError(f"patch policy must be one of {PATCH_POLICIES}, got {policy!r}")


RowsAlong = Literal["batch", "positions"]


@contextmanager
def replace_heads(
    vlm: Hookable,
    values: torch.Tensor,
    mask: torch.Tensor,
    policy: PatchPolicy = "prompt",
    rows_along: RowsAlong = "batch",
    cached_prefix: int = 0,
) -> Iterator[None]:
    """Replace the masked heads' out-projection input at the last position with `values`.

    values: `[layers, heads, head_dim]` or per row `[rows, layers, heads, head_dim]`; a layer with narrower heads
    takes each head's first entries (as `record_heads` fills them).
    mask: `[layers, heads]` or per row `[rows, layers, heads]` (bool): one batched forward can
    patch different heads in every row. Rows are batch rows, or with ``rows_along="positions"`` the
    last `rows` positions of a batch-1 sequence (`lit_tv.interventions.shared_prefix.fork_last_token`). policy "prompt"
    patches the prefill's last position only; "every_token" also every generated token. A generate that
    continues from a cache of the prompt's first `cached_prefix` tokens (`lit_tv.interventions.prefix_rows`)
    has its first call, over the rest of the prompt, as its prefill. Only layers with a selected head are hooked.
    """
    _check_policy(policy)
    layout, step = vlm.layout, _Step()
    shape = (layout.num_layers, layout.num_heads)
    if tuple(mask.shape[-2:]) != shape or tuple(values.shape[-3:]) != (*shape, layout.head_dim):
        raise ValueError(
            f"head values {tuple(values.shape)} / mask {tuple(mask.shape)} do not match the model's "
            f"layers x heads x head_dim = {shape + (layout.head_dim,)}"
        )
    if rows_along == "positions" and mask.dim() != 3:
        raise ValueError(f"rows_along='positions' needs a per-row mask [rows, layers, heads], got {tuple(mask.shape)}")
    mask = mask.to(device=vlm.device, dtype=torch.bool)
    values = values.to(device=vlm.device, dtype=cast(torch.Tensor, layout.lm_head.weight).dtype)
    layers_used = mask.reshape(-1, *shape).any(dim=(0, 2)).nonzero().flatten().tolist()
    # the patched places of `[B, T, features]`: the last position of every row, or the last `rows` positions of one
    place = (0, slice(-mask.shape[0], None)) if rows_along == "positions" else (slice(None), -1)

    def make_hook(index: int):
        layer_mask = mask[..., index, :, None]  # [heads, 1] or [rows, heads, 1]
        layer_values = layout.narrow_heads(index, values[..., index, :, :])  # [heads, dim] or [rows, heads, dim]

        def hook(module: nn.Module, args: tuple) -> tuple | None:
            if policy == "prompt" and not step.prefill:
                return None
            hidden = args[0]
            rows = hidden[place]
            if (layer_mask.dim() == 3 and layer_mask.shape[0] != rows.shape[0]) or (
                rows_along == "positions" and hidden.shape[0] != 1
            ):
                raise ValueError(
                    f"per-row head mask has {layer_mask.shape[0]} rows, the input has {rows.shape[0]} "
                    f"(rows along {rows_along}, input shape {tuple(hidden.shape[:2])})"
                )
            # .to: a no-op unless a dispatched model runs this layer on another device
            patched = torch.where(
                layer_mask.to(rows.device),
                layer_values.to(rows.device),
                rows.unflatten(-1, (layout.num_heads, layout.head_dims[index])),
            )
            out = hidden.clone()
            out[place] = patched.flatten(-2)
            return (out, *args[1:])

        return hook

    handles = [_track_prefill(vlm, step, cached_prefix)]
    handles += [layout.out_projections[i].register_forward_pre_hook(make_hook(i)) for i in layers_used]
    with removed_on_exit(handles):
        yield


@contextmanager
def record_residual(vlm: Hookable, position: Position = -1) -> Iterator[Recording]:
    """Record every decoder layer's output at `position` (int, or per-row tensor `[batch]`).

    `recording.value` is `[batch, layers, hidden]`, taken during the prefill.
    """
    step, recording = _Step(), Recording()

    def make_hook(index: int):
        def hook(module: nn.Module, args: tuple, output) -> None:
            if step.prefill:
                recording.per_layer[index] = _select(_layer_output(output), position).detach().to(vlm.device)

        return hook

    handles = [_track_prefill(vlm, step)]
    handles += [layer.register_forward_hook(make_hook(i)) for i, layer in enumerate(vlm.layout.layers)]
    with removed_on_exit(handles):
        yield recording


@contextmanager
def patch_residual(
    vlm: Hookable,
    layer: int,
    vector: torch.Tensor,
    mode: Literal["replace", "add"] = "replace",
    scale: float = 1.0,
    policy: PatchPolicy = "prompt",
) -> Iterator[None]:
    """Replace (or add `scale` x) `vector` in layer `layer`'s output at the last prompt position.

    vector: `[hidden]` or per row `[batch, hidden]`.
    """
    _check_policy(policy)
    if mode not in ("replace", "add"):
        raise ValueError(f"residual patch mode must be 'replace' or 'add', got {mode!r}")
    if not 0 <= layer < vlm.layout.num_layers:
        raise ValueError(f"layer {layer} out of range: the model has {vlm.layout.num_layers} layers")
    if vector.shape[-1] != vlm.layout.hidden_size:
        raise ValueError(f"vector size {vector.shape[-1]} does not match hidden size {vlm.layout.hidden_size}")
    step = _Step()
    vector = vector.to(device=vlm.device, dtype=cast(torch.Tensor, vlm.layout.lm_head.weight).dtype)

    def hook(module: nn.Module, args: tuple, output):
        if policy == "prompt" and not step.prefill:
            return None
        hidden = _layer_output(output)
        row = vector.to(hidden.device)
        patched = hidden.clone()  # the input tensor is never modified
        patched[:, -1] = row if mode == "replace" else hidden[:, -1] + scale * row
        return (patched, *output[1:]) if isinstance(output, tuple) else patched

    handles = [_track_prefill(vlm, step), vlm.layout.layers[layer].register_forward_hook(hook)]
    with removed_on_exit(handles):
        yield
