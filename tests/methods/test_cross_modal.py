"""Residual task vectors: extraction, the layer grid search on validation, LLM -> VLM transfer."""

from __future__ import annotations

import pytest
import torch
from helpers import SHAPES_CONFIGS, logged_scalars, read_events, zoo_cross_modal_run

from lit_tv.cli.app import build_cli
from lit_tv.cli.command import main
from lit_tv.vectors.file import load_task_vector

CONFIG = SHAPES_CONFIGS / "cross_modal.yaml"


@pytest.mark.slow
def test_grid_search_selects_by_validation_and_test_uses_that_layer(zoo_folder, monkeypatch, workdir):
    cli = build_cli(CONFIG, zoo_cross_modal_run(zoo_folder("llava")))
    chosen = {}
    accuracy_by_layer = torch.tensor([0.2, 0.9])  # validation says layer 1

    def fake_scores(batch):
        return accuracy_by_layer.expand(len(batch), 2)

    original_patch = cli.model._patch

    def spy_patch(batch, layer):
        chosen.setdefault("layers", set()).add(layer)
        return original_patch(batch, layer)

    monkeypatch.setattr(cli.model, "layer_scores", fake_scores)
    monkeypatch.setattr(cli.model, "_patch", spy_patch)
    cli.trainer.test(cli.model, datamodule=cli.datamodule)
    assert cli.model.layer == 1
    assert chosen["layers"] == {1}  # every test query was patched at the validation-chosen layer
    events = read_events(next((workdir / "logs" / "shapes_cross_modal").glob("version_*")))
    curve = [event.value for event in events.Scalars("val/accuracy_by_layer")]
    assert curve == pytest.approx([0.2, 0.9])
    plot = events.Images("val/accuracy_by_layer_plot")[-1]
    assert plot.width >= 300 and plot.height >= 200, (plot.width, plot.height)
    _, metadata = load_task_vector(workdir / "logs" / "shapes_cross_modal" / "task_vectors.safetensors")
    assert metadata["layer"] == "1"


@pytest.mark.slow
def test_validate_runs_the_grid_search_on_real_forwards(zoo_folder, workdir):
    main(["validate", *zoo_cross_modal_run(zoo_folder("llava"))])
    tensors, metadata = load_task_vector(workdir / "logs" / "shapes_cross_modal" / "task_vectors.safetensors")
    assert tensors["vectors"].shape == (3, 2, 64)  # tasks x layers x hidden
    assert metadata["tasks"] == '["colour", "shape", "position"]' and metadata["layer"] in ("0", "1")


@pytest.mark.slow
@pytest.mark.parametrize("source", ["instruction", "ensemble"])
def test_instruction_and_ensemble_vectors_are_scored_and_exported_with_their_source(zoo_folder, source, workdir):
    instructions = '{"colour": "name the colour", "shape": "name the shape", "position": "where is it"}'
    main(
        [
            "test",
            *zoo_cross_modal_run(
                zoo_folder("llava"),
                "--model.init_args.source",
                source,
                "--model.init_args.instructions",
                instructions,
                "--model.init_args.layer",
                "1",
            ),
        ]
    )
    tensors, metadata = load_task_vector(workdir / "logs" / "shapes_cross_modal" / "task_vectors.safetensors")
    assert metadata["source"] == source and metadata["layer"] == "1"
    assert metadata["tasks"] == '["colour", "shape", "position"]' and tensors["vectors"].abs().sum(-1).gt(0).all()
    scalars = logged_scalars(workdir / "logs" / "shapes_cross_modal" / "version_0")
    for tag in ("test/accuracy", "test/accuracy/colour", "test/accuracy/shape", "test/accuracy/position"):
        assert len(scalars[tag]) == 1 and 0.0 <= scalars[tag][0] <= 1.0, tag


