"""A vector file records how it was made and scored (prompt template, chat wrap, image placeholder, new tokens,
benchmark), `load` exposes it, and a run that prompts otherwise is told which fields differ."""

from __future__ import annotations

import random
from dataclasses import asdict

import pytest
from helpers import MTV_YAML, mtv_vector_file, sized, zoo_mtv_run

from lit_tv.cli.command import main
from lit_tv.episodes import Episode, Example
from lit_tv.model.loading import VLMOptions
from lit_tv.model.vlm import FrozenVLM
from lit_tv.prompts import PromptTemplate
from lit_tv.shapes.datamodule import ShapesDataModule
from lit_tv.shapes.world import draw, objects
from lit_tv.vectors.file import TaskVectorError
from lit_tv.vectors.kinds import load


@pytest.mark.slow
def test_an_exported_vector_records_its_prompt_and_a_run_that_prompts_otherwise_is_warned(zoo_folder, workdir):
    run = zoo_mtv_run(zoo_folder("llava"))
    main(["fit", *run])
    path = workdir / "logs" / "shapes_mtv_colour" / "smoke" / "task_vector.safetensors"  # a short fit
    usage = load(path).usage
    assert usage["prompt"] == asdict(ShapesDataModule().template)
    assert usage["max_new_tokens"] == 1 and usage["benchmark"] == "ShapesDataModule"
    assert usage["prompt_wrap"] is None and usage["image_placeholder"] == "<image>"
    assert usage["patch_position"] == "last_prompt_token"
    assert usage["config"]["model"]["class_path"] == "lit_tv.methods.mtv.MTV"  # the run's blocks, to rebuild it
    assert usage["config"]["data"]["init_args"]["tasks"] == ["colour"] and usage["lit_tv_version"]
    with pytest.warns(UserWarning, match=r"another prompt or generation than this run's .*max_new_tokens: 1 -> 2"):
        main(["test", *run, f"--model.init_args.task_vector={path}", "--model.init_args.max_new_tokens=2"])


@pytest.mark.slow
def test_a_file_from_before_the_usage_fields_loads_and_says_what_is_unchecked(caplog, workdir):
    path = mtv_vector_file(workdir, "old.safetensors", metadata={"tasks": ["colour"]})
    assert {"prompt", "prompt_wrap", "image_placeholder", "max_new_tokens"}.isdisjoint(load(path).usage)
    main(["test", "--config", MTV_YAML, *sized(support=2, train=2, test=2), f"--model.init_args.task_vector={path}"])
    assert "does not record its prompt, prompt_wrap, image_placeholder, max_new_tokens" in caplog.text


def test_a_prompt_rendered_from_the_file_is_the_one_its_run_built(workdir):
    """`render_prompt` gives the text lit_tv's model renders for the same query in the recorded format (wrap and
    placeholder included); a file without a recorded prompt is refused, naming the file."""
    template = PromptTemplate(query="{images}Q: {text} A:", answer=" {answer}\n", instruction="Answer. ")
    usage = {"prompt": asdict(template), "prompt_wrap": "USER: {prompt} ASSISTANT:", "image_placeholder": "<image>"}
    path = mtv_vector_file(workdir, "v.safetensors", metadata={"tasks": ["colour"], **usage})
    vlm = FrozenVLM.from_options(VLMOptions(prompt_wrap=usage["prompt_wrap"]))
    image = draw(objects("heldout")[0], random.Random(0))
    assert load(path).render_prompt("what colour?", images=1) == vlm.render(
        Episode(Example("what colour?", (image,))), template
    )
    old = mtv_vector_file(workdir, "old.safetensors", metadata={"tasks": ["colour"]})
    with pytest.raises(TaskVectorError, match=r"old.safetensors does not record its prompt"):
        load(old).render_prompt("what colour?", images=1)
