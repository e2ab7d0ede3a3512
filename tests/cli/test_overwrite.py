"""A run never replaces a file it did not create without --overwrite, never writes over a file it reads, and
one of many simultaneous starts claims an output."""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import MTV_YAML, PREDICT_ARGS, mtv_vector_file, sized

from lit_tv.cli.app import build_cli
from lit_tv.cli.command import main
from lit_tv.files import OutputLock
from lit_tv.methods.mtv import MTV as MTVMethod
from lit_tv.testing.zoo import main as zoo_main

CROSS_MODAL = str(Path(MTV_YAML).parent / "cross_modal.yaml")
VECTOR = Path("logs/shapes_mtv_colour/task_vector.safetensors")
SMOKE_VECTOR = Path("logs/shapes_mtv_colour/smoke/task_vector.safetensors")
SMOKE_CHECKPOINT = Path("logs/shapes_mtv_colour/smoke/checkpoints/last.ckpt")
STAGING = Path("logs/shapes_mtv_colour/smoke/checkpoints.partial")


def _start(path: str, barrier, results) -> None:
    barrier.wait()
    lock = OutputLock([path], "test")  # held while it lives
    try:
        lock.acquire()
        won = True
    except FileExistsError:
        won = False
    barrier.wait()  # every start has tried while the winners still hold their locks
    results.put(won)


@pytest.mark.slow
def test_a_run_its_command_line_cuts_short_writes_beside_the_configs_paths_and_says_so(workdir):
    for short in (["--trainer.max_steps=1"], ["--trainer.fast_dev_run=true"], ["--trainer.limit_train_batches", "1"]):
        built = build_cli(Path(MTV_YAML), short)
        assert built.model.hparams.export == str(SMOKE_VECTOR), short
        assert built.trainer.checkpoint_callbacks[0].dirpath.endswith("logs/shapes_mtv_colour/smoke/checkpoints"), short
    built = build_cli(Path(MTV_YAML), ["--trainer.max_steps=1", "--model.init_args.export=mine.safetensors"])
    assert built.model.hparams.export == "mine.safetensors", "a path given on the command line is kept"
    for whole in ([], ["--trainer.max_steps=-1"], ["--trainer.limit_train_batches=1.0"]):  # 1.0 is all, 1 one batch
        assert build_cli(Path(MTV_YAML), whole).model.hparams.export == str(VECTOR), f"{whole} keeps the config's paths"


@pytest.mark.slow
def test_a_second_fit_is_refused_without_overwrite_and_replaces_with_it(workdir):
    main(["fit", "--config", MTV_YAML, *sized(support=2, train=2, test=2, steps=1)])
    written = SMOKE_VECTOR.stat().st_mtime_ns
    with pytest.raises(SystemExit, match=r"smoke/task_vector.safetensors.*an earlier run's output.*--overwrite"):
        main(["fit", "--config", MTV_YAML, *sized(support=2, train=2, test=2, steps=1)])
    assert SMOKE_VECTOR.stat().st_mtime_ns == written
    main(["fit", "--config", MTV_YAML, *sized(support=2, train=2, test=2, steps=1), "--overwrite"])
    assert SMOKE_VECTOR.stat().st_mtime_ns != written


@pytest.mark.slow
def test_an_overwrite_fit_that_fails_late_loses_nothing_and_its_resume_replaces_the_earlier_outputs(
    monkeypatch, workdir
):
    """The earlier vector and checkpoint stay through a failure after the training steps (choosing the heads); the
    failed fit's checkpoints wait in `<dirpath>.partial`, which the same command with --ckpt_path last resumes,
    replacing the earlier ones."""
    run = ["fit", "--config", MTV_YAML, *sized(support=2, train=2, test=2, steps=1)]
    main(run)
    earlier = {path: path.read_bytes() for path in (SMOKE_VECTOR, SMOKE_CHECKPOINT)}

    def fails(self):
        raise RuntimeError("failed after the training steps")

    other = [*run, "--model.init_args.samples=4", "--overwrite"]  # a fit the earlier checkpoint cannot resume
    with monkeypatch.context() as patched:
        patched.setattr(MTVMethod, "select_heads", fails)
        with pytest.raises(RuntimeError, match="failed after the training steps"):
            main(other)
    assert {path: path.read_bytes() for path in earlier} == earlier, "a failed --overwrite run loses nothing"
    assert (STAGING / "last.ckpt").is_file(), "the failed fit's checkpoint waits beside the earlier one"
    main([*other, "--ckpt_path", "last"])  # resumes the staged checkpoint: the earlier one would be refused
    assert not STAGING.exists(), "its checkpoints moved over the earlier ones"
    assert sorted(SMOKE_CHECKPOINT.parent.glob("*.ckpt")) == [SMOKE_CHECKPOINT]
    assert torch.load(SMOKE_CHECKPOINT, weights_only=True)["hyper_parameters"]["samples"] == 4
    assert SMOKE_VECTOR.read_bytes() != earlier[SMOKE_VECTOR], "the resumed fit exported its own vector"


