"""`model.revision`: the hub revision reaches every `from_pretrained` (model, config, processor, tokenizer) and
is recorded with the exported vector (tests/vectors/test_task_vectors.py); a revision that cannot pin anything is
refused before any weights load.

A saved tiny model has no revisions, so the hub is stood in for by loaders that record the revision asked for
and then read the zoo model's folder."""

from __future__ import annotations

import pytest
import transformers
from benchmark_fixtures import write_cross_modal

import lit_tv.model.loading
from lit_tv.cli.command import main
from lit_tv.model.loading import ModelLoadError, VLMOptions
from lit_tv.model.vlm import FrozenVLM
from lit_tv.paper.reproduction import CONFIGS
from lit_tv.vectors.file import layout_from_config

HUB_ID = "someone/pinned-model"
PINNED = "2c42686c57fe21cf0348c9ce1077d094b72e7698"
LOADERS = (
    "AutoConfig",
    "AutoModelForImageTextToText",
    "AutoModelForCausalLM",
    "AutoProcessor",
    "AutoTokenizer",
    "AutoImageProcessor",
)


@pytest.fixture
def hub(monkeypatch):
    """Serve `HUB_ID` from a local folder; returns (set the folder, {loader: revisions asked for})."""
    asked: dict[str, list[str | None]] = {}
    served = {}

    def serving(name: str, original):
        def load(name_or_path, *args, **kwargs):
            if name_or_path != HUB_ID:
                return original(name_or_path, *args, **kwargs)
            asked.setdefault(name, []).append(kwargs.pop("revision", "<not passed>"))
            return original(str(served["folder"]), *args, **kwargs)

        return load

    for name in LOADERS:
        cls = getattr(transformers, name)
        monkeypatch.setattr(cls, "from_pretrained", serving(name, cls.from_pretrained))
    monkeypatch.setattr(lit_tv.model.loading, "cached_file", serving("cached_file", lit_tv.model.loading.cached_file))
    return lambda folder: served.update(folder=folder), asked


@pytest.mark.parametrize(
    ("zoo", "loaders"),
    [
        ("llava", {"AutoConfig", "AutoModelForImageTextToText", "AutoProcessor"}),
        ("llama", {"AutoConfig", "AutoModelForCausalLM", "AutoTokenizer"}),
        # the processor built without torchvision: tokenizer and image processor loaded one by one
        ("qwen2_vl", {"AutoConfig", "AutoModelForImageTextToText", "AutoTokenizer", "AutoImageProcessor"}),
    ],
)
def test_the_revision_reaches_every_from_pretrained(hub, zoo_folder, zoo, loaders):
    serve, asked = hub
    serve(zoo_folder(zoo))
    FrozenVLM.from_options(VLMOptions(HUB_ID, revision=PINNED), "cpu")
    assert loaders <= set(asked)
    assert {name: set(revisions) for name, revisions in asked.items()} == {name: {PINNED} for name in asked}


def test_the_layout_check_reads_the_config_of_the_pinned_revision(hub, zoo_folder):
    """Task vectors and checkpoints are checked against `layout_from_config` before weights load."""
    serve, asked = hub
    serve(zoo_folder("llama"))
    layout = layout_from_config(VLMOptions(HUB_ID, revision=PINNED))
    assert asked == {"AutoConfig": [PINNED]}
    assert layout["num_layers"] >= 1


def test_without_a_revision_the_loaders_get_none(hub, zoo_folder):
    serve, asked = hub
    serve(zoo_folder("llama"))
    FrozenVLM.from_options(VLMOptions(HUB_ID), "cpu")
    assert {revision for revisions in asked.values() for revision in revisions} == {None}


@pytest.mark.parametrize("revision", ["", "  ", 7])
def test_an_empty_or_non_text_revision_is_refused_by_name(revision):
    with pytest.raises(ValueError, match="model.revision must be a hub commit hash, branch or tag"):
        VLMOptions(HUB_ID, revision=revision)


def test_a_revision_for_a_local_folder_is_refused_before_loading(zoo_folder):
    with pytest.raises(ModelLoadError, match="model.revision .* pins a hub id, but model.name .* is the local folder"):
        FrozenVLM.from_options(VLMOptions(str(zoo_folder("llama")), revision=PINNED), "cpu")


def test_a_pinned_paper_config_on_a_local_copy_stops_with_one_line_saying_what_to_set(zoo_folder, workdir):
    """The cross-modal configs pin the reference's revisions; a run on a local folder is told to unpin."""
    root = write_cross_modal(workdir / "data", tasks=("country-capital",))
    args = [
        "test",
        "--config",
        str(CONFIGS / "cross_modal" / "xpatch_llava-1.5-7b.yaml"),
        "--data.init_args.root",
        str(root),
        "--data.init_args.tasks=[country-capital]",
        "--model.init_args.model.name",
        str(zoo_folder("llava")),
        "--model.init_args.model.quantization",
        "null",
        "--trainer.accelerator",
        "cpu",
    ]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    text = str(exit_info.value.code)
    assert text.startswith("lit-tv: error: ") and "\n" not in text, text
    assert "set model.revision: null" in text and "a272c74b2481d8aff3aa6fc2c4bf891fe57334fb" in text, text
