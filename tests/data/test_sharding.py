"""A model dispatched over devices (accelerate: here CPU + disk offload) reads and patches like the plain one."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from helpers import SHAPES_CONFIGS, TEMPLATE, episodes_for, zoo_mtv_run

from lit_tv.cli.app import build_cli
from lit_tv.interventions.hooks import patch_residual, record_heads, record_residual, replace_heads
from lit_tv.interventions.shared_prefix import fork_last_token
from lit_tv.model.loading import VLMOptions
from lit_tv.model.vlm import FrozenVLM

# layers split between CPU and disk: accelerate's hooks place (and load from disk) every one of them
LAYER_MAP = {
    "model.vision_tower": "cpu",
    "model.multi_modal_projector": "disk",
    "model.language_model.embed_tokens": "cpu",
    "model.language_model.layers.0": "disk",
    "model.language_model.layers.1": "cpu",
    "model.language_model.norm": "disk",
    "model.language_model.rotary_emb": "cpu",
    "lm_head": "disk",
}
SMALL_CPU = {"device_map": "auto", "max_memory": {"cpu": "300KB"}}  # what does not fit goes to disk


@pytest.fixture(params=["layer_map", "small_max_memory"])
def dispatched(request, zoo_folder, tmp_path) -> FrozenVLM:
    options = {"device_map": LAYER_MAP} if request.param == "layer_map" else SMALL_CPU
    vlm = FrozenVLM.from_options(
        VLMOptions(str(zoo_folder("llava")), offload_folder=str(tmp_path / "offload"), **options), "cpu"
    )
    assert vlm.is_dispatched and set(vlm.model.hf_device_map.values()) == {"cpu", "disk"}
    assert all(hasattr(layer, "_hf_hook") for layer in vlm.layout.layers)
    assert vlm.layout.lm_head.weight.device.type == "meta"  # offloaded: only the hooks know where it is
    return vlm


def _logits(vlm: FrozenVLM, inputs) -> torch.Tensor:
    with torch.inference_mode():
        return vlm.model(**inputs).logits


@pytest.mark.slow
def test_recording_replacing_and_patching_give_the_numbers_of_the_plain_model(zoo_vlm, dispatched):
    plain = zoo_vlm("llava")
    layout = plain.layout
    generator = torch.Generator().manual_seed(0)
    values = torch.randn(layout.num_layers, layout.num_heads, layout.head_dim, generator=generator)
    masks = torch.rand(3, layout.num_layers, layout.num_heads, generator=generator) < 0.5
    vector = torch.randn(layout.hidden_size, generator=generator)
    results = []
    for vlm in (plain, dispatched):
        inputs = vlm.build_inputs(episodes_for(vlm), TEMPLATE)
        with record_heads(vlm) as heads, record_residual(vlm) as residual:
            vlm.last_logits(inputs)
        with replace_heads(vlm, values, masks, policy="every_token"):
            replaced = vlm.last_logits(inputs)
            answers = vlm.generate(inputs, max_new_tokens=3)
        with patch_residual(vlm, 1, vector):
            patched = _logits(vlm, inputs)
        results.append((heads.value, residual.value, replaced, patched, answers))
    for plain_result, dispatched_result in zip(*results, strict=True):
        if isinstance(plain_result, list):
            assert dispatched_result == plain_result
        else:
            torch.testing.assert_close(dispatched_result, plain_result, atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_a_dispatched_model_shares_the_reinforce_prefix_too(zoo_vlm, dispatched):
    episodes = episodes_for(dispatched)[:1]
    results = []
    for vlm in (zoo_vlm("llava"), dispatched):
        inputs = vlm.build_inputs(episodes, TEMPLATE)
        branch = fork_last_token(vlm, inputs, 4, reuse=True)
        assert branch.along == "positions"
        results.append((fork_last_token(vlm, inputs, 4).logits(), branch.logits()))
    for plain, dispatched_logits in zip(*results, strict=True):
        torch.testing.assert_close(dispatched_logits, plain, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_memory": {"cpu": "1GB"}}, "take effect only with model.device_map"),
        ({"device_map": "everywhere"}, "model.device_map must be one of"),
        ({"device_map": {"": "disk"}}, "set model.offload_folder"),
    ],
)
def test_bad_dispatch_options_are_refused_before_loading(options, message):
    with pytest.raises(ValueError, match=message):
        VLMOptions("lit_tv/shapes-toy", **options)


@pytest.mark.slow
def test_fit_with_a_dispatched_model_learns_what_the_plain_one_learns_and_never_moves_it(
    zoo_folder, monkeypatch, workdir
):
    dispatch = [
        "--model.init_args.model.device_map",
        "auto",
        "--model.init_args.model.max_memory",
        "{cpu: 300KB}",
        "--model.init_args.model.offload_folder",
        str(workdir / "offload"),
        "--model.init_args.export",
        "null",
        "--trainer.max_steps",
        "2",
    ]
    thetas = []
    for run, extra in (("dispatched", dispatch), ("plain", dispatch[-4:])):
        (workdir / run).mkdir()  # each fit in a folder of its own: the second would meet the first's outputs
        monkeypatch.chdir(workdir / run)
        cli = build_cli(SHAPES_CONFIGS / "mtv.yaml", zoo_mtv_run(zoo_folder("llava"), *extra))
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
        thetas.append(cli.model.theta.detach().clone())
        if extra is dispatch:
            vlm = cli.model.vlm
            assert vlm.is_dispatched and "disk" in vlm.model.hf_device_map.values()
            assert vlm.layout.lm_head.weight.device.type == "meta"  # Lightning did not move it
            assert "vlm" not in dict(cli.model.named_modules()) and [n for n, _ in cli.model.named_parameters()] == [
                "theta"
            ]
    assert (thetas[0] != -1.0).any()
    torch.testing.assert_close(thetas[0], thetas[1], atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_a_dispatched_model_under_ddp_is_refused_with_the_reason(zoo_folder, tmp_path):
    args = [
        *zoo_mtv_run(zoo_folder("llava"), "--model.init_args.model.device_map", "auto"),
        "--trainer.strategy",
        "ddp",
        "--trainer.devices",
        "2",
        "--data.init_args.batch_size",
        "2",
    ]
    done = subprocess.run(
        [sys.executable, "-m", "lit_tv.cli.command", "fit", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert done.returncode != 0
    assert "each of which would load its own copy" in done.stderr and "trainer.devices: 1" in done.stderr