def test_a_learning_rate_adam_refuses_is_refused_before_any_work(workdir):
    with pytest.raises(SystemExit, match=r"model.init_args.learning_rate must be a finite number above 0.*got -0.1"):
        main(["fit", "--config", MTV_YAML, "--model.init_args.learning_rate=-0.1"])
    assert not Path("logs").exists(), "refused before the run made its folders"


def test_a_test_never_rewrites_the_vector_it_reads(workdir):
    vector = Path("logs/shapes_cross_modal/task_vectors.safetensors")
    vector.parent.mkdir(parents=True)
    vector.write_bytes(b"stands for a vector")
    lock = OutputLock([vector], "model.init_args.export", overwrite=True, inputs=[vector])
    with pytest.raises(ValueError, match="both a file this run reads and an output it would write"):
        lock.acquire()
    assert vector.read_bytes() == b"stands for a vector"


@pytest.mark.slow
def test_a_second_run_over_seeds_is_refused_before_it_replaces_a_seeds_vector(workdir):
    """Over several data seeds the export is one file per seed, named from the export path: each is claimed."""
    run = ["test", "--config", CROSS_MODAL, "--data.init_args.seeds=[0,1]", "--data.init_args.tasks=[colour]"]
    run += ["--data.init_args.support_size=4", "--data.init_args.val_size=2", *sized(test=2), "--trainer.callbacks=[]"]
    main(run)
    first = Path("logs/shapes_cross_modal/task_vectors.seed0.safetensors")
    written = first.stat().st_mtime_ns
    with pytest.raises(SystemExit, match=r"task_vectors.seed0.safetensors.*an earlier run's output.*--overwrite"):
        main(run)
    assert first.stat().st_mtime_ns == written
    main([*run, "--overwrite"])
    assert first.stat().st_mtime_ns != written


@pytest.mark.slow
def test_predict_answers_are_partial_until_complete_and_never_replace_an_earlier_file(workdir):
    vector = mtv_vector_file(workdir, "vector.safetensors")
    questions = workdir / "questions.jsonl"
    questions.write_text(json.dumps({"images": [], "question": "red ="}) + "\n")
    answers = Path("logs/shapes_mtv_colour/answers.jsonl")
    answers.parent.mkdir(parents=True)
    answers.write_text('{"question": "an earlier run"}\n')
    args = [
        "predict",
        "--config",
        PREDICT_ARGS[0],
        f"--model.init_args.task_vector={vector}",
        f"--data.init_args.path={questions}",
    ]
    with pytest.raises(SystemExit, match=r"answers.jsonl: an earlier run's output.*--overwrite"):
        main(args)
    assert answers.read_text() == '{"question": "an earlier run"}\n'
    main([*args, "--overwrite"])
    assert json.loads(answers.read_text())["question"] == "red =" and not Path(f"{answers}.partial").exists()


@pytest.mark.parametrize("read", ["questions.jsonl", "vector.safetensors"])
def test_predict_never_writes_its_answers_over_a_file_it_reads_even_with_overwrite(read, workdir):
    vector = mtv_vector_file(workdir, "vector.safetensors")
    Path("questions.jsonl").write_text(json.dumps({"images": [], "question": "red ="}) + "\n")
    kept = Path(read).read_bytes()
    writer = f"[{{class_path: lit_tv.callbacks.answers_writer.AnswersWriter, init_args: {{path: {read}}}}}]"
    args = ["predict", "--config", PREDICT_ARGS[0], f"--model.init_args.task_vector={vector}"]
    with pytest.raises(SystemExit, match=rf"{read} is both a file this run reads and an output it would write"):
        main([*args, "--data.init_args.path=questions.jsonl", f"--trainer.callbacks={writer}", "--overwrite"])
    assert Path(read).read_bytes() == kept


