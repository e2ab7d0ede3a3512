"""Images decoded as an image viewer shows them: the one decoding every image path uses (DataModules, tables,
predict's query files, images handed over in memory), so a model sees what the person who chose the image saw.

- EXIF orientation applied (a phone photo stored landscape with orientation 6 is shown, and fed, upright);
- 16-bit greyscale (``I;16*``) scaled from 0-65535 to 0-255; ``I`` (32-bit integer) and ``F`` (float) scaled
  from the first range of 0-1, 0-255, 0-65535 that holds all their values, or else stretched from their minimum
  to their maximum (PIL's own conversion clips them: a 16-bit PNG turns white);
- transparency (alpha bands, palette or colour-key transparency) composited onto a white background;
- palette, 1-bit, CMYK, YCbCr and HSV converted to RGB by PIL. ``LAB`` is refused: PIL converts it channel by channel,
  which gives other colours.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from lit_tv.episodes import ImageLike, StoredImage

BACKGROUND = (255, 255, 255)  # white, as a viewer shows a transparent image on a page
SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")
CONVERTED = ("1", "L", "P", "RGB", "RGBX", "CMYK", "YCbCr", "HSV", "LA", "La", "PA", "RGBA", "RGBa")
FULL_RANGES = (1.0, 255.0, 65535.0)  # the ranges an integer or float image's values are read in, smallest first


class ImageReadError(ValueError):
    """An image that cannot be decoded; ``reason`` says why without naming it, for messages that name it their way."""

    def __init__(self, image: object, reason: str) -> None:
        super().__init__(f"cannot read image {image}: {reason}")
        self.reason = reason


def _eight_bit_grey(image: Image.Image) -> Image.Image:
    """An ``I;16*``, ``I`` or ``F`` image as 8-bit greyscale, scaled by the range its values are read in."""
    values = np.nan_to_num(np.asarray(image, dtype=np.float64))
    low = float(values.min(initial=0.0))
    if image.mode in SIXTEEN_BIT:
        top = 65535.0
    else:
        high = float(values.max(initial=0.0))
        top = next((top for top in FULL_RANGES if low >= 0 and high <= top), 0.0)
        if not top:  # negative values or beyond 16 bits: no range to read them in, so the viewer's stretch
            values, top = values - low, max(high - low, 1e-12)
    return Image.fromarray(np.round(values / top * 255).astype(np.uint8), "L")


def upright_rgb(image: Image.Image) -> Image.Image:
    """``image`` as an 8-bit RGB image, upright, as a viewer shows it (the rules are the module's docstring).

    Raises ValueError, without the image's name, for a mode with no such conversion."""
    upright = ImageOps.exif_transpose(image)
    if upright.mode in SIXTEEN_BIT or upright.mode in ("I", "F"):
        return _eight_bit_grey(upright).convert("RGB")
    if upright.mode not in CONVERTED:
        raise ValueError(
            f"mode {upright.mode} has no RGB conversion (expected one of {', '.join(CONVERTED)}, "
            f"{', '.join(SIXTEEN_BIT)}, I or F)"
        )
    if not upright.has_transparency_data:
        return upright.convert("RGB")
    rgba = (upright.convert("LA") if upright.mode == "La" else upright).convert("RGBA")
    return Image.alpha_composite(Image.new("RGBA", rgba.size, (*BACKGROUND, 255)), rgba).convert("RGB")


def read_image(image: ImageLike, draft: tuple[int, int] | None = None) -> Image.Image:
    """``image`` (a PIL image, a file or an image stored in a table) decoded by `upright_rgb`. ``draft``: a JPEG
    may be decoded at a reduced scale of about that size (a cheap check that its pixels read).

    Raises FileNotFoundError for a missing file and `ImageReadError`, naming the image, for one that cannot be read."""
    if isinstance(image, Image.Image):
        try:
            return upright_rgb(image)
        except ValueError as error:
            raise ImageReadError(f"{image.mode} image of size {image.size}", str(error)) from error
    if not isinstance(image, StoredImage) and not Path(image).is_file():
        raise FileNotFoundError(f"image file not found: {image}")
    try:
        with image.open() if isinstance(image, StoredImage) else Image.open(image) as opened:
            if draft is not None:
                opened.draft("RGB", draft)
            return upright_rgb(opened)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise ImageReadError(image, str(error)) from error
