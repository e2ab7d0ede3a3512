"""MTV: batched REINFORCE equals separate forwards, and fit + test run through the CLI."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
from benchmark_fixtures import write_cross_modal, write_vizwiz
from helpers import (
    CONFIGS,
    SHAPES_CONFIGS,
    TEMPLATE,
    KillAtStep,
    Killed,
    colour_image,
    logged_scalars,
    paper_config_on_zoo,
    read_events,
    zoo_mtv_run,
)
from PIL import Image

from lit_tv.cli.app import build_cli
from lit_tv.cli.command import main
from lit_tv.data.query_file import QueryFile
from lit_tv.episodes import Episode, Example
from lit_tv.interventions.hooks import replace_heads
from lit_tv.interventions.shared_prefix import fork_last_token
from lit_tv.methods.base import FrozenVLMMethod
from lit_tv.methods.mtv import MTV
from lit_tv.methods.mtv import MTV as MTVMethod
from lit_tv.model.loading import ModelLoadError, VLMOptions
from lit_tv.shapes.datamodule import ShapesDataModule
from lit_tv.vectors.file import TaskVectorMismatchError, load_task_vector, write_vector_file
from lit_tv.vectors.kinds import load

CONFIG = SHAPES_CONFIGS / "mtv.yaml"


@pytest.mark.slow
def test_batched_reinforce_losses_equal_separate_forwards(zoo_folder):
    method = MTV(model=VLMOptions(str(zoo_folder("llava"))), samples=8, fast_path=False)
    method.configure_model()
    method.template = TEMPLATE
    vlm, layout = method.vlm, method.vlm.layout
    method.mean_activations.copy_(torch.randn(layout.num_layers, layout.num_heads, layout.head_dim))
    query = Episode(query=Example("colour?", images=(colour_image("red"),), answers=("red",)))
    masks = torch.rand(8, layout.num_layers, layout.num_heads, generator=torch.Generator().manual_seed(0)) < 0.5
    batched = method._losses(query, masks)
    target = vlm.answer_token_ids([query], TEMPLATE)
    for row, mask in enumerate(masks):
        with replace_heads(vlm, method.mean_activations, mask):
            logits = vlm.last_logits(vlm.build_inputs([query], TEMPLATE))
        single = torch.nn.functional.cross_entropy(logits, target)
        torch.testing.assert_close(batched[row], single, atol=1e-5, rtol=1e-5)
    assert batched.std() > 0, "different masks should give different losses"


def _method_with_query(folder: Path, multimodal: bool = True, fuyu: bool = False) -> tuple[MTV, Episode, torch.Tensor]:
    """An MTV over a zoo model with random means, a query (with one shot where the model takes several images)
    and 8 different mask samples."""
    method = MTV(model=VLMOptions(str(folder)), samples=8)
    method.configure_model()
    method.template = TEMPLATE
    layout = method.vlm.layout
    method.mean_activations.copy_(torch.randn(layout.num_layers, layout.num_heads, layout.head_dim))
    images = (colour_image("red"),) if multimodal else ()
    shots = () if fuyu else (Example("this?", images=(colour_image("blue"),) if multimodal else (), answers=("blue",)),)
    query = Episode(query=Example("colour?", images=images, answers=("red",)), shots=shots)
    masks = torch.rand(8, layout.num_layers, layout.num_heads, generator=torch.Generator().manual_seed(1)) < 0.5
    return method, query, masks


def _plain_batched_losses(method: MTV, query: Episode, masks: torch.Tensor) -> torch.Tensor:
    method.hparams.fast_path = False
    try:
        return method._losses(query, masks)
    finally:
        method.hparams.fast_path = True


@pytest.mark.slow
@pytest.mark.parametrize("name", ["llava", "idefics2", "idefics3", "qwen2_vl", "fuyu", "llama"])
def test_fast_path_losses_equal_the_plain_batched_path(zoo_folder, name):
    method, query, masks = _method_with_query(zoo_folder(name), multimodal=name != "llama", fuyu=name == "fuyu")
    fast = method._losses(query, masks)
    assert method.vlm.shares_prefix, "the samples should share one cached prefix on every zoo model"
    torch.testing.assert_close(fast, _plain_batched_losses(method, query, masks), atol=1e-5, rtol=1e-5)
    assert fast.std() > 0


@pytest.mark.parametrize("name", ["qwen2_vl", "llava"])  # Qwen2-VL: the copies sit at the last token's M-RoPE position
def test_forked_and_branched_rows_score_like_the_plain_forward(zoo_vlm, name):
    vlm = zoo_vlm(name)
    inputs = vlm.build_inputs(
        [Episode(query=Example("colour?", images=(colour_image("red"),), answers=("red",)))], TEMPLATE
    )
    plain = vlm.last_logits(inputs)
    torch.testing.assert_close(fork_last_token(vlm, inputs, 5).logits(), plain.expand(5, -1), atol=1e-5, rtol=1e-5)
    branch = fork_last_token(vlm, inputs, 5, reuse=True)
    assert branch.along == "positions" and branch.inputs["input_ids"].shape == (1, 5)
    keys = branch.inputs[vlm.cache_name].layers[0].keys
    assert keys.shape[0] == 1 and keys.shape[-2] == inputs["input_ids"].shape[1] - 1  # the prefix, once
    for _ in range(2):  # cropped back after scoring: the branch scores again
        torch.testing.assert_close(branch.logits(), plain.expand(5, -1), atol=1e-5, rtol=1e-5)
    assert branch.inputs[vlm.cache_name].layers[0].keys.shape == keys.shape


def _custom_mask(kwargs: dict) -> bool:
    """A float 4-D mask reaching a layer is lit_tv's own (the zoo's sdpa builds none or a boolean one)."""
    mask = kwargs.get("attention_mask")
    return torch.is_tensor(mask) and mask.dim() == 4 and mask.is_floating_point()


def _refuse_4d_masks(module, args, kwargs):
    if _custom_mask(kwargs):
        raise ValueError("custom attention masks are not supported")


def _ignore_4d_masks(module, args, kwargs):
    if _custom_mask(kwargs):  # then causal attention: the samples see each other
        return args, {**kwargs, "attention_mask": None}
    return None


@pytest.mark.slow
@pytest.mark.parametrize(
    ("hook", "logged"),
    [
        (_refuse_4d_masks, "refuses a custom 4-D attention mask"),
        (_ignore_4d_masks, "does not honour a custom 4-D attention mask"),
        (None, "'sdpa', which takes no custom 4-D attention mask"),
    ],
)
def test_a_model_without_custom_masks_falls_back_to_copying_the_cache(zoo_folder, caplog, monkeypatch, hook, logged):
    method, query, masks = _method_with_query(zoo_folder("llava"))
    if hook is None:  # as under flash attention, which takes padding masks only
        monkeypatch.setattr("lit_tv.interventions.shared_prefix.MASKED_ATTENTION", ("eager",))
    layers = [] if hook is None else method.vlm.layout.layers
    handles = [layer.register_forward_pre_hook(hook, with_kwargs=True) for layer in layers]
    try:
        with caplog.at_level("WARNING", logger="lit_tv.interventions.shared_prefix"):
            fast = method._losses(query, masks)
        plain = _plain_batched_losses(method, query, masks)
    finally:
        for handle in handles:
            handle.remove()
    assert method.vlm.shares_prefix is False
    assert logged in caplog.text and "copies the prompt cache per sample" in caplog.text
    torch.testing.assert_close(fast, plain, atol=1e-5, rtol=1e-5)


def test_only_theta_is_trainable_and_the_vlm_stays_out_of_the_checkpoint(zoo_folder):
    method = MTV(model=VLMOptions(str(zoo_folder("llava"))))
    method.configure_model()
    assert [name for name, _ in method.named_parameters()] == ["theta"]
    assert set(method.state_dict()) == {"theta", "mean_activations", "selected_heads", "heads_chosen"}
    assert not method.vlm.model.training


def test_missing_model_path_fails_before_anything_loads(tmp_path):
    with pytest.raises(ModelLoadError, match="model path does not exist: .*nowhere"):
        MTV(model=VLMOptions(str(tmp_path / "nowhere")))


@pytest.mark.slow
def test_fit_then_test_through_the_cli_logs_to_tensorboard(zoo_folder, workdir):
    main(["fit", *zoo_mtv_run(zoo_folder("llava"))])
    fit_dir = workdir / "logs" / "shapes_mtv_colour" / "version_0"
    events = read_events(fit_dir)
    assert {"train/loss", "train/mean_sigmoid_theta", "heads/selected"} <= set(events.Tags()["scalars"])
    assert "heads/sigmoid_theta" in events.Tags()["images"]
    heatmap = events.Images("heads/sigmoid_theta")[-1]  # a rendered figure, not a layers x heads pixel grid
    assert heatmap.width >= 200 and heatmap.height >= 150, (heatmap.width, heatmap.height)
    checkpoint = (
        workdir / "logs" / "shapes_mtv_colour" / "smoke" / "checkpoints" / "last.ckpt"
    )  # a short run: --trainer.max_steps given
    state = torch.load(checkpoint, weights_only=True, map_location="cpu")["state_dict"]
    assert state["mean_activations"].abs().sum() > 0
    assert state["heads_chosen"], "last.ckpt must hold the final head set"
    main(["test", *zoo_mtv_run(zoo_folder("llava"), "--ckpt_path", str(checkpoint))])
    scalars = logged_scalars(workdir / "logs" / "shapes_mtv_colour" / "version_1")
    assert {"test/accuracy", "test/accuracy/colour", "test/queries"} <= set(scalars)
    assert scalars["test/queries"] == [6.0]  # every test query scored exactly once


@pytest.mark.slow
def test_exported_vector_loads_for_test_and_is_refused_by_another_model(zoo_folder, workdir):
    main(["fit", *zoo_mtv_run(zoo_folder("llava"))])
    vector = (
        workdir / "logs" / "shapes_mtv_colour" / "smoke" / "task_vector.safetensors"
    )  # a short run: --trainer.max_steps given
    tensors, metadata = load_task_vector(vector)
    assert metadata["benchmark"] == "ShapesDataModule" and metadata["iterations"] == "8"
    loaded = MTV(model=VLMOptions(str(zoo_folder("llava"))), task_vector=str(vector))
    loaded.configure_model()
    heads = load(vector).mask()
    assert torch.equal(loaded.selected_heads, heads)
    assert torch.equal(loaded.mean_activations, tensors["mean_activations"])
    transferred = MTV(model=VLMOptions(str(zoo_folder("llava"))), task_vector=str(vector), transfer="heads")
    transferred.configure_model()
    assert torch.equal(transferred.selected_heads, heads)
    assert transferred.mean_activations.abs().sum() == 0  # recomputed on the new data before testing
    write_vector_file(
        workdir / "other.safetensors",
        tensors,
        {**metadata, "layout": json.dumps({**json.loads(metadata["layout"]), "num_heads": 32})},
    )
    with pytest.raises(TaskVectorMismatchError, match="made for .* 'num_heads': 32"):
        MTV(model=VLMOptions(str(zoo_folder("llava"))), task_vector=str(workdir / "other.safetensors"))


@pytest.mark.slow
def test_a_stopped_fit_resumes_from_its_last_checkpoint(zoo_folder, workdir):
    args = zoo_mtv_run(zoo_folder("llava"), "--trainer.max_steps", "14")
    cli = build_cli(CONFIG, args)
    cli.trainer.callbacks.append(KillAtStep(12))
    with pytest.raises(Killed):
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    last = (
        workdir / "logs" / "shapes_mtv_colour" / "smoke" / "checkpoints" / "last.ckpt"
    )  # a short run: --trainer.max_steps given
    assert torch.load(last, weights_only=True)["global_step"] == 10
    with pytest.raises(SystemExit, match="no heads have been chosen yet"):  # not silently zero-shot
        main(["test", *args, "--ckpt_path", str(last)])
    main(["fit", *args, "--ckpt_path", "last"])  # the README's resume command continues its own checkpoints
    state = torch.load(last, weights_only=True)
    assert state["global_step"] == 14
    assert state["state_dict"]["selected_heads"].any()


@pytest.mark.slow
def test_the_same_seed_selects_the_same_heads(zoo_folder, monkeypatch, workdir):
    runs = []
    for run in ("first", "second"):  # each fit in a folder of its own: the second would meet the first's outputs
        (workdir / run).mkdir()
        monkeypatch.chdir(workdir / run)
        cli = build_cli(CONFIG, zoo_mtv_run(zoo_folder("llava"), "--model.init_args.export", "null"))
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
        runs.append((cli.model.theta.detach().clone(), cli.model.selected_heads.clone()))
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])


@pytest.mark.slow
def test_predict_answers_a_jsonl_with_a_saved_vector(zoo_folder, workdir):
    main(["fit", *zoo_mtv_run(zoo_folder("llava"))])
    for index, colour in enumerate(["red", "blue"]):
        colour_image(colour).save(workdir / f"{index}.png")
    questions = workdir / "questions.jsonl"
    questions.write_text('{"images": ["0.png"], "question": "colour?"}\n{"images": ["1.png"], "question": "and?"}\n')
    main(
        [
            "predict",
            "--config",
            str(CONFIG.with_name("predict.yaml")),
            "--model.init_args.model.name",
            str(zoo_folder("llava")),
            "--data.init_args.path",
            str(questions),
            "--model.init_args.task_vector",
            "logs/shapes_mtv_colour/smoke/task_vector.safetensors",  # --trainer.max_steps given: a short run
            "--data.init_args.batch_size=1",  # the shorter question is answered first: the file keeps its order
        ]
    )
    lines = (workdir / "logs" / "shapes_mtv_colour" / "answers.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [record["question"] for record in records] == ["colour?", "and?"]
    assert all(isinstance(record["answer"], str) for record in records)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"images": ["0.png"]}', "questions.jsonl:1: field 'question'"),
        ('{"images": ["missing.png"], "question": "q"}', "questions.jsonl:1: image file not found: .*missing.png"),
        ("{not json", "questions.jsonl:1: not valid JSON"),
        (
            '{"images": ["lab.tif"], "question": "q"}',
            r"questions.jsonl:1: cannot read image \(mode LAB has no RGB conversion .*\): .*lab.tif",
        ),
    ],
)
def test_bad_query_files_name_the_line_and_field(tmp_path, line, message):
    colour_image("red").save(tmp_path / "0.png")
    Image.new("LAB", (8, 8)).save(tmp_path / "lab.tif")  # a mode no viewer-like conversion reads
    (tmp_path / "questions.jsonl").write_text(line + "\n")
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        QueryFile(str(tmp_path / "questions.jsonl"))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["llava", "idefics2", "idefics3", "qwen2_vl"])
def test_mtv_runs_on_each_vlm_architecture_through_the_cli(zoo_folder, name, workdir):
    main(["fit", *zoo_mtv_run(zoo_folder(name), "--trainer.max_steps", "2")])
    main(["test", *zoo_mtv_run(zoo_folder(name), "--ckpt_path", "logs/shapes_mtv_colour/smoke/checkpoints/last.ckpt")])
    assert "test/accuracy" in logged_scalars(workdir / "logs" / "shapes_mtv_colour" / "version_1")


@pytest.mark.slow  # the CLI parses every config
def test_every_config_parses():
    for config in sorted(CONFIG.parent.parent.rglob("*.yaml")):
        subcommand = "predict" if config.name == "predict.yaml" else "test"
        with pytest.raises(SystemExit) as exit_info:  # --print_config parses everything, builds nothing
            main([subcommand, "--config", str(config), "--print_config"])
        assert exit_info.value.code == 0, config


@pytest.mark.slow
def test_bf16_model_keeps_theta_and_means_in_fp32(zoo_folder, workdir):
    cli = build_cli(
        CONFIG,
        zoo_mtv_run(
            zoo_folder("llava"), "--model.init_args.model.dtype", "bfloat16", "--trainer.precision", "bf16-mixed"
        ),
    )
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert cli.model.vlm.layout.lm_head.weight.dtype == torch.bfloat16
    assert cli.model.theta.dtype == torch.float32 and cli.model.mean_activations.dtype == torch.float32
    assert (cli.model.theta != -1.0).any(), "REINFORCE should have moved theta from its init"
    assert torch.isfinite(cli.model.mean_activations).all() and cli.model.mean_activations.abs().sum() > 0


def test_true_low_precision_is_refused(zoo_folder, workdir):
    cli = build_cli(CONFIG, zoo_mtv_run(zoo_folder("llava"), "--trainer.precision", "bf16-true"))
    with pytest.raises(ValueError, match="bf16-true would cast theta"):
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)


@pytest.mark.slow
def test_fit_without_mean_activations_is_refused(zoo_folder, tmp_path):
    import lightning as L

    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    with pytest.raises(
        ValueError,
        match=r"no mean activations.*--trainer.callbacks\+=lit_tv.callbacks.mean_activations.MeanActivations",
    ):
        trainer.fit(
            MTV(model=VLMOptions(str(zoo_folder("llava")))), datamodule=ShapesDataModule(train_size=2, batch_size=1)
        )


@pytest.mark.slow  # a model and a trainer: about 1.5 s
@pytest.mark.parametrize("tasks", [("colour", "shape"), ("colour",)])
def test_a_fit_on_several_tasks_warns_that_one_mean_carries_none_of_them(zoo_folder, tmp_path, tasks):
    """Said at setup, before the mean pass: here the fit then stops at its missing means (no callback)."""
    import lightning as L

    trainer = L.Trainer(
        accelerator="cpu", max_steps=1, logger=False, enable_checkpointing=False, default_root_dir=tmp_path
    )
    data = ShapesDataModule(tasks=tasks, train_size=2, batch_size=1)
    with warnings.catch_warnings(record=True) as caught, pytest.raises(ValueError, match="no mean activations"):
        warnings.simplefilter("always")
        trainer.fit(MTV(model=VLMOptions(str(zoo_folder("llava")))), datamodule=data)
    said = [str(warning.message) for warning in caught if "one mean over several tasks" in str(warning.message)]
    if len(tasks) == 1:
        assert not said
    else:
        assert said == [
            "MTV fit on 2 tasks ['colour', 'shape'] (data.init_args.tasks): one mean over several tasks carries none "
            "of them; for a vector per task fit each alone (--data.init_args.tasks=[colour], ...)"
        ]


@pytest.mark.slow
def test_pruned_selection_never_samples_heads_below_the_threshold(zoo_folder, workdir):
    cli = build_cli(
        CONFIGS / "shapes" / "mtv.yaml",
        [
            "--config",
            str(CONFIGS / "shapes" / "mtv.yaml"),
            "--model.init_args.model.name",
            str(zoo_folder("llava")),
            "--trainer.max_steps",
            "1",
            "--data.init_args.support_size",
            "4",
            "--model.init_args.selection_queries",
            "2",
            "--model.init_args.samples",
            "4",
            "--model.init_args.threshold",
            "0.8",
            "--model.init_args.export",
            "null",
        ],
    )
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)  # one step keeps no head above 0.8: fit as best_of_samples
    method = cli.model
    method.hparams.selection = "pruned_best_of_samples"
    method.theta.data.fill_(0.5)  # sigmoid 0.62: below the threshold
    method.theta.data[0, :2] = 5.0  # sigmoid 0.99
    likely = torch.zeros_like(method.selected_heads)
    likely[0, :2] = True
    for _ in range(3):
        assert not (method.select_heads() & ~likely).any()
    method.hparams.selection = "best_of_samples"
    assert any((method.select_heads() & ~likely).any() for _ in range(3))


@pytest.mark.slow
def test_the_cross_modal_mtv_config_fits_one_task_of_the_released_size(zoo_folder, workdir):
    """30 val records per task, as released: the config's own sizes (20 REINFORCE queries, 100 support
    episodes from the other 10 records, no validation) must fit, not stop for want of records."""
    root = write_cross_modal(workdir / "data", tasks=("country-capital",), val=30, test=4)
    config = [
        *paper_config_on_zoo("cross_modal/mtv_llava-1.5-7b.yaml", zoo_folder("llava")),
        "--data.init_args.root",
        str(root),
        "--trainer.accelerator",
        "cpu",
        "--trainer.max_steps",
        "1",
        "--model.init_args.samples",
        "4",
        "--model.init_args.selection_queries",
        "2",
    ]
    main(["fit", *config])
    _, metadata = load_task_vector(
        workdir / "logs" / "cross_modal_mtv_llava-1.5-7b" / "smoke" / "task_vector.safetensors"
    )
    assert metadata["iterations"] == "100"


def test_a_threshold_that_keeps_no_head_is_refused():
    with pytest.raises(ValueError, match=r"model.init_args.threshold=1.0 .* no head would be kept"):
        MTVMethod(selection="threshold", threshold=1.0)


def test_method_defaults_answer_the_built_in_world_in_one_word():
    assert MTVMethod().max_new_tokens == 1 and FrozenVLMMethod().max_new_tokens == 1


@pytest.mark.slow  # a fit; the queries themselves: tests/data/test_draws.py
@pytest.mark.parametrize("selection_from", ["train_split", "reinforce_queries"])
def test_the_final_heads_are_scored_on_the_queries_selection_from_names(zoo_folder, workdir, selection_from):
    """``train_split`` (the paper configs'): the training file's first `selection_queries` records in file order,
    as the reference's train[:50]; ``reinforce_queries``: the first of the seeded REINFORCE queries."""
    root = write_vizwiz(workdir / "data", train=14, val=2)
    cli = build_cli(
        CONFIGS / "vizwiz" / "mtv_idefics2-8b.yaml",
        [
            *paper_config_on_zoo("vizwiz/mtv_idefics2-8b.yaml", zoo_folder("llava"))[2:],
            *("--data.init_args.root", str(root), "--data.init_args.test_size=2", "--trainer.accelerator=cpu"),
            *("--data.init_args.support_size=2", "--data.init_args.train_size=6", "--trainer.max_steps=1"),
            *("--model.init_args.samples=4", "--model.init_args.selection_samples=2", "--model.init_args.threshold=0"),
            *("--model.init_args.selection_queries=3", f"--model.init_args.selection_from={selection_from}"),
            *("--model.init_args.export=null", "--trainer.logger=false", "--trainer.enable_progress_bar=false"),
            "--trainer.callbacks=[{class_path: lit_tv.callbacks.mean_activations.MeanActivations}]",
        ],
    )
    scored: list[str] = []  # the questions the final heads are scored on (2 masks; REINFORCE scores 4)
    losses = cli.model._losses

    def recording(query: Episode, masks: torch.Tensor) -> torch.Tensor:
        if len(masks) == 2:
            scored.append(query.query.text)
        return losses(query, masks)

    cli.model._losses = recording
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    if selection_from == "train_split":
        assert scored == [f"What colour is this {index}?" for index in range(3)]
    else:
        assert scored == [episode.query.text for episode in cli.datamodule.train_queries()[:3]]
        assert scored != [f"What colour is this {index}?" for index in range(3)]  # a seeded draw, not the file's
