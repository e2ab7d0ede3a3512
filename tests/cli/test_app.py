"""What LitTVCLI checks before a run starts and says after it: the help, seed options, runs that would measure or
fit nothing, a resume with no checkpoint, and the nested nulls its messages advise (docs/runs.md, "What each fault
gets")."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
from helpers import ICL_YAML, MTV_YAML, sized
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lit_tv.cli.app import build_cli, spell_nested_nulls
from lit_tv.cli.command import main


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


@pytest.mark.parametrize("seed", ["0", "3"])  # 0, the value a run shows when no seed is given, too
def test_seed_and_seeds_together_are_refused_from_the_command_line(seed):
    both = rf"data.init_args.seed={seed} and data.init_args.seeds=\[0, 1\] both given"
    with pytest.raises(SystemExit, match=both):
        main(["test", "--config", ICL_YAML, "--data.init_args.seed", seed, "--data.init_args.seeds", "[0,1]"])


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