def test_the_zoo_refuses_a_folder_that_holds_a_model(tmp_path, capsys):
    folder = tmp_path / "llama"
    zoo_main(["llama", str(folder)])
    saved = (folder / "config.json").stat().st_mtime_ns
    with pytest.raises(SystemExit) as refused:
        zoo_main(["llama", str(folder)])
    assert refused.value.code == 1 and "already holds a model: give --overwrite" in capsys.readouterr().err
    assert (folder / "config.json").stat().st_mtime_ns == saved
    zoo_main(["llama", str(folder), "--overwrite"])
    assert (folder / "config.json").stat().st_mtime_ns != saved and not Path(f"{folder}.partial").exists()


@pytest.mark.slow
def test_one_of_twenty_simultaneous_starts_claims_an_output(tmp_path):
    """Over a killed run's lock file, which a hand-made lock had to judge stale and replace (a race: before its
    flock guard, a4d0b0d, two starts won within these 20 attempts in each of 3 runs)."""
    context = multiprocessing.get_context("fork")
    for attempt in range(20):
        path = str(tmp_path / f"vector{attempt}.safetensors")
        Path(f"{path}.lock").write_text("")  # a killed run's, held by no process
        barrier, results = context.Barrier(20), context.Queue()
        starts = [context.Process(target=_start, args=(path, barrier, results)) for _ in range(20)]
        for start in starts:
            start.start()
        winners = sum(results.get(timeout=60) for _ in starts)
        for start in starts:
            start.join()
        assert winners == 1, f"attempt {attempt}: {winners} runs claimed the same output"


# processes that hold an output's lock as others than a live run would: argv[1] is the lock file
FLOCK = "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); fcntl.flock(fd, fcntl.LOCK_EX); "
HOLDERS = {
    "another program": FLOCK + "print(os.getpid(), flush=True); import time; time.sleep(60)",
    # takes the lock, starts a process that inherits it, and ends: the lock outlives the process that took it
    "a stale lock": FLOCK
    + "import subprocess; print(subprocess.Popen(['sleep', '60'], pass_fds=[fd]).pid, os.getpid())",
    "another run": "import sys, time; from lit_tv.files import OutputLock; lock = OutputLock([sys.argv[1][:-5]], 'x'); "
    "lock.acquire(); import os; print(os.getpid(), flush=True); time.sleep(60)",
}
MESSAGES = {
    "another program": r"out.bin is locked by pid {pid} \(.*python.*\), which is not a lit_tv run: end it "
    r"\(kill {pid}\) or, if no run is writing it, delete {lock} and run again; or give this run other outputs "
    r"\(the option\)",
    "a stale lock": r"out.bin is locked by a stale lock: {lock} is still held though the process that took it "
    r"\(pid {pid}\) has ended .*fuser {lock}.*: end that process or, if no run is writing it, delete {lock} and run",
    "another run": r"out.bin is being written by another run \(pid {pid}: .*lit_tv.*\): wait for it to end; or give",
}


@pytest.mark.skipif(not Path("/proc/locks").is_file(), reason="the kernel's lock list is Linux's")
@pytest.mark.parametrize("holder", sorted(HOLDERS))
def test_a_held_lock_names_its_holder_and_how_to_clear_it(tmp_path, holder):
    output, lock_file = tmp_path / "out.bin", tmp_path / "out.bin.lock"
    started = subprocess.Popen(
        [sys.executable, "-c", HOLDERS[holder], str(lock_file)], stdout=subprocess.PIPE, text=True
    )
    assert started.stdout is not None
    pids = [int(pid) for pid in started.stdout.readline().split()]
    holding = pids[0]  # the process that holds the lock now
    if holder == "a stale lock":
        started.wait()  # reaped: the taker has ended, its child holds on
    try:
        message = MESSAGES[holder].format(pid=pids[-1], lock=re.escape(str(lock_file)))
        with pytest.raises(FileExistsError, match=message):
            OutputLock([output], "the option").acquire()
        if holder != "another run":  # the advice, followed, gets past it
            lock_file.unlink()
            claimed = OutputLock([output], "the option")
            claimed.acquire()
            claimed.release()
    finally:
        os.kill(holding, signal.SIGKILL)
        started.wait()
