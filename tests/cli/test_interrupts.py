"""Signals end a run with a non-zero exit and one line that says what was saved (docs/runs.md, "What each
fault gets")."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from helpers import ICL_YAML, MTV_YAML, sized

from lit_tv.cli import command
from lit_tv.cli.command import main
from lit_tv.methods.base import FrozenVLMMethod
from lit_tv.methods.mtv import MTV as MTVMethod

SMOKE_VECTOR = Path("logs/shapes_mtv_colour/smoke/task_vector.safetensors")
SMOKE_CHECKPOINT = Path("logs/shapes_mtv_colour/smoke/checkpoints/last.ckpt")


def _kill_self_at_first_step(monkeypatch, method: type, hook: str, signum: int) -> None:
    original = getattr(method, hook)

    def killed(self, *args, **kwargs):
        os.kill(os.getpid(), signum)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(method, hook, killed)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_every_signal_ends_a_command_with_a_non_zero_exit_and_one_line(signum, capsys):
    with pytest.raises(SystemExit) as stopped:
        command.run_as_command(lambda: os.kill(os.getpid(), signum))
    assert stopped.value.code == 128 + signum
    assert f"lit-tv: stopped by {signal.Signals(signum).name}: " in capsys.readouterr().err


@pytest.mark.slow
def test_a_sigtermed_overwrite_fit_exits_non_zero_and_leaves_the_earlier_vector_and_checkpoints(
    monkeypatch, capsys, workdir
):
    run = ["fit", "--config", MTV_YAML, "--trainer.max_steps=1", *sized(support=2, train=2, test=2)]
    main(run)  # an earlier (smoke) run's vector and checkpoint
    earlier = {path: path.read_bytes() for path in (SMOKE_VECTOR, SMOKE_CHECKPOINT)}
    _kill_self_at_first_step(monkeypatch, MTVMethod, "training_step", signal.SIGTERM)
    with pytest.raises(SystemExit) as stopped:
        main([*run, "--overwrite"])
    assert stopped.value.code == 128 + signal.SIGTERM
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "stopped by SIGTERM" in line and "no task vector was exported" in line, line
    assert "the earlier fit's checkpoints" in line and "its vector are unchanged" in line, line
    assert {path: path.read_bytes() for path in earlier} == earlier, "a stopped --overwrite run loses nothing"


@pytest.mark.slow
def test_a_sigtermed_test_exits_non_zero_without_a_table(monkeypatch, capsys, workdir):
    _kill_self_at_first_step(monkeypatch, FrozenVLMMethod, "test_step", signal.SIGTERM)
    with pytest.raises(SystemExit) as stopped:
        main(["test", "--config", ICL_YAML, *sized(test=2, steps=1)])
    assert stopped.value.code == 128 + signal.SIGTERM
    output = capsys.readouterr()
    assert "no test result; run the same command again" in output.err and "accuracy" not in output.out
