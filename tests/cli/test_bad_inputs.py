"""Bad inputs through the real CLI: each stops before long work, with one line naming the file or option."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from helpers import SHAPES_CONFIGS, colour_image, held_locks, mtv_vector_file
from lightning.pytorch.accelerators import CUDAAccelerator, MPSAccelerator
from PIL import Image
from transformers import T5Config, T5ForConditionalGeneration

from lit_tv.cli.command import main
from lit_tv.model.loading import ATTENTION_PACKAGES
from lit_tv.shapes.datamodule import ShapesDataModule

CONFIGS = SHAPES_CONFIGS
MTV, ICL = str(CONFIGS / "mtv.yaml"), str(CONFIGS / "icl.yaml")
PREDICT = [str(CONFIGS / "predict.yaml"), "--model.init_args.task_vector={valid}"]
QUESTIONS = [*PREDICT, "--data.init_args.path={folder}/questions.jsonl"]  # a good query file
SMALL = [
    "--data.init_args.support_size=2",
    "--data.init_args.train_size=2",
    "--data.init_args.test_size=2",
    "--trainer.max_steps=1",
    "--trainer.enable_progress_bar=false",
]


def _files(folder: Path) -> dict[str, Path]:
    """Every bad file a case may name, written into `folder`."""
    (folder / "empty_model").mkdir()
    T5ForConditionalGeneration(
        T5Config(vocab_size=64, d_model=16, d_kv=4, d_ff=32, num_layers=1, num_heads=2)
    ).save_pretrained(folder / "t5")
    (folder / "garbage.ckpt").write_bytes(b"not a checkpoint")
    (folder / "garbage.safetensors").write_bytes(b"\xff" * 64)
    (folder / "empty.jsonl").write_text("\n")
    (folder / "truncated.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    (folder / "bad_image.jsonl").write_text('{"images": ["truncated.png"], "question": "colour?"}\n')
    colour_image("red").save(folder / "red.png")
    (folder / "questions.jsonl").write_text('{"images": ["red.png"], "question": "colour?"}\n')
    nan = torch.zeros(4, 8)
    nan[1, 2] = float("nan")
    return {
        "folder": folder,
        "valid": mtv_vector_file(folder, "valid.safetensors"),
        "nan": mtv_vector_file(folder, "nan.safetensors", theta=nan),
        "inf": mtv_vector_file(folder, "inf.safetensors", mean_activations=torch.full((4, 8, 16), float("inf"))),
        "no_theta": mtv_vector_file(folder, "no_theta.safetensors", drop="theta"),
        "bad_shape": mtv_vector_file(folder, "bad_shape.safetensors", theta=torch.zeros(4, 7)),
        "other_method": mtv_vector_file(folder, "other_method.safetensors", method="function_vectors"),
    }


# (id, subcommand + arguments, what the one-line message must say); {name} is a path from `_files`
CASES = [
    ("negative shots", ["fit", "--config", MTV, "--data.init_args.shots=-1"], r"data.init_args.shots must be >= 0"),
    (
        "negative seed",
        ["fit", "--config", MTV, "--seed_everything=-1"],
        r"--seed_everything must be true, false or an integer from 0 to 4294967295, got -1",
    ),
    ("one sample", ["fit", "--config", MTV, "--model.init_args.samples=1"], r"model.init_args.samples must be >= 2"),
    (
        "no training queries",
        ["fit", "--config", MTV, *SMALL, "--data.init_args.train_size=0"],
        r"data.init_args.train_size must be >= 1",
    ),
    ("zero steps", ["fit", "--config", MTV, *SMALL, "--trainer.max_steps=0"], r"trainer.max_steps=0"),
    (
        "zero batch",
        ["fit", "--config", MTV, "--data.init_args.batch_size=0"],
        r"data.init_args.batch_size must be >= 1",
    ),
    (
        "zero eval batch",
        ["test", "--config", ICL, "--data.init_args.eval_batch_size=0"],
        r"data.init_args.eval_batch_size must be >= 1",
    ),
    (
        "negative test size",
        ["test", "--config", ICL, "--data.init_args.test_size=-5"],
        r"data.init_args.test_size must be >= 0",
    ),
    (
        "zero new tokens",
        ["test", "--config", ICL, "--model.init_args.max_new_tokens=0"],
        r"model.init_args.max_new_tokens must be >= 1",
    ),
    (
        "bad dtype",
        ["test", "--config", ICL, "--model.init_args.model.dtype=float33"],
        r"model.dtype must be one of auto, float32, bfloat16, float16, got 'float33'",
    ),
    (
        "missing model folder",
        ["test", "--config", ICL, "--model.init_args.model.name={folder}/nowhere"],
        r"model path does not exist: .*nowhere",
    ),
    (
        "empty model folder",
        ["test", "--config", ICL, *SMALL, "--model.init_args.model.name={folder}/empty_model"],
        r"the local folder .*empty_model has no usable config.json",
    ),
    (
        "encoder-decoder model",
        ["test", "--config", ICL, *SMALL, "--model.init_args.model.name={folder}/t5"],
        r"model.name: .*t5 is a T5Config \('t5'\), neither an image-text-to-text model nor a causal LM",
    ),
    (
        "prompt past the context",
        ["test", "--config", ICL, *SMALL, "--data.init_args.test_shots=60"],
        r"episode 0 of the batch \(60 shots.* is \d+ tokens \+ 1 new tokens .*, longer than .*context of 1024",
    ),
    (
        "missing checkpoint",
        ["test", "--config", MTV, "--ckpt_path={folder}/none.ckpt"],
        r"--ckpt_path: checkpoint file not found: .*none.ckpt",
    ),
    (
        "unreadable checkpoint",
        ["test", "--config", MTV, "--ckpt_path={folder}/garbage.ckpt"],
        r"--ckpt_path: cannot read checkpoint .*garbage.ckpt",
    ),
    (
        "missing task vector",
        ["test", "--config", MTV, "--model.init_args.task_vector={folder}/none.safetensors"],
        r"model.init_args.task_vector: .*none.safetensors. is neither an existing file",
    ),
    (
        "bad safetensors header",
        ["test", "--config", MTV, "--model.init_args.task_vector={folder}/garbage.safetensors"],
        r"task vector .*garbage.safetensors is not a readable safetensors file",
    ),
    (
        "NaN in a vector",
        ["test", "--config", MTV, "--model.init_args.task_vector={nan}"],
        r"task vector .*nan.safetensors: 'theta' holds 1 NaN or infinite values",
    ),
    (
        "inf in a vector",
        ["test", "--config", MTV, "--model.init_args.task_vector={inf}"],
        r"task vector .*inf.safetensors: 'mean_activations' holds 512 NaN or infinite values",
    ),
    (
        "tensor missing",
        ["test", "--config", MTV, "--model.init_args.task_vector={no_theta}"],
        r"task vector .*no_theta.safetensors has no tensor 'theta'",
    ),
    (
        "tensor of another shape",
        ["test", "--config", MTV, "--model.init_args.task_vector={bad_shape}"],
        r"'theta' has shape \(4, 7\), expected \('num_layers=4', 'num_heads=8'\)",
    ),
    (
        "vector of another method",
        ["test", "--config", MTV, "--model.init_args.task_vector={other_method}"],
        r"other_method.safetensors was exported by method 'function_vectors'; this run's method reads 'mtv'",
    ),
    (
        "empty query file",
        ["predict", "--config", *PREDICT, "--data.init_args.path={folder}/empty.jsonl"],
        r"query file .*empty.jsonl has no questions",
    ),
    (
        "unreadable image",
        ["predict", "--config", *PREDICT, "--data.init_args.path={folder}/bad_image.jsonl"],
        r"bad_image.jsonl:1: cannot read image .*truncated.png",
    ),
    (
        "no devices",
        ["fit", "--config", MTV, "--trainer.devices", "0"],
        r"trainer.devices='0': a run needs at least one",
    ),
    (
        "negative max_steps",
        ["fit", "--config", MTV, "--trainer.max_steps=-5"],
        r"trainer.max_steps must be -1 \(no limit\) or >= 0, got -5",
    ),
    (
        "draw seed out of range",
        ["fit", "--config", MTV, "--model.init_args.draw_seed=18446744073709551616"],
        r"model.init_args.draw_seed must be an integer from 0 to 18446744073709551615 .*got 18446744073709551616",
    ),
    (
        "predict without a predict split",
        ["predict", "--config", MTV, "--model.init_args.task_vector={valid}"],
        r"lit-tv predict reads the predict split, but data.class_path lit_tv.shapes.datamodule.ShapesDataModule has no",
    ),
    (
        "test of a query file",
        ["test", "--config", *QUESTIONS],
        r"lit-tv test reads the test split, but data.class_path lit_tv.data.query_file.QueryFile has none",
    ),
    (
        "test of a query file, other tasks allowed",
        ["test", "--config", *QUESTIONS, "--model.init_args.allow_other_task=true"],
        r"lit-tv test reads the test split, but data.class_path lit_tv.data.query_file.QueryFile has none",
    ),
    (
        "transfer heads in predict",
        ["predict", "--config", *QUESTIONS, "--model.init_args.transfer=heads"],
        r"model.init_args.transfer=heads recomputes the means .* but lit-tv predict's data \(QueryFile\) has none",
    ),
    (
        "transfer heads without the means callback",
        [
            "test",
            "--config",
            MTV,
            "--model.init_args.task_vector={valid}",
            "--model.init_args.transfer=heads",
            "--trainer.callbacks=[]",
        ],
        r"model.init_args.transfer=heads .* no callback that does: --trainer.callbacks\+=lit_tv.callbacks.mean_",
    ),
    (
        "transfer heads without support episodes",
        [
            "test",
            "--config",
            MTV,
            "--model.init_args.task_vector={valid}",
            "--model.init_args.transfer=heads",
            "--data.init_args.support_size=0",
        ],
        r"model.init_args.transfer=heads .* data.init_args.support_size is 0",
    ),
    (
        "missing config file",
        ["fit", "--config", "{folder}/none.yaml"],
        r'Parser key "config": File does not exist: .*none.yaml.* --help',
    ),
    ("missing required option", ["fit"], r"the following arguments are required: fit.model .*--help"),
]
# what this machine may have: refused as on a machine without it
MISSING_HARDWARE = [
    (
        "GPU accelerator",
        ["fit", "--config", MTV, "--trainer.accelerator", "gpu"],
        r"trainer.accelerator=gpu: this machine has no GPU that torch can use; use --trainer.accelerator=cpu",
    ),
    (
        "attention kernel",
        ["test", "--config", ICL, "--model.init_args.model.attn_implementation=flash_attention_2"],
        r"model.attn_implementation='flash_attention_2': its package is not installed",
    ),
]


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory) -> dict[str, Path]:
    return _files(tmp_path_factory.mktemp("bad_inputs"))


@pytest.mark.slow
@pytest.mark.parametrize(("args", "message"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_a_bad_input_stops_with_one_line_naming_it(bad_files, args, message, workdir):
    _refused_in_one_line(bad_files, args, message, workdir)


@pytest.mark.parametrize(
    ("args", "message"), [case[1:] for case in MISSING_HARDWARE], ids=[case[0] for case in MISSING_HARDWARE]
)
def test_hardware_the_machine_lacks_stops_with_one_line_naming_it(bad_files, args, message, workdir, monkeypatch):
    for backend in (CUDAAccelerator, MPSAccelerator):
        monkeypatch.setattr(backend, "is_available", staticmethod(lambda: False))
    monkeypatch.setitem(ATTENTION_PACKAGES, "flash_attention_2", lambda: False)
    _refused_in_one_line(bad_files, args, message, workdir)


def _refused_in_one_line(bad_files: dict[str, Path], args: list[str], message: str, workdir: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([arg.format(**bad_files) for arg in args])
    text = str(exit_info.value.code)
    assert text.startswith("lit-tv: error: ") and "\n" not in text, text
    assert re.search(message, text), text
    assert not (workdir / "logs" / "shapes_mtv_colour" / "checkpoints").exists(), "nothing may be fitted"
    assert not held_locks(workdir), "a refused run claims no outputs"


@pytest.mark.slow
def test_the_console_command_exits_1_with_one_line_and_no_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "lit_tv.cli.command", "test", "--config", ICL, "--model.init_args.model.dtype=float33"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("lit-tv: error: model.dtype must be one of")


def test_a_batch_that_processes_cannot_share_is_refused_before_the_mean_pass():
    data = ShapesDataModule(batch_size=3)
    data.trainer = SimpleNamespace(world_size=2)
    with pytest.raises(ValueError, match="data.init_args.batch_size 3 must be a multiple of the 2 processes"):
        data.setup("fit")
    assert data._episodes is None, "refused before any episode is drawn"


@pytest.mark.slow
def test_images_in_a_query_file_are_decoded_when_it_is_read(bad_files, tmp_path):
    colour_image("red").save(tmp_path / "ok.png")
    Image.new("RGB", (8, 8)).save(tmp_path / "cut.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "cut.png").read_bytes()[:30])
    lines = [{"images": ["ok.png"], "question": "a"}, {"images": ["cut.png"], "question": "b"}]
    (tmp_path / "q.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    with pytest.raises(SystemExit, match=r"q.jsonl:2: cannot read image"):
        main(
            [
                "predict",
                "--config",
                *[arg.format(**bad_files) for arg in PREDICT],
                "--data.init_args.path",
                str(tmp_path / "q.jsonl"),
            ]
        )


@pytest.mark.parametrize(
    ("export", "message"), [("folder", "folder is a folder"), ("afile/v.safetensors", "afile is a file")]
)
def test_an_export_path_that_cannot_be_a_file_is_refused_before_the_work(export, message, workdir):
    Path("folder").mkdir()
    Path("afile").write_text("a user's file")
    fv = str(CONFIGS / "function_vectors.yaml")
    with pytest.raises(SystemExit, match=rf"model.init_args.export: {message}"):
        main(["test", "--config", fv, *SMALL[:3], f"--model.init_args.export={export}"])
    assert Path("afile").read_text() == "a user's file"
