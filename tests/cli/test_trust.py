"""Faults a user meets, one class per test: signals, replaced outputs, simultaneous starts, runs that measure
nothing, conflicting options, and advice that must work as written (docs/runs.md, "What each fault gets")."""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import re
import signal
from pathlib import Path

import pytest
from helpers import ICL_YAML, MTV_YAML, PREDICT_ARGS, mtv_vector_file, sized
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lit_tv.cli import app as cli
from lit_tv.cli.app import build_cli, main, spell_nested_nulls
from lit_tv.files import OutputLock
from lit_tv.methods.base import FrozenVLMMethod
from lit_tv.methods.mtv import MTV as MTVMethod
from lit_tv.shapes.datamodule import ShapesDataModule
from lit_tv.testing.zoo import main as zoo_main

CROSS_MODAL = str(Path(MTV_YAML).parent / "cross_modal.yaml")
VECTOR = Path("logs/shapes_mtv_colour/task_vector.safetensors")
SMOKE_VECTOR = Path("logs/shapes_mtv_colour/smoke/task_vector.safetensors")


# ---- signals ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_every_signal_ends_a_command_with_a_non_zero_exit_and_one_line(signum, capsys):
    with pytest.raises(SystemExit) as stopped:
        cli.run_as_command(lambda: os.kill(os.getpid(), signum))
    assert stopped.value.code == 128 + signum
    assert f"lit-tv: stopped by {signal.Signals(signum).name}: " in capsys.readouterr().err


def _kill_self_at_first_step(monkeypatch, method: type, hook: str, signum: int) -> None:
    original = getattr(method, hook)

    def killed(self, *args, **kwargs):
        os.kill(os.getpid(), signum)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(method, hook, killed)


@pytest.mark.slow
def test_a_sigtermed_fit_exits_non_zero_names_its_checkpoint_and_leaves_no_vector(monkeypatch, capsys, workdir):
    main(
        ["fit", "--config", MTV_YAML, "--trainer.max_steps=1", *sized(support=2, train=2, test=2)]
    )  # an earlier (smoke) run's vector
    _kill_self_at_first_step(monkeypatch, MTVMethod, "training_step", signal.SIGTERM)
    with pytest.raises(SystemExit) as stopped:
        main(["fit", "--config", MTV_YAML, "--trainer.max_steps=1", *sized(support=2, train=2, test=2), "--overwrite"])
    assert stopped.value.code == 128 + signal.SIGTERM
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "stopped by SIGTERM" in line and "no task vector was exported" in line, line
    assert not SMOKE_VECTOR.exists(), "the earlier run's vector must not pass for this run's"


@pytest.mark.slow
def test_a_sigtermed_test_exits_non_zero_without_a_table(monkeypatch, capsys, workdir):
    _kill_self_at_first_step(monkeypatch, FrozenVLMMethod, "test_step", signal.SIGTERM)
    with pytest.raises(SystemExit) as stopped:
        main(["test", "--config", ICL_YAML, *sized(test=2, steps=1)])
    assert stopped.value.code == 128 + signal.SIGTERM
    output = capsys.readouterr()
    assert "no test result; run the same command again" in output.err and "accuracy" not in output.out


# ---- short runs ------------------------------------------------------------------------------------------


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


# ---- outputs are never replaced without --overwrite ------------------------------------------------------


@pytest.mark.slow
def test_a_second_fit_is_refused_without_overwrite_and_replaces_with_it(workdir):
    main(["fit", "--config", MTV_YAML, *sized(support=2, train=2, test=2, steps=1)])
    written = SMOKE_VECTOR.stat().st_mtime_ns
    with pytest.raises(SystemExit, match=r"smoke/task_vector.safetensors.*an earlier run's output.*--overwrite"):
        main(["fit", "--config", MTV_YAML, *sized(support=2, train=2, test=2, steps=1)])
    assert SMOKE_VECTOR.stat().st_mtime_ns == written
    main(["fit", "--config", MTV_YAML, *sized(support=2, train=2, test=2, steps=1), "--overwrite"])
    assert SMOKE_VECTOR.stat().st_mtime_ns != written


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


# ---- runs that measure nothing, conflicting options, generation beyond the context -----------------------


@pytest.mark.slow
def test_a_test_that_scores_no_query_fails(workdir):
    with pytest.raises(SystemExit, match=r"lit-tv test scored no query: the test split is empty"):
        main(["test", "--config", ICL_YAML, *sized(support=2, train=2), "--data.init_args.test_size=0"])


