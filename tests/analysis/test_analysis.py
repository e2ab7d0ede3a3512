"""Looking inside: the logit lens equals the model's logits, cosine is exact, the inspect callback fills TensorBoard."""

from __future__ import annotations

import json

import lightning as L
import pytest
import torch
from helpers import TEMPLATE, episodes_for, read_events
from lightning.pytorch.loggers import TensorBoardLogger

from lit_tv.analysis.heatmap import head_heatmap, layer_curve
from lit_tv.analysis.logit_lens import as_markdown, top_tokens
from lit_tv.analysis.similarity import cosine_by_layer
from lit_tv.analysis.token_mass import token_set_mass
from lit_tv.analysis.tsne import tsne_2d
from lit_tv.callbacks.inspect_vectors import InspectVectors
from lit_tv.interventions.hooks import record_residual
from lit_tv.methods.function_vectors import FunctionVectors
from lit_tv.methods.residual import ResidualTaskVectors
from lit_tv.model.loading import VLMOptions
from lit_tv.shapes.datamodule import ShapesDataModule
from lit_tv.vectors.kinds import ResidualVector

TASKS = ("colour", "shape", "position")


def test_logit_lens_of_the_last_layer_matches_the_models_logits(zoo_vlm):
    vlm = zoo_vlm("llava")
    inputs = vlm.build_inputs(episodes_for(vlm), TEMPLATE)
    with record_residual(vlm) as recording:
        logits = vlm.last_logits(inputs)
    last_layer = recording.value[:, -1]
    torch.testing.assert_close(vlm.logit_lens(last_layer), logits, atol=1e-5, rtol=1e-5)
    table = top_tokens(vlm, recording.value[0], k=5)
    assert len(table) == vlm.layout.num_layers and all(len(row) == 5 for row in table)
    values, ids = logits[0].softmax(-1).topk(5)
    assert [token for token, _ in table[-1]] == [vlm.tokenizer.decode([i]) for i in ids.tolist()]
    torch.testing.assert_close(torch.tensor([p for _, p in table[-1]]), values, atol=1e-5, rtol=1e-5)
    assert as_markdown(table).count("\n") == vlm.layout.num_layers + 1


def test_token_set_mass_of_the_whole_vocabulary_is_one(zoo_vlm):
    vlm = zoo_vlm("llava")
    hidden = torch.randn(vlm.layout.num_layers, vlm.layout.hidden_size, generator=torch.Generator().manual_seed(0))
    vocabulary = vlm.layout.lm_head.weight.shape[0]
    mass = token_set_mass(vlm, hidden, {"all": range(vocabulary), "first half": range(vocabulary // 2), "none": []})
    assert mass.shape == (vlm.layout.num_layers, 3)
    torch.testing.assert_close(mass[:, 0], torch.ones(vlm.layout.num_layers))
    assert (mass[:, 1] > 0).all() and (mass[:, 1] < 1).all() and (mass[:, 2] == 0).all()


def test_cosine_of_a_vector_with_itself_is_one_and_with_its_negation_minus_one():
    vectors = torch.randn(4, 32, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(cosine_by_layer(vectors, vectors), torch.ones(4))
    torch.testing.assert_close(cosine_by_layer(vectors, -vectors), -torch.ones(4))
    other = torch.randn(4, 32, generator=torch.Generator().manual_seed(1))
    assert (cosine_by_layer(vectors, other).abs() < 0.9).all()
    with pytest.raises(ValueError, match=r"same shape, got \(4, 32\) and \(3, 32\)"):
        cosine_by_layer(vectors, vectors[:3])


@pytest.mark.slow
def test_tsne_maps_few_vectors_to_the_plane():
    assert tsne_2d(torch.randn(5, 16)).shape == (5, 2)
    with pytest.raises(ValueError, match="at least 2 vectors"):
        tsne_2d(torch.randn(1, 16))


def test_inspect_refuses_a_method_without_residual_vectors():
    with pytest.raises(TypeError, match="must be a .*ResidualTaskVectors, got FunctionVectors"):
        InspectVectors().setup(L.Trainer(logger=False), FunctionVectors(), "test")


@pytest.mark.slow
def test_inspect_callback_writes_logit_lens_evolution_tsne_and_cosines(zoo_folder, tmp_path):
    # instructions come from the DataModule (ShapesDataModule.instructions), as a config run takes them
    method = ResidualTaskVectors(model=VLMOptions(str(zoo_folder("llava"))), layer=1, source="ensemble")
    data = ShapesDataModule(
        shots=1, shot_modality="mixed", support_size=12, train_size=0, val_size=0, test_size=6, batch_size=4
    )
    reference = ResidualVector(vectors=torch.randn(3, 2, 64), layer=None, tasks=list(TASKS), method="residual").save(
        tmp_path / "llm.safetensors"
    )
    logger = TensorBoardLogger(tmp_path, name="inspect")
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        logger=logger,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[InspectVectors(top_k=3, queries=2, layers=[0, 1], reference=str(reference))],
    )
    trainer.test(method, datamodule=data, verbose=False)

    events = read_events(logger.log_dir)
    tags = events.Tags()
    text = events.Tensors("inspect/test/logit_lens/colour/text_summary")[0].tensor_proto.string_val[0].decode()
    assert text.startswith("| layer |") and text.count("\n") == 3
    assert {f"inspect/test/evolution/{task}" for task in TASKS} <= set(tags["images"])
    assert {"inspect/test/tsne/layer_0", "inspect/test/tsne/layer_1"} <= set(tags["images"])
    for task in TASKS:
        assert len(events.Scalars(f"inspect/test/cosine/{task}/vs_reference")) == 2
        assert any(tag.startswith(f"inspect/test/cosine/{task}/") and "instruction" in tag for tag in tags["scalars"])
    lens = json.loads((tmp_path / "inspect" / "version_0" / "logit_lens_test.json").read_text())
    assert set(lens) == set(TASKS) and len(lens["shape"]) == 2 and len(lens["shape"][0]) == 3


def test_the_head_heatmap_has_axes_a_colour_scale_and_the_selected_heads_marked():
    cells = torch.linspace(0, 1, 4 * 8).view(4, 8)
    selected = torch.zeros(4, 8, dtype=torch.bool)
    selected[1, 2] = selected[3, 7] = True
    figure = head_heatmap(cells, "t", "sigmoid(theta)", selected, limits=(0, 1))
    heatmap, colour_bar = figure.axes
    assert (heatmap.get_xlabel(), heatmap.get_ylabel()) == ("head", "layer")
    assert colour_bar.get_ylabel() == "sigmoid(theta)"
    marks = heatmap.collections[0].get_offsets()  # (head, layer) of every boxed cell
    assert sorted(map(tuple, marks.tolist())) == [(2.0, 1.0), (7.0, 3.0)]
    assert heatmap.images[0].get_clim() == (0, 1)
    effects = head_heatmap(cells - 0.8, "aie", "AIE", diverging=True)
    assert effects.axes[0].images[0].get_clim() == pytest.approx((-0.8, 0.8))  # centred on 0


def test_the_layer_curve_marks_the_chosen_layer():
    axes = layer_curve([0.2, 0.9, 0.5], "t", best=1).axes[0]
    assert axes.get_xlabel() == "layer" and axes.lines[0].get_ydata().tolist() == [0.2, 0.9, 0.5]
    assert axes.lines[1].get_xdata()[0] == 1
