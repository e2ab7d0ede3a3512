"""Fuyu prompts with each image where its placeholder stands, ending where the text ends.

HF's FuyuProcessor puts one image before all the text and appends the begin-of-answer token
`<0x04>`, so a prompt's last position is `<0x04>`, not the text's final token. The cross-modal
reference runs Mantis-Fuyu through Mantis' own processor instead (MFuyuProcessor): any number of
images inside the text, each labelled ``image {index}: `` and wrapped in ``|IMAGE|`` /
``|ENDOFIMAGE|``, every text piece of an image prompt after a BOS, text-only prompts without
special tokens, nothing appended. That layout is built here when the tokenizer has both markers
(Mantis' has); other Fuyu tokenizers get the same interleaving and BOS rule without markers and
labels (for one image first this equals HF's inputs minus `<0x04>`), and text-only prompts with
the tokenizer's defaults, as HF's processor.

transformers 5's FuyuModel scatters the patch embeddings over the image tokens of the whole
batch in order, so `pixel_values` is every image's patches concatenated in prompt order, row by
row (no `image_patches_indices`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from PIL import Image
from transformers import BatchFeature, FuyuProcessor

IMAGE_PLACEHOLDER = "<image>"
MANTIS_MARKERS = ("|IMAGE|", "|ENDOFIMAGE|")
MANTIS_LABEL = "image {index}: "


@dataclass(frozen=True)
class FuyuLayout:
    """How images sit in the token stream: optional markers around them and a text label before them."""

    markers: tuple[int, int] | None = None
    label: str = ""

    @classmethod
    def of(cls, processor: FuyuProcessor) -> FuyuLayout:
        """Mantis' layout where the tokenizer has Mantis' image markers, the plain one otherwise."""
        vocab = processor.tokenizer.get_vocab()
        if all(marker in vocab for marker in MANTIS_MARKERS):
            return cls(markers=tuple(vocab[marker] for marker in MANTIS_MARKERS), label=MANTIS_LABEL)
        return cls()


def image_patches(processor: FuyuProcessor, image: Image.Image) -> tuple[torch.Tensor, list[int]]:
    """One image's flattened patches `[patches, channels*height*width]` and its token ids (rows + newlines).

    Resizing, padding and normalisation are the image processor's; like FuyuProcessor, the padded
    image is cut back to whole patches covering the unpadded image.
    """
    image_processor = processor.image_processor
    out = image_processor([image], return_tensors="pt")
    pixels = out["images"][0, 0]  # [channels, padded height, padded width]
    size = image_processor.patch_size
    height = min(pixels.shape[-2], math.ceil(int(out["image_unpadded_heights"][0, 0]) / size.height) * size.height)
    width = min(pixels.shape[-1], math.ceil(int(out["image_unpadded_widths"][0, 0]) / size.width) * size.width)
    grid = pixels[:, :height, :width].unfold(1, size.height, size.height).unfold(2, size.width, size.width)
    patches = grid.permute(1, 2, 3, 4, 0).reshape(-1, pixels.shape[0] * size.height * size.width)
    row = [processor.image_token_id] * (width // size.width) + [processor.image_newline_id]
    return patches, row * (height // size.height)


def _row_ids(
    processor: FuyuProcessor, layout: FuyuLayout, text: str, images: list[Image.Image]
) -> tuple[list[int], list[torch.Tensor]]:
    tokenizer = processor.tokenizer
    if not images:  # text-only prompts: Mantis' processor adds no special tokens, HF's the tokenizer's
        return tokenizer(text, add_special_tokens=layout.markers is None).input_ids, []
    bos = tokenizer.convert_tokens_to_ids("<s>")
    pieces = text.split(IMAGE_PLACEHOLDER)
    ids, patches = [], []
    for index, piece in enumerate(pieces):
        if index:
            values, image_ids = image_patches(processor, images[index - 1])
            patches.append(values)
            ids += [layout.markers[0], *image_ids, layout.markers[1]] if layout.markers else image_ids
        if index < len(pieces) - 1:
            piece += layout.label.format(index=index)
        if piece:
            ids += [bos, *tokenizer(piece, add_special_tokens=False).input_ids]
    return ids, patches


def build_fuyu_inputs(
    processor: FuyuProcessor, texts: list[str], images: list[list[Image.Image]], layout: FuyuLayout | None = None
) -> BatchFeature:
    """Left-padded batch of prompts whose images stand at `IMAGE_PLACEHOLDER`: position -1 is each last text token.

    `layout` defaults to the one the processor's tokenizer supports (`FuyuLayout.of`).
    """
    layout = layout or FuyuLayout.of(processor)
    rows, patches = [], []
    for text, row_images in zip(texts, images, strict=True):
        ids, row_patches = _row_ids(processor, layout, text, row_images)
        rows.append(ids)
        patches += row_patches
    data = dict(processor.tokenizer.pad({"input_ids": rows}, padding_side="left", return_tensors="pt"))
    if patches:
        data["pixel_values"] = torch.cat(patches)
    return BatchFeature(data)
