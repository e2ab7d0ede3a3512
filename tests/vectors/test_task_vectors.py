"""Task vectors are a type: each kind round-trips, and every mismatch is refused naming the file and the field."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from helpers import SHAPES_CONFIGS
from safetensors.torch import save_file
from transformers import AutoModelForImageTextToText

from lit_tv import __version__
from lit_tv.cli.app import build_cli
from lit_tv.methods.mtv import MTV
from lit_tv.model.layout import discover_layout
from lit_tv.model.loading import BUILTIN_MODELS
from lit_tv.vectors.file import TaskVectorError, TaskVectorMismatchError, load_task_vector, write_vector_file
from lit_tv.vectors.fitted_on import FittedOn
from lit_tv.vectors.kinds import HeadVector, ResidualVector, load

TOY = BUILTIN_MODELS["lit_tv/shapes-toy"]
CONFIGS = SHAPES_CONFIGS


@pytest.fixture(scope="module")
def toy():
    return AutoModelForImageTextToText.from_pretrained(TOY)


def head_vector(model) -> HeadVector:
    layout = discover_layout(model).signature()
    shape = (layout["num_layers"], layout["num_heads"])
    generator = torch.Generator().manual_seed(0)
    return HeadVector(
        means=torch.randn(*shape, layout["head_dim"], generator=generator),
        theta=torch.zeros(shape),
        heads=torch.tensor([[0, 1], [2, 3]]),
        tasks=["colour"],
        method="mtv",
        extra={"benchmark": "ShapesDataModule"},
    ).with_model(model, "lit_tv/shapes-toy")


def residual_vector(model) -> ResidualVector:
    layout = discover_layout(model).signature()
    vectors = torch.randn(2, layout["num_layers"], layout["hidden_size"], generator=torch.Generator().manual_seed(0))
    return ResidualVector(
        vectors=vectors,
        layer=1,
        mode="add",
        scale=2.0,
        tasks=["colour", "shape"],
        method="residual",
        provenance={"aie": torch.ones(2, 3)},
        extra={"benchmark": "ShapesDataModule"},
    ).with_model(model, "lit_tv/shapes-toy")


def write_altered(vector, path: Path, **tensors: torch.Tensor) -> Path:
    """The vector written with some tensors replaced, checksums of the replacements (a bad export)."""
    return write_vector_file(path, {**vector.tensors(), **tensors}, vector.metadata())


def last_logits(model, **apply) -> torch.Tensor:
    ids = torch.tensor([[1, 5, 6, 7]])
    if not apply:
        return model(input_ids=ids).logits[0, -1]
    vector = apply.pop("vector")
    with vector.apply(model, **apply):
        return model(input_ids=ids).logits[0, -1]


@pytest.mark.slow
@pytest.mark.parametrize("make", [head_vector, residual_vector], ids=["heads", "residual"])
def test_each_kind_round_trips_and_applies_as_saved(make, toy, tmp_path):
    vector = make(toy)
    loaded = load(vector.save(tmp_path / "vector.safetensors"))
    assert type(loaded) is type(vector) and loaded.metadata() == {**vector.metadata(), "lit_tv_version": __version__}
    for name, tensor in vector.tensors().items():
        assert torch.equal(loaded.tensors()[name], tensor), name
    task = vector.tasks[-1]
    with torch.no_grad():
        plain, saved = last_logits(toy), last_logits(toy, vector=vector, task=task)
        again = last_logits(toy, vector=loaded, task=task)
    assert torch.equal(saved, again) and not torch.allclose(saved, plain)


@pytest.mark.parametrize("revision", ["2c42686c57fe21cf0348c9ce1077d094b72e7698", None])
def test_the_model_s_pinned_revision_is_recorded_and_read_back(toy, tmp_path, revision):
    vector = head_vector(toy).with_model(toy, "HuggingFaceM4/idefics2-8b", revision)
    loaded = load(vector.save(tmp_path / "vector.safetensors"))
    assert (loaded.model, loaded.revision) == ("HuggingFaceM4/idefics2-8b", revision)
    assert "revision" not in loaded.extra


def test_function_vectors_are_residual_vectors_added_at_a_layer(toy, tmp_path):
    layout = discover_layout(toy).signature()
    vector = ResidualVector(
        vectors=torch.randn(1, layout["hidden_size"]), layer=2, mode="add", tasks=["colour"], method="function_vectors"
    ).with_model(toy, "lit_tv/shapes-toy")
    loaded = load(vector.save(tmp_path / "fv.safetensors"), kind=ResidualVector)
    assert (loaded.layer, loaded.mode, loaded.vectors.shape) == (2, "add", (1, layout["hidden_size"]))
    with pytest.raises(TaskVectorError, match=r"fv.safetensors was exported by method 'function_vectors'.*'method'"):
        loaded.check(layout, method="residual")
    with pytest.raises(TaskVectorError, match=r"fv.safetensors .*this run reads heads vectors \(field 'kind'\)"):
        load(tmp_path / "fv.safetensors", kind=HeadVector)


# (id, tensor replaced in a head vector, the message naming the field)
BAD_TENSORS = [
    ("shape", {"theta": torch.zeros(4, 7)}, r"'theta' has shape \(4, 7\), expected \('num_layers=4', 'num_heads=8'\)"),
    ("dtype", {"theta": torch.zeros(4, 8, dtype=torch.float16)}, r"'theta' has dtype torch.float16"),
    (
        "float head indices",
        {"heads": torch.tensor([[0.0, 1.0]])},
        r"'heads' has dtype torch.float32, expected "
        r"torch.int64",
    ),
    ("non-finite", {"theta": torch.full((4, 8), float("nan"))}, r"'theta' holds 32 NaN or infinite values"),
]


@pytest.mark.parametrize("case", BAD_TENSORS, ids=[case[0] for case in BAD_TENSORS])
def test_bad_tensors_are_refused_naming_file_and_tensor(case, toy, tmp_path):
    _, tensors, message = case
    path = write_altered(head_vector(toy), tmp_path / "bad.safetensors", **tensors)
    with pytest.raises(TaskVectorError, match=rf"bad.safetensors.*{message}"):
        load(path).check(discover_layout(toy).signature())


def test_out_of_range_heads_and_layers_are_refused_against_the_model(toy, tmp_path):
    layout = discover_layout(toy).signature()
    heads = load(write_altered(head_vector(toy), tmp_path / "heads.safetensors", heads=torch.tensor([[0, 8]])))
    with pytest.raises(TaskVectorError, match=r"heads.safetensors: 'heads' holds head indices \[8\], out of range"):
        heads.check(layout)
    residual = residual_vector(toy)
    residual.layer = 9
    with pytest.raises(TaskVectorError, match=r"layer.safetensors: field 'layer' is 9, out of range 0..3"):
        load(write_vector_file(tmp_path / "layer.safetensors", residual.tensors(), residual.metadata())).check(layout)


def test_absurd_values_are_refused_against_the_model_scale(toy, tmp_path):
    vector = head_vector(toy)
    path = write_altered(vector, tmp_path / "huge.safetensors", mean_activations=vector.means * 1e7)
    with pytest.raises(
        TaskVectorError,
        match=r"huge.safetensors: 'mean_activations' has vector norms .* not a "
        r"plausible task vector",
    ):
        load(path).check(discover_layout(toy).signature(), toy)
    tiny = residual_vector(toy)
    tiny.vectors = tiny.vectors * 1e-9
    with pytest.raises(TaskVectorError, match=r"tiny.safetensors: 'vectors' has vector norms"):
        load(tiny.save(tmp_path / "tiny.safetensors")).check(discover_layout(toy).signature(), toy)


def test_a_tensor_altered_after_export_fails_its_checksum(toy, tmp_path):
    path = head_vector(toy).save(tmp_path / "tampered.safetensors")
    tensors, metadata = load_task_vector(path)
    tensors["theta"][0, 0] = 5.0
    save_file(tensors, str(path), metadata=metadata)
    with pytest.raises(TaskVectorError, match=r"tampered.safetensors: tensor 'theta' does not match its checksum"):
        load(path)


def test_a_file_of_the_first_format_is_refused_with_re_export_advice(toy, tmp_path):
    vector = head_vector(toy)
    save_file(vector.tensors(), str(tmp_path / "old.safetensors"), metadata={"method": "mtv"})
    with pytest.raises(TaskVectorError, match=r"old.safetensors: no 'checksums' .* export it again"):
        load(tmp_path / "old.safetensors")


def test_layout_mismatch_is_refused_naming_both(toy, tmp_path):
    vector = head_vector(toy)
    vector.layout = {**vector.layout, "num_heads": 32}
    path = write_vector_file(tmp_path / "layout.safetensors", vector.tensors(), vector.metadata())
    with pytest.raises(TaskVectorMismatchError, match=r"layout.safetensors was made for .*'num_heads': 32.*'layout'"):
        load(path).check(discover_layout(toy).signature())


def test_another_model_is_refused_unless_allowed(toy, tmp_path):
    other = copy.deepcopy(toy)
    with torch.no_grad():
        other.get_input_embeddings().weight.mul_(1.5)
    path = head_vector(toy).save(tmp_path / "model.safetensors")
    with pytest.raises(
        TaskVectorMismatchError,
        match=r"model.safetensors .*\(field 'fingerprint': input_embedding_norm"
        r".*allow_other_model",
    ):
        with load(path).apply(other):
            pass
    with pytest.warns(UserWarning, match="applied anyway"), load(path).apply(other, allow_other_model=True):
        pass
    load(path).check(discover_layout(toy).signature(), toy)  # its own model passes


def test_another_task_is_refused_unless_allowed(toy, tmp_path):
    path = head_vector(toy).save(tmp_path / "task.safetensors")
    with pytest.raises(TaskVectorMismatchError, match=r"task.safetensors has no vector for task 'shape'.*'tasks'"):
        with load(path).apply(toy, task="shape"):
            pass
    with (
        pytest.warns(UserWarning, match="applied to task 'shape'"),
        load(path).apply(toy, task="shape", allow_other_task=True),
    ):
        pass
    vector = load(path)
    with pytest.raises(
        TaskVectorMismatchError,
        match=r"task.safetensors was made for tasks \['colour'\] of "
        r"ShapesDataModule.*'tasks'",
    ):
        vector.check_tasks(FittedOn(("colour",), "OtherBenchmark"))
    with pytest.warns(UserWarning, match="used anyway"):
        vector.check_tasks(FittedOn(("shape",), "ShapesDataModule"), allow_other_task=True)


@pytest.mark.slow
def test_methods_check_the_task_vector_option_the_same_way(toy, workdir):
    vector = head_vector(toy)
    path = vector.save(workdir / "colour.safetensors")
    small = [
        "--data.init_args.support_size=2",
        "--data.init_args.train_size=2",
        "--data.init_args.test_size=2",
        "--data.init_args.tasks=[shape]",
        f"--model.init_args.task_vector={path}",
        "--model.init_args.export=null",
    ]
    cli = build_cli(CONFIGS / "mtv.yaml", small)
    with pytest.raises(TaskVectorMismatchError, match=r"colour.safetensors was made for tasks \['colour'\].*tasks"):
        cli.trainer.test(cli.model, datamodule=cli.datamodule, verbose=False)
    vector.fingerprint = {**vector.fingerprint, "input_embedding_norm": 1.0}
    other = vector.save(workdir / "other.safetensors")
    with pytest.raises(TaskVectorMismatchError, match=r"other.safetensors .*'fingerprint'"):
        MTV(task_vector=str(other)).configure_model()
    with pytest.warns(UserWarning, match="allow_other_model"):
        MTV(task_vector=str(other), allow_other_model=True).configure_model()


def test_saving_over_an_existing_file_needs_overwrite(toy, tmp_path):
    path = head_vector(toy).save(tmp_path / "vector.safetensors")
    kept = path.read_bytes()
    other = head_vector(toy)
    other.tasks = ["shape"]
    with pytest.raises(FileExistsError, match=r"vector.safetensors already exists .*pass overwrite=True"):
        other.save(path)
    assert path.read_bytes() == kept, "the caller did not create the file: it stays"
    with pytest.warns(UserWarning, match="replacing the task vector"):
        other.save(path, overwrite=True)
    assert load(path).tasks == ["shape"]