@pytest.mark.slow
def test_vectors_from_a_text_llm_patch_a_vlm_with_the_same_hidden_size(zoo_folder, workdir):
    cli = build_cli(
        CONFIG,
        zoo_cross_modal_run(
            zoo_folder("llava"),
            "--model.init_args.extractor.name",
            str(zoo_folder("llama")),
            "--model.init_args.layer",
            "0",
            "--model.init_args.export=null",  # two runs in one folder: neither needs its vectors saved
        ),
    )
    cli.trainer.test(cli.model, datamodule=cli.datamodule)
    own = build_cli(
        CONFIG,
        zoo_cross_modal_run(zoo_folder("llava"), "--model.init_args.layer", "0", "--model.init_args.export=null"),
    )
    own.trainer.test(own.model, datamodule=own.datamodule)
    for vector, own_vector in zip(cli.model.task_vector().vectors, own.model.task_vector().vectors, strict=True):
        assert not torch.allclose(vector, own_vector)  # extracted in the Llama, not in the VLM


@pytest.mark.slow
def test_instruction_source_needs_an_instruction_per_task(zoo_folder, workdir):
    cli = build_cli(
        CONFIG,
        zoo_cross_modal_run(
            zoo_folder("llava"),
            "--model.init_args.source",
            "instruction",
            "--model.init_args.instructions",
            '{"colour": "red green"}',
        ),
    )
    with pytest.raises(ValueError, match="needs an instruction for task 'shape'"):
        cli.trainer.test(cli.model, datamodule=cli.datamodule)


@pytest.mark.slow
def test_last_shot_extraction_reads_the_last_demonstrations_delimiter_inside_the_full_prompt():
    from lit_tv.interventions.hooks import record_residual
    from lit_tv.methods.residual import at_last_demonstration
    from lit_tv.model.vlm import FrozenVLM
    from lit_tv.shapes.toy import SHAPES_TEMPLATE
    from lit_tv.shapes.world import make_episodes

    vlm = FrozenVLM.from_pretrained("lit_tv/shapes-toy")
    episode = make_episodes(["colour"], 1, 3, seed=5, shot_modality="text", query_modality="text")[0]
    full = vlm.build_inputs([episode], SHAPES_TEMPLATE)
    delimiters = (full["input_ids"][0] == vlm.tokenizer.convert_tokens_to_ids("=")).nonzero().flatten()
    with record_residual(vlm, position=delimiters[-2:-1]) as inside:  # the last shot's "=", before its answer
        vlm.last_logits(full)
    with record_residual(vlm) as cut:
        vlm.last_logits(vlm.build_inputs([at_last_demonstration(episode)], SHAPES_TEMPLATE))
    torch.testing.assert_close(cut.value, inside.value, atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_ensemble_is_the_weighted_mean_of_instruction_and_exemplar_vectors(zoo_folder, workdir):
    vectors = {}
    for source in ("exemplars", "instruction", "ensemble"):
        cli = build_cli(
            CONFIG,
            zoo_cross_modal_run(
                zoo_folder("llava"),
                "--model.init_args.source",
                source,
                "--model.init_args.ensemble_weight",
                "0.25",
                "--model.init_args.layer",
                "0",
                "--model.init_args.export=null",  # three runs in one folder: none needs its vectors saved
            ),
        )
        cli.trainer.test(cli.model, datamodule=cli.datamodule)
        vectors[source] = cli.model.task_vector().vectors  # one row per task
    torch.testing.assert_close(vectors["ensemble"], 0.25 * vectors["instruction"] + 0.75 * vectors["exemplars"])
    for instruction, exemplars in zip(vectors["instruction"], vectors["exemplars"], strict=True):
        assert not torch.allclose(instruction, exemplars)


@pytest.mark.slow
def test_exported_vectors_load_with_their_layer_and_are_not_extracted_again(zoo_folder, monkeypatch, workdir):
    first = build_cli(CONFIG, zoo_cross_modal_run(zoo_folder("llava"), "--model.init_args.layer", "1"))
    first.trainer.test(first.model, datamodule=first.datamodule)
    saved = workdir / "logs" / "shapes_cross_modal" / "task_vectors.safetensors"
    again = build_cli(
        CONFIG,
        zoo_cross_modal_run(
            zoo_folder("llava"), "--model.init_args.task_vector", str(saved), "--model.init_args.export", "null"
        ),
    )
    monkeypatch.setattr(again.model, "extract", lambda: pytest.fail("vectors were extracted again"))
    again.trainer.test(again.model, datamodule=again.datamodule)
    assert again.model.layer == 1
    torch.testing.assert_close(again.model.task_vector().vectors, first.model.task_vector().vectors)