@pytest.mark.slow
def test_a_task_that_gets_no_test_query_shows_no_accuracy(capfd, recwarn, workdir):
    """Two queries over three tasks: the third task's row is '-' over 0 queries, and NaN (not 0) in TensorBoard."""
    main(
        ["test", "--config", ICL_YAML, "--data.init_args.tasks=[colour,shape,position]", "--data.init_args.test_size=2"]
    )
    out = capfd.readouterr().out
    assert re.search(r"^position\s+-\s+0$", out, re.MULTILINE), out
    assert not [warning for warning in recwarn if "called before the ``update``" in str(warning.message)]
    (events,) = Path("logs/shapes_icl").glob("*/events.out.tfevents.*")
    scalars = EventAccumulator(str(events))
    scalars.Reload()
    assert [math.isnan(event.value) for event in scalars.Scalars("test/accuracy/position")] == [True]
    assert [event.value for event in scalars.Scalars("test/queries/position")] == [0.0]
    assert [event.value for event in scalars.Scalars("test/queries")] == [2.0]


def test_the_help_says_what_lit_tv_is_and_what_no_arguments_run(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "task vectors for frozen vision-language models" in text
    assert "`lit-tv` with no arguments runs the shapes world's main job" in text


def test_a_threshold_that_keeps_no_head_is_refused():
    with pytest.raises(ValueError, match=r"model.init_args.threshold=1.0 .* no head would be kept"):
        MTVMethod(selection="threshold", threshold=1.0)


@pytest.mark.parametrize("seed", ["0", "3"])  # 0, the value a run shows when no seed is given, too
def test_seed_and_seeds_together_are_refused_from_the_command_line(seed):
    both = rf"data.init_args.seed={seed} and data.init_args.seeds=\[0, 1\] both given"
    with pytest.raises(SystemExit, match=both):
        main(["test", "--config", ICL_YAML, "--data.init_args.seed", seed, "--data.init_args.seeds", "[0,1]"])


def test_an_empty_list_of_seeds_is_refused():
    with pytest.raises(ValueError, match=r"data.init_args.seeds is empty"):
        ShapesDataModule(seeds=[])


def test_seeds_alone_draw_from_each_and_record_no_seed():
    data = ShapesDataModule(seeds=[1, 2])
    assert data.seeds == [1, 2] and data.seed == 1 and data.hparams["seed"] is None


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


def test_a_prompt_and_its_new_tokens_beyond_the_context_are_refused():
    method = MTVMethod(max_new_tokens=2000)  # the toy's context is 1024 positions
    method.configure_model()
    data = ShapesDataModule(tasks=["colour"], support_size=1, train_size=1, test_size=1, shots=0)
    with pytest.raises(ValueError, match=r"\+ 2000 new tokens \(model.init_args.max_new_tokens\), longer than"):
        method.vlm.build_inputs(data.test_queries()[:1], data.template, method.max_new_tokens)


def test_method_defaults_answer_the_built_in_world_in_one_word():
    assert MTVMethod().max_new_tokens == 1 and FrozenVLMMethod().max_new_tokens == 1


# ---- advice that works as written ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "advice",
    [
        ["--model.init_args.model.quantization", "null"],  # the NF4 refusal on a CPU
        ["--model.init_args.model.quantization=null"],
        ["--model.init_args.model.image_width=null"],
        ["--model.init_args.model.device_map=null"],
    ],
)
def test_a_nested_null_the_messages_advise_parses_as_null(advice):
    built = build_cli(
        Path(ICL_YAML), ["--model.init_args.model.quantization=nf4", "--model.init_args.model.image_width=16", *advice]
    )
    field = advice[0].split(".")[-1].split("=")[0]
    assert getattr(built.model.model_options, field) is None
    assert built.model.model_options.image_width == (None if field == "image_width" else 16), "other fields kept"


def test_nested_nulls_are_spelled_as_blocks_and_nothing_else_changes():
    assert spell_nested_nulls(["--a.init_args.b.c", "null", "--d.init_args.e=null", "--x", "null"]) == [
        "--a.init_args.b={c: null}",
        "--d.init_args.e=null",
        "--x",
        "null",
    ]


def test_a_fit_over_no_training_batch_is_refused(workdir):
    with pytest.raises(SystemExit, match=r"trainer.limit_train_batches=0: a fit over no training batch fits nothing"):
        main(
            [
                "fit",
                "--config",
                MTV_YAML,
                *sized(support=2, train=2, test=2, steps=1),
                "--trainer.limit_train_batches=0",
            ]
        )


def test_a_fit_resuming_last_with_no_checkpoint_says_it_starts_afresh(caplog, workdir):
    main(["fit", "--config", MTV_YAML, *sized(support=2, train=2, test=2, steps=1), "--ckpt_path", "last"])
    assert "--ckpt_path last: no last checkpoint was found: this fit starts from the beginning" in caplog.text
