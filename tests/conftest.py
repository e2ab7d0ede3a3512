"""Shared fixtures: zoo models saved once per session and loaded through the public path."""

from __future__ import annotations

import pytest
import transformers
from PIL import Image

from lit_tv.episodes import Episode, Example
from lit_tv.model.vlm import FrozenVLM
from lit_tv.prompts import PromptTemplate
from lit_tv.testing.zoo import ZOO, save_zoo_model

transformers.utils.logging.disable_progress_bar()
transformers.utils.logging.set_verbosity_error()

ZOO_NAMES = sorted(ZOO)
TEMPLATE = PromptTemplate(query="{images}Q: {text}\nA:", answer=" {answer}\n")


@pytest.fixture(scope="session")
def zoo_folder(tmp_path_factory):
    """name -> folder of the saved tiny model, built on first use."""
    folders = {}

    def get(name: str):
        if name not in folders:
            folders[name] = save_zoo_model(name, tmp_path_factory.mktemp(name))
        return folders[name]

    return get


@pytest.fixture(scope="session")
def zoo_vlm(zoo_folder):
    """name -> FrozenVLM loaded from its saved folder, like a user's hub id or path."""
    loaded = {}

    def get(name: str) -> FrozenVLM:
        if name not in loaded:
            loaded[name] = FrozenVLM.from_pretrained(zoo_folder(name))
        return loaded[name]

    return get


def colour_image(colour: str, size: tuple[int, int] = (40, 30)) -> Image.Image:
    return Image.new("RGB", size, colour)


def episodes_for(vlm: FrozenVLM) -> list[Episode]:
    """Three episodes of different lengths (so left padding matters) that this model can take."""
    images_per_shot = 1 if vlm.is_multimodal else 0

    def example(text: str, colour: str, n_images: int) -> Example:
        return Example(text=text, images=tuple(colour_image(colour) for _ in range(n_images)), answers=(colour,))

    query_images = 1 if vlm.is_multimodal else 0
    return [
        Episode(query=example("what colour?", "red", query_images)),
        Episode(
            query=example("and this one, which colour is it?", "blue", query_images),
            shots=(example("colour?", "green", images_per_shot),),
        ),
        Episode(
            query=example("colour?", "yellow", query_images),
            shots=(example("what colour is this?", "red", images_per_shot), example("this?", "blue", images_per_shot)),
        ),
    ]
