"""Images decode as a viewer shows them: every EXIF orientation upright, every PIL mode a file can hold as the same
pixels as its 8-bit upright RGB twin (exactly where the format is lossless, within JPEG's loss where it is not), and a
mode with no conversion refused naming the file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lit_tv.images import BACKGROUND, ImageReadError, read_image

JPEG_TOLERANCE = 4.0  # mean absolute difference, in levels of 255, that JPEG's loss leaves on flat 8x8 blocks
JPEG = {"quality": 95, "subsampling": 0}  # colour kept at full resolution, so loss does not bleed between blocks
COLOURS = np.array(
    [[250, 10, 10], [10, 200, 30], [20, 40, 230], [240, 240, 20], [0, 0, 0], [255, 255, 255]], dtype=np.uint8
)


def colour_twin() -> np.ndarray:
    """32x24 RGB of flat 8x8 blocks (JPEG keeps them), no symmetry, so any wrong turn or flip changes it."""
    blocks = np.arange(12).reshape(3, 4) * 5 % len(COLOURS)
    return COLOURS[blocks.repeat(8, 0).repeat(8, 1)]


def grey_twin() -> np.ndarray:
    """24x16 greyscale from 0 to 255, both ends present."""
    return np.linspace(0, 255, 24 * 16).round().astype(np.uint8).reshape(16, 24)


def as_rgb(grey: np.ndarray) -> np.ndarray:
    return np.repeat(grey[..., None], 3, axis=2)


def on_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """What a viewer shows of ``rgb`` with ``alpha`` over the white background."""
    weight = alpha[..., None].astype(np.float64) / 255
    return np.round(rgb * weight + np.array(BACKGROUND) * (1 - weight)).astype(np.uint8)


def alphas(shape: tuple[int, ...]) -> np.ndarray:
    return np.array([0, 128, 255], dtype=np.uint8)[np.arange(shape[0] * shape[1]).reshape(shape[:2]) % 3]


# the stored image per EXIF orientation, as the EXIF 2.3 specification defines it: what a viewer undoes
STORED_FOR_ORIENTATION: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],  # mirrored left to right
    3: lambda a: a[::-1, ::-1],  # turned 180 degrees
    4: lambda a: a[::-1],  # mirrored top to bottom
    5: lambda a: a.transpose(1, 0, 2),  # row 0 is the left side
    6: lambda a: np.rot90(a, 1),  # turned a quarter counterclockwise: the viewer turns it clockwise
    7: lambda a: np.rot90(a, 2).transpose(1, 0, 2),  # row 0 is the right side, column 0 the bottom
    8: lambda a: np.rot90(a, -1),  # turned a quarter clockwise
}


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
@pytest.mark.parametrize("orientation", sorted(STORED_FOR_ORIENTATION))
def test_every_exif_orientation_is_shown_upright(tmp_path, orientation, fmt):
    twin = colour_twin()
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"photo.{fmt.lower()}"
    stored = Image.fromarray(np.ascontiguousarray(STORED_FOR_ORIENTATION[orientation](twin)))
    stored.save(path, fmt, exif=exif, **(JPEG if fmt == "JPEG" else {}))
    decoded = np.asarray(read_image(path)).astype(np.float64)
    assert decoded.shape == twin.shape, f"orientation {orientation}: shown as {decoded.shape[:2]}"
    if fmt == "PNG":
        np.testing.assert_array_equal(decoded, twin)
    else:
        assert np.abs(decoded - twin).mean() <= JPEG_TOLERANCE


def palette_with_transparency() -> tuple[Image.Image, np.ndarray]:
    twin = colour_twin()
    image = Image.fromarray(twin).quantize(len(COLOURS))
    clear = int(np.asarray(image)[0, 0])  # the top-left block's colour is transparent
    image.info["transparency"] = clear
    expected = twin.copy()
    expected[np.asarray(image) == clear] = BACKGROUND
    return image, expected


def colour_key() -> tuple[Image.Image, np.ndarray]:
    """An RGB PNG whose tRNS chunk makes one colour transparent."""
    twin = colour_twin()
    image = Image.fromarray(twin)
    image.info["transparency"] = tuple(int(value) for value in COLOURS[0])
    expected = twin.copy()
    expected[(twin == COLOURS[0]).all(axis=2)] = BACKGROUND
    return image, expected


# mode -> (the stored image, its twin's pixels, the formats that hold the mode); lossy formats get JPEG_TOLERANCE
MODES: dict[str, Callable[[], tuple[Image.Image, np.ndarray, tuple[str, ...]]]] = {
    "RGB": lambda: (Image.fromarray(colour_twin()), colour_twin(), ("PNG", "JPEG", "TIFF")),
    "L": lambda: (Image.fromarray(grey_twin(), "L"), as_rgb(grey_twin()), ("PNG", "TIFF")),
    "1": lambda: (Image.fromarray(grey_twin() > 127).convert("1"), as_rgb((grey_twin() > 127) * 255), ("PNG",)),
    "P": lambda: (Image.fromarray(colour_twin()).quantize(len(COLOURS)), colour_twin(), ("PNG", "GIF")),
    "P with transparency": lambda: (*palette_with_transparency(), ("PNG", "GIF")),
    "RGB with a transparent colour": lambda: (*colour_key(), ("PNG",)),
    "RGBA": lambda: (
        Image.fromarray(np.dstack([colour_twin(), alphas(colour_twin().shape)]), "RGBA"),
        on_white(colour_twin(), alphas(colour_twin().shape)),
        ("PNG", "TIFF"),
    ),
    "LA": lambda: (
        Image.fromarray(np.dstack([grey_twin(), alphas(grey_twin().shape)]), "LA"),
        on_white(as_rgb(grey_twin()), alphas(grey_twin().shape)),
        ("PNG",),
    ),
    "I;16": lambda: (Image.fromarray(grey_twin().astype(np.uint16) * 257), as_rgb(grey_twin()), ("PNG", "TIFF")),
    "I;16B": lambda: (
        Image.frombytes("I;16B", (24, 16), (grey_twin().astype(">u2") * 257).tobytes()),
        as_rgb(grey_twin()),
        (),
    ),
    "I (16-bit values)": lambda: (
        Image.fromarray(grey_twin().astype(np.int32) * 257, "I"),
        as_rgb(grey_twin()),
        ("TIFF",),
    ),
    "I (negative values, stretched)": lambda: (
        Image.fromarray(grey_twin().astype(np.int32) * 1000 - 70000, "I"),
        as_rgb(grey_twin()),
        ("TIFF",),
    ),
    "F (0 to 1)": lambda: (Image.fromarray(grey_twin() / np.float32(255), "F"), as_rgb(grey_twin()), ("TIFF",)),
    "CMYK": lambda: (Image.fromarray(colour_twin()).convert("CMYK"), colour_twin(), ("TIFF", "JPEG")),
    "YCbCr": lambda: (Image.fromarray(colour_twin()).convert("YCbCr"), colour_twin(), ("JPEG",)),
}


def assert_shows(decoded: Image.Image, expected: np.ndarray, lossy: bool, what: str) -> None:
    assert decoded.mode == "RGB", what
    pixels = np.asarray(decoded).astype(np.float64)
    assert pixels.shape == expected.shape, what
    if lossy:
        difference = np.abs(pixels - expected).mean()
        assert difference <= JPEG_TOLERANCE, f"{what}: mean difference {difference:.1f}"
    else:
        np.testing.assert_array_equal(pixels, expected, err_msg=what)


@pytest.mark.parametrize("mode", sorted(MODES))
def test_every_mode_shows_as_its_eight_bit_rgb_twin(tmp_path, mode):
    image, expected, formats = MODES[mode]()
    tolerance = {"YCbCr": 2.0}.get(mode, 0)  # PIL's own YCbCr round trip rounds by a level or two
    assert_shows(read_image(image), expected, bool(tolerance), f"{mode} in memory")
    for fmt in formats:
        path = tmp_path / f"image.{fmt.lower()}"
        options = JPEG if fmt == "JPEG" else {key: image.info[key] for key in ("transparency",) if key in image.info}
        image.save(path, fmt, **options)
        assert_shows(read_image(path), expected, fmt == "JPEG" or bool(tolerance), f"{mode} as {fmt}")


def test_a_sixteen_bit_png_is_not_read_as_white(tmp_path):
    """The red-team's case: a 16-bit greyscale PNG of mid grey (PIL's own conversion clips it to 255)."""
    Image.fromarray(np.full((8, 8), 128 * 257, dtype=np.uint16)).save(tmp_path / "grey16.png")
    assert set(np.asarray(read_image(tmp_path / "grey16.png")).ravel()) == {128}


def test_a_mode_with_no_conversion_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "lab.tif"
    Image.new("LAB", (8, 8), (128, 128, 128)).save(path)
    with pytest.raises(ImageReadError, match=rf"cannot read image {path}: mode LAB has no RGB conversion") as error:
        read_image(path)
    assert error.value.reason.startswith("mode LAB")
    with pytest.raises(FileNotFoundError, match=rf"image file not found: {tmp_path / 'none.png'}"):
        read_image(tmp_path / "none.png")


def test_a_jpeg_checked_in_draft_still_turns_upright(tmp_path):
    path = tmp_path / "big.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.zeros((300, 400, 3), dtype=np.uint8)).save(path, exif=exif)
    assert read_image(Path(path), draft=(64, 64)).height > read_image(Path(path), draft=(64, 64)).width
