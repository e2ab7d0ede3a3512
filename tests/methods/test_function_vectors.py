"""Function Vectors: batched AIE equals one forward per head, the FV is the heads' own output, the CLI runs."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from helpers import MTV_YAML, SHAPES_CONFIGS, TEMPLATE, colour_image, read_events, sized

from lit_tv.cli.app import build_cli
from lit_tv.cli.command import main
from lit_tv.episodes import Episode, Example
from lit_tv.interventions.hooks import replace_heads
from lit_tv.methods.function_vectors import (
    FunctionVectors,
    function_vector,
    indirect_effects,
    shuffle_labels,
    top_heads,
)
from lit_tv.model.loading import VLMOptions
from lit_tv.model.vlm import FrozenVLM
from lit_tv.vectors.file import load_task_vector
from lit_tv.vectors.kinds import ResidualVector

CONFIG = SHAPES_CONFIGS / "function_vectors.yaml"


def _example(colour: str) -> Example:
    return Example("colour?", images=(colour_image(colour),), answers=(colour,))


PROMPT = Episode(query=_example("red"), shots=(_example("blue"), _example("green"), _example("yellow")))


def _answer_probability(vlm: FrozenVLM, prompt: Episode) -> torch.Tensor:
    target = vlm.answer_token_ids([prompt], TEMPLATE)[0]
    return vlm.last_logits(vlm.build_inputs([prompt], TEMPLATE)).softmax(-1)[0, target]


@pytest.fixture
def private_llava(zoo_folder) -> FrozenVLM:
    """A fresh copy of the tiny LLaVA that a test may change."""
    return FrozenVLM.from_pretrained(zoo_folder("llava"))


@pytest.mark.slow
@pytest.mark.parametrize("rows_per_forward", [4, 256])
def test_batched_indirect_effects_equal_one_forward_per_head(private_llava, rows_per_forward):
    vlm, layout = private_llava, private_llava.layout
    # A random model spreads its probability thinly; a sharper lm_head and the model's own top token as the
    # answer put the target probability far from 0, so an error in the batched path shows above the tolerance.
    layout.lm_head.weight.data.mul_(10)
    prompt = shuffle_labels(PROMPT, random.Random(0))
    top = vlm.last_logits(vlm.build_inputs([prompt], TEMPLATE))[0].argmax()
    prompt = Episode(query=replace(prompt.query, answers=(vlm.tokenizer.decode([top]).strip(),)), shots=prompt.shots)
    corrupted = _answer_probability(vlm, prompt)
    assert corrupted > 0.05
    means = 3 * torch.randn(
        layout.num_layers, layout.num_heads, layout.head_dim, generator=torch.Generator().manual_seed(0)
    )
    batched = indirect_effects(vlm, TEMPLATE, prompt, means, rows_per_forward=rows_per_forward)
    looped = torch.zeros(layout.num_layers, layout.num_heads)
    for layer in range(layout.num_layers):
        for head in range(layout.num_heads):
            mask = torch.zeros(layout.num_layers, layout.num_heads, dtype=torch.bool)
            mask[layer, head] = True
            with replace_heads(vlm, means, mask):
                looped[layer, head] = _answer_probability(vlm, prompt) - corrupted
    torch.testing.assert_close(batched, looped, atol=1e-6, rtol=0)  # fp32 paths agree to ~1e-7
    assert looped.abs().max() > 1e-3, "patching a head with a large mean should move the answer probability"


def test_function_vector_sums_each_heads_out_projection_without_its_bias(private_llava):
    vlm, layout = private_llava, private_llava.layout
    projection = layout.out_projections[0]
    projection.bias = torch.nn.Parameter(torch.randn(layout.hidden_size), requires_grad=False)
    means = torch.randn(
        layout.num_layers, layout.num_heads, layout.head_dim, generator=torch.Generator().manual_seed(1)
    )
    heads = torch.zeros(layout.num_layers, layout.num_heads, dtype=torch.bool)
    heads[0, 1] = heads[0, 3] = heads[1, 0] = True
    expected = torch.zeros(layout.hidden_size)
    for layer, head in heads.nonzero().tolist():
        columns = slice(head * layout.head_dim, (head + 1) * layout.head_dim)
        expected += layout.out_projections[layer].weight[:, columns] @ means[layer, head]
    torch.testing.assert_close(function_vector(vlm, means, heads), expected, atol=1e-5, rtol=1e-5)


def test_top_heads_takes_the_highest_scores_or_every_head_when_there_are_fewer():
    scores = torch.tensor([[0.1, 0.9], [0.5, -1.0]])
    assert top_heads(scores, 2).tolist() == [[False, True], [True, False]]
    assert top_heads(scores, 10).all()


def test_shuffled_labels_are_a_seeded_permutation_of_the_shot_answers():
    shuffled = [shuffle_labels(PROMPT, random.Random(seed)) for seed in range(6)]
    answers = [tuple(shot.answer for shot in episode.shots) for episode in shuffled]
    assert all(sorted(row) == ["blue", "green", "yellow"] for row in answers)
    assert len(set(answers)) > 1
    assert shuffle_labels(PROMPT, random.Random(3)) == shuffled[3]
    assert all(episode.query == PROMPT.query for episode in shuffled)


def test_a_layer_outside_the_model_is_refused_naming_the_option(zoo_folder):
    method = FunctionVectors(model=VLMOptions(str(zoo_folder("llava"))), layer=7)
    with pytest.raises(ValueError, match=r"model.init_args.layer=7 is out of range: .* has 2 layers"):
        method.configure_model()


@pytest.mark.slow
def test_function_vectors_run_through_the_cli_and_log_accuracy_and_aie(zoo_folder, monkeypatch, workdir):
    main(
        [
            "test",
            "--config",
            str(CONFIG),
            "--model.init_args.model.name",
            str(zoo_folder("llava")),
            "--model.init_args.aie_prompts",
            "2",
            "--model.init_args.rows_per_forward",
            "4",
            "--model.init_args.top_k",
            "3",
            "--data.init_args.support_size",
            "6",
            "--data.init_args.train_size",
            "0",
            "--data.init_args.val_size",
            "0",
            "--data.init_args.test_size",
            "6",
        ]
    )
    events = read_events(workdir / "logs" / "shapes_function_vectors" / "version_0")
    assert {"test/accuracy", "test/accuracy/colour"} <= set(events.Tags()["scalars"])
    assert 0.0 <= events.Scalars("test/accuracy")[0].value <= 1.0
    assert {"fv/aie/colour", "fv/aie/shape", "fv/aie/position"} <= set(events.Tags()["images"])
    aie_map = events.Images("fv/aie/colour")[-1]
    assert aie_map.width >= 200 and aie_map.height >= 150, (aie_map.width, aie_map.height)
    tensors, metadata = load_task_vector(workdir / "logs" / "shapes_function_vectors" / "function_vectors.safetensors")
    assert tensors["vectors"].shape == (3, 64) and tensors["aie"].shape == (3, 2, 4)
    heads = tensors["heads"].bool()
    assert heads.sum((1, 2)).tolist() == [3, 3, 3] and (heads == heads[0]).all(), "shared heads: the same per task"
    assert torch.equal(heads[0], top_heads(tensors["aie"].mean(0), 3))
    assert metadata["layer"] == "0" and metadata["tasks"] == '["colour", "shape", "position"]'
    # the exported file is enough to test again: nothing is recomputed, the same FVs are patched in
    again = build_cli(
        CONFIG,
        [
            "--model.init_args.model.name",
            str(zoo_folder("llava")),
            "--model.init_args.task_vector",
            str(workdir / "logs" / "shapes_function_vectors" / "function_vectors.safetensors"),
            "--model.init_args.export",
            "null",
            "--data.init_args.test_size",
            "6",
        ],
    )
    monkeypatch.setattr(again.model, "compute_vectors", lambda: pytest.fail("FVs were computed again"))
    again.trainer.test(again.model, datamodule=again.datamodule)
    assert again.model.layer == 0
    torch.testing.assert_close(again.model.task_vector().vectors, tensors["vectors"])  # one row per task
    assert [again.model.test_summary(task)["heads"] for task in ("all", "colour")] == [3, 3], "the file's heads"


@pytest.mark.slow
def test_a_data_seed_other_than_the_function_vectors_seed_runs_and_is_logged(workdir):
    """Lightning refused to merge the DataModule's `seed` with FunctionVectors' own (label shuffles)."""
    fv = str(Path(MTV_YAML).parent / "function_vectors.yaml")
    main(
        [
            "test",
            "--config",
            fv,
            *sized(support=2, train=2, test=2),
            "--data.init_args.tasks=[colour]",
            "--model.init_args.aie_prompts=2",
            "--data.init_args.seed=1",
        ]
    )
    (hparams,) = Path("logs/shapes_function_vectors").glob("*/hparams.yaml")
    logged = hparams.read_text()
    assert "seed: 0\n" in logged and "    seed: 1\n" in logged, "the method's seed and the data's, both kept"


@pytest.mark.parametrize("policy", ["prompt", "every_token"])
def test_the_policy_option_decides_where_the_function_vector_is_added(zoo_folder, policy):
    """`policy` reaches the intervention: the FV is added at the prompt's last position, and under ``every_token``
    (the paper configs') at every generated token too. The vector's own policy is the other one, so a method that
    ignored the option (or patched the prompt only whatever it says) fails here."""
    method = FunctionVectors(model=VLMOptions(str(zoo_folder("llava"))), policy=policy, layer=0, max_new_tokens=4)
    method.configure_model()
    method.template = TEMPLATE
    layout = method.vlm.layout
    method.vector = ResidualVector(
        vectors=torch.full((1, layout.hidden_size), 1e4),
        layer=0,
        mode="add",
        tasks=[""],
        method="fv",
        policy="every_token" if policy == "prompt" else "prompt",
    )
    added: list[bool] = []  # per forward: whether layer 0's output at the last position carries the FV

    def spy(module, args, kwargs) -> None:
        hidden = args[0] if args else kwargs["hidden_states"]
        added.append(bool(hidden[:, -1].abs().max() > 1e3))

    handle = layout.layers[1].register_forward_pre_hook(spy, with_kwargs=True)
    try:
        method.answer([PROMPT])
    finally:
        handle.remove()
    assert len(added) >= 2 and added[0]  # the prompt's forward, then the generated tokens'
    assert all(added[1:]) if policy == "every_token" else not any(added[1:])
