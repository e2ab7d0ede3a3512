"""What runs leave on disk: whole files readable by others, no temporaries, no run overwriting a live run's outputs,
answers kept as they come."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import PREDICT_ARGS, colour_image, held_locks, mtv_vector_file, sized

from lit_tv.cli.app import build_cli
from lit_tv.cli.command import main
from lit_tv.files import atomic_path, write_atomic
from lit_tv.methods.checkpoints import AtomicCheckpointIO
from lit_tv.shapes.studies.main_job import CONFIGS

MTV = str(CONFIGS / "mtv.yaml")
VECTOR = Path(
    "logs/shapes_mtv_colour/smoke/task_vector.safetensors"
)  # sized(support=2, train=2, test=2, steps=1) cuts the run short (max_steps=1)
CHECKPOINTS = Path("logs/shapes_mtv_colour/smoke/checkpoints")


@pytest.fixture
def usual_umask():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def _leftovers(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.tmp"))


def test_written_files_are_readable_like_checkpoints(tmp_path, usual_umask):
    path = write_atomic(tmp_path / "results.json", "{}")
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_an_interrupted_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = write_atomic(tmp_path / "results.json", "old")
    with pytest.raises(KeyboardInterrupt), atomic_path(path) as temporary:
        temporary.write_text("half")
        raise KeyboardInterrupt
    assert path.read_text() == "old" and not _leftovers(tmp_path)


def test_a_checkpoint_save_that_fails_leaves_the_last_one_whole(tmp_path, usual_umask):
    path = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"step": torch.tensor(1)}, path)
    with pytest.raises(Exception, match="pickle|lambda"):
        AtomicCheckpointIO().save_checkpoint({"step": lambda: 2}, path)
    assert torch.load(path, weights_only=True)["step"] == 1 and not _leftovers(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


# another lit_tv run: claims the output named in argv[1] and holds it until it is killed
HOLDER = (
    "import sys, time; from lit_tv.files import OutputLock; lock = OutputLock([sys.argv[1]], 'another run'); "
    "lock.acquire(); print(flush=True); time.sleep(60)"
)


def _held_by_another_run(path: Path) -> subprocess.Popen:
    path.parent.mkdir(parents=True, exist_ok=True)
    other = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdout=subprocess.PIPE, text=True)
    assert other.stdout is not None and other.stdout.readline() == "\n", "the other run holds the lock"
    return other


def _killed(other: subprocess.Popen) -> None:
    other.kill()
    other.wait()


@pytest.mark.slow
def test_a_fit_into_the_outputs_of_a_live_run_is_refused_and_a_killed_runs_lock_is_free(workdir):
    other = _held_by_another_run(VECTOR)
    try:
        with pytest.raises(
            SystemExit, match=r"task_vector.safetensors is being written by another run .*model.init_args.export"
        ):
            main(["fit", "--config", MTV, *sized(support=2, train=2, test=2, steps=1)])
        assert not CHECKPOINTS.exists() and not VECTOR.exists()
    finally:
        _killed(other)
    other = _held_by_another_run(CHECKPOINTS)
    try:
        with pytest.raises(SystemExit, match=r"checkpoints is being written by another run"):
            main(["fit", "--config", MTV, *sized(support=2, train=2, test=2, steps=1)])
    finally:
        _killed(other)
    main(
        ["fit", "--config", MTV, *sized(support=2, train=2, test=2, steps=1)]
    )  # the other runs were killed: the kernel dropped their locks
    assert VECTOR.is_file() and not held_locks(Path("logs")), "locks are released when the fit ends"


@pytest.mark.slow
def test_predict_writes_answers_as_they_come_under_a_partial_name_and_a_failed_overwrite_keeps_the_earlier(workdir):
    vector = mtv_vector_file(workdir, "vector.safetensors")
    for index in range(3):
        colour_image(["red", "blue", "green"][index]).save(workdir / f"{index}.png")
    questions = workdir / "questions.jsonl"
    questions.write_text(
        "".join(json.dumps({"images": [f"{index}.png"], "question": f"q{index}"}) + "\n" for index in range(3))
    )
    answers = workdir / "logs" / "shapes_mtv_colour" / "answers.jsonl"
    answers.parent.mkdir(parents=True)
    answers.write_text('{"question": "from an earlier run"}\n')
    cli = build_cli(
        Path(PREDICT_ARGS[0]),
        [
            f"--model.init_args.task_vector={vector}",
            f"--data.init_args.path={questions}",
            "--data.init_args.batch_size=1",
            "--overwrite",
        ],
    )
    (workdir / "2.png").unlink()  # the last image goes missing after the file was read
    with pytest.raises(FileNotFoundError, match="2.png"):
        cli.trainer.predict(cli.model, datamodule=cli.datamodule)
    partial = Path(f"{answers}.partial")
    assert [json.loads(line)["question"] for line in partial.read_text().splitlines()] == ["q0", "q1"]
    assert answers.read_text() == '{"question": "from an earlier run"}\n', "a failed --overwrite run loses nothing"


@pytest.mark.slow
def test_a_predict_run_refused_for_an_empty_query_file_leaves_the_earlier_answers_as_they_were(workdir):
    vector = mtv_vector_file(workdir, "vector.safetensors")
    (workdir / "empty.jsonl").write_text("\n")
    answers = workdir / "logs" / "shapes_mtv_colour" / "answers.jsonl"
    answers.parent.mkdir(parents=True)
    answers.write_text('{"question": "from an earlier run"}\n')
    with pytest.raises(SystemExit, match="has no questions"):
        main(
            [
                "predict",
                "--config",
                PREDICT_ARGS[0],
                f"--model.init_args.task_vector={vector}",
                f"--data.init_args.path={workdir / 'empty.jsonl'}",
            ]
        )
    assert answers.read_text() == '{"question": "from an earlier run"}\n' and not Path(f"{answers}.partial").exists()
