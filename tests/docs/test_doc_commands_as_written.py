"""The commands README.md and docs/ show, run as a user types them, each checked for the effect it promises.

Each runs in a temporary folder laid out like a checkout (the configs, scripts and package linked in), so no
run writes into this one. `tests/docs/test_doc_command_inventory.py` lists which test runs which command, and how.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import random
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import torch
from helpers import COMMIT, REPO, hub_cache, logged_scalars, shown_commands
from huggingface_hub import HfApi, constants
from safetensors.torch import load_file

from lit_tv.cli.command import main
from lit_tv.cli.share import main as share_main
from lit_tv.model.vlm import FrozenVLM
from lit_tv.shapes.studies.main_job import ROWS
from lit_tv.shapes.world import draw, objects
from lit_tv.vectors.scores import read_scores

pytestmark = pytest.mark.slow  # each runs a full-size command: deselect with -m 'not slow'

ROOT = REPO
VENV_BIN = Path(sys.executable).parent  # the environment running the tests: `.venv/bin` under scripts/test.sh
ENV = {**os.environ, "PYTHONWARNINGS": "ignore"}


def checkout(tmp_path: Path, *names: str) -> Path:
    """A folder holding `names` of this checkout (linked), as a clone does."""
    folder = tmp_path / "checkout"
    folder.mkdir(parents=True)
    for name in names:
        (folder / name).symlink_to(ROOT / name)
    return folder


def installed_venv(folder: Path) -> None:
    """`.venv` as scripts/venv.sh leaves it (installed, stamp current), its commands this environment's: the
    scripts then run as written without installing anything."""
    bin_dir = folder / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    commands = {"python": sys.executable, "lit-tv": f"{sys.executable} -m lit_tv"}
    commands["lit-tv-share"] = f"{sys.executable} -m lit_tv.cli.share"  # pyproject's script (checked where run)
    commands |= {name: str(VENV_BIN / name) for name in ("ruff", "mypy")}
    for name, target in commands.items():
        (bin_dir / name).write_text(f'#!/bin/sh\nexec {target} "$@"\n')
        (bin_dir / name).chmod(0o755)
    stamp = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    (folder / ".venv" / ".lit_tv-installed").write_text(stamp + "\n")


def run(command: str, cwd: Path, timeout: int = 900, **env: str) -> subprocess.CompletedProcess[str]:
    """One shell command line, with this environment's commands first on PATH (as after activating it)."""
    path = f"{VENV_BIN}:{os.environ['PATH']}"
    done = subprocess.run(
        command, shell=True, cwd=cwd, env={**ENV, "PATH": path, **env}, capture_output=True, text=True, timeout=timeout
    )
    return done


def page_command(page: str, start: str) -> str:
    """The one command `page` shows that starts with `start`."""
    found = [command for command in shown_commands((ROOT / page).read_text()) if command.startswith(start)]
    assert len(found) == 1, (page, start, found)
    return found[0]


def lit_tv(command: str, capfd: pytest.CaptureFixture[str]) -> str:
    """A README `lit-tv ...` line run in this process (the console script's `main`); what it printed."""
    words = shlex.split(command)
    assert words[0] == "lit-tv", command
    capfd.readouterr()
    main(words[1:])
    return capfd.readouterr().out


def task_row(printed: str, task: str, queries: int) -> float:
    """The accuracy in the end-of-test table's row of `task`."""
    row = re.search(rf"^{task}\s+([\d.]+)\s+{queries}\b", printed, re.MULTILINE)
    assert row, printed
    return float(row.group(1))


MODEL_ARG = "pretrained=lit_tv/shapes-toy,"


def harness_accuracy(printed: str) -> float:
    """The exact_match value in lmms-eval's results table (its vizwiz_vqa_val row)."""
    row = re.search(r"^\|vizwiz_vqa_val\s*\|none\s*\|\s*0\|exact_match\|[^|]*\|\s*([\d.]+)\|", printed, re.MULTILINE)
    assert row, printed[-3000:]
    return float(row.group(1))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_sourcing_the_environment_puts_its_commands_first_on_path(tmp_path):
    folder = checkout(tmp_path)
    (folder / ".venv").symlink_to(sys.prefix)  # the environment scripts/venv.sh made, at the README's path
    script = (
        "source .venv/bin/activate && command -v lit-tv && lit-tv --help && tensorboard --version && "
        "python -c 'import lit_tv; print(lit_tv.__file__)'"
    )
    bare = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", str(tmp_path))}
    bare |= {key: os.environ[key] for key in ("PYTHONPATH",) if key in os.environ}  # a worktree's lit_tv wins
    done = subprocess.run(["bash", "-c", script], cwd=folder, env=bare, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    first, *rest = done.stdout.splitlines()
    assert os.path.realpath(first) == os.path.realpath(VENV_BIN / "lit-tv"), first
    assert "{fit,validate,test,predict}" in done.stdout, done.stdout[-2000:]
    assert re.search(r"^\d+\.\d+", rest[-2], re.MULTILINE), rest  # tensorboard's version
    assert Path(rest[-1]).resolve().is_relative_to(ROOT.resolve()), rest[-1]


@pytest.mark.slow
def test_the_csv_logger_command_writes_the_tables_numbers(tmp_path, monkeypatch, capfd):
    monkeypatch.chdir(checkout(tmp_path, "configs"))
    printed = lit_tv(
        page_command("docs/runs.md", "lit-tv test --config configs/shapes/icl.yaml --trainer.logger"), capfd
    )
    (metrics,) = Path("logs/shapes_icl").glob("version_*/metrics.csv")
    with metrics.open() as file:
        (row,) = csv.DictReader(file)  # one test: one row
    for task in ("colour", "shape", "position"):
        assert float(row[f"test/accuracy/{task}"]) == pytest.approx(task_row(printed, task, 50), abs=5e-4)
        assert float(row[f"test/queries/{task}"]) == 50


def test_tensorboard_serves_a_runs_logged_scalars(tmp_path, monkeypatch, capfd):
    folder = checkout(tmp_path, "configs")
    monkeypatch.chdir(folder)
    lit_tv("lit-tv test --config configs/shapes/icl.yaml --data.init_args.test_size 6", capfd)  # a short run
    port = free_port()
    command = page_command("README.md", "tensorboard")
    server = subprocess.Popen(
        [*shlex.split(command), "--port", str(port)],
        cwd=folder,
        env={**ENV, "PATH": f"{VENV_BIN}:{os.environ['PATH']}"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline, runs = time.monotonic() + 120, None
        while not runs and time.monotonic() < deadline:  # [] until its first load of the folder
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/data/runs", timeout=5) as answer:
                    runs = json.load(answer)
            except OSError:
                pass
            time.sleep(0.5)
        assert runs == ["shapes_icl/version_0"], runs
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/data/plugin/scalars/tags", timeout=30) as answer:
            tags = json.load(answer)
        assert "test/accuracy" in tags["shapes_icl/version_0"], tags
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_main_sh_runs_the_main_job(tmp_path):
    """The whole job as written: 3 seeds, every row. Its cost is the random-heads control (20 draws x 150
    queries x 3 tasks per seed): seed 0 alone took 13.5 min on 2 CPU cores at load average 10 (2026-12-03)."""
    folder = checkout(tmp_path, "scripts", "configs", "pyproject.toml")
    installed_venv(folder)
    done = run("bash scripts/main.sh", folder, timeout=3 * 3600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "mean ± std (min–max) over seeds 0, 1, 2" in done.stdout, done.stdout
    for row in ROWS:
        assert re.search(rf"^{re.escape(row)}", done.stdout, re.MULTILINE), (row, done.stdout)
    for task in ("colour", "shape", "position"):
        assert (folder / "logs" / f"shapes_mtv_{task}" / "seed_2" / "task_vector.safetensors").is_file()


def test_main_sh_refuses_a_second_run_and_passes_arguments_to_lit_tv(tmp_path):
    """README: a second `bash scripts/main.sh` refuses to replace the first one's vectors; extra arguments go to
    `lit-tv` (here the README's VTV row)."""
    folder = checkout(tmp_path, "scripts", "configs", "pyproject.toml")
    installed_venv(folder)
    first = folder / "logs" / "shapes_mtv_colour" / "seed_0" / "task_vector.safetensors"
    first.parent.mkdir(parents=True)
    first.write_bytes(b"the first run's vector")
    again = run("bash scripts/main.sh", folder)
    assert again.returncode == 1 and "--overwrite" in again.stderr, again.stderr[-3000:]
    assert first.read_bytes() == b"the first run's vector"
    fit = run("bash scripts/main.sh fit --config configs/shapes/vtv.yaml", folder)
    assert fit.returncode == 0, fit.stderr[-3000:]
    vector = load_file(folder / "logs" / "shapes_vtv_colour" / "task_vector.safetensors")
    assert {"mean_activations", "theta"} <= set(vector), set(vector)


def test_test_sh_checks_format_lint_types_then_runs_pytest_with_its_arguments(tmp_path):
    folder = checkout(tmp_path, "scripts", "lit_tv", "tests", "benchmarks", "configs", "pyproject.toml")
    installed_venv(folder)
    done = run("bash scripts/test.sh -p no:cacheprovider -k test_task_table_formats_numbers_and_missing_cells", folder)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert "files already formatted" in done.stdout and "All checks passed!" in done.stdout, done.stdout
    assert re.search(r"Success: no issues found in \d+ source files", done.stdout), done.stdout
    assert re.search(r"^1 passed, \d+ deselected", done.stdout, re.MULTILINE), done.stdout[-2000:]


def test_the_readme_method_commands_run_as_written(tmp_path, monkeypatch, capfd):
    """The README's "Running methods" table, top to bottom, in a fresh folder (the VTV row: the main.sh test)."""
    table = (ROOT / "README.md").read_text().split("## Running methods", 1)[1].split("\n## ", 1)[0]
    rows = [command for command in shown_commands(table) if "configs/shapes/" in command]
    fit, test, resume, _vtv, icl, function_vectors, cross_modal, predict = rows
    folder = checkout(tmp_path, "configs")
    monkeypatch.chdir(folder)

    lit_tv(fit, capfd)
    vector_path = folder / "logs" / "shapes_mtv_colour" / "task_vector.safetensors"
    fitted = load_file(vector_path)
    selected = task_row(lit_tv(test, capfd), "colour", 150)
    by_vector = f"{test.split(' --ckpt_path')[0]} --model.init_args.task_vector {vector_path.relative_to(folder)}"
    assert task_row(lit_tv(by_vector, capfd), "colour", 150) == selected
    lit_tv(f"{test} --model.init_args.test_heads random", capfd)
    runs = (folder / "logs" / "shapes_mtv_colour").glob("version_*")
    newest = max(runs, key=lambda p: int(p.name.split("_")[1]))
    control = logged_scalars(newest)
    assert control["test/random_heads/draws"][-1] == 20, control.keys()
    assert control["test/random_heads/accuracy"][-1] < selected, (control, selected)

    # resume: the fit stopped (SIGTERM) after its first checkpoint, then the README's resume command
    stopped = checkout(tmp_path / "resumed", "configs")
    first = stopped / "logs" / "shapes_mtv_colour" / "checkpoints" / "last.ckpt"
    with (tmp_path / "stopped.log").open("w") as log:  # a file, not a pipe: a full pipe would stall the fit
        console = shlex.split(fit.replace("lit-tv", f"{sys.executable} -m lit_tv", 1))
        interrupted = subprocess.Popen(console, cwd=stopped, env=ENV, stdout=log, stderr=log)
        while not first.exists() and interrupted.poll() is None:
            time.sleep(0.05)
        interrupted.send_signal(signal.SIGTERM)
        status = interrupted.wait(timeout=300)
    assert status == 128 + signal.SIGTERM, (tmp_path / "stopped.log").read_text()[-3000:]
    assert not (stopped / "logs" / "shapes_mtv_colour" / "task_vector.safetensors").exists()
    monkeypatch.chdir(stopped)
    lit_tv(resume, capfd)
    resumed = load_file(stopped / "logs" / "shapes_mtv_colour" / "task_vector.safetensors")
    assert set(resumed) == set(fitted) and all(torch.equal(resumed[name], fitted[name]) for name in fitted)
    monkeypatch.chdir(folder)

    icl_zero = icl.replace("[", "").replace("]", "")
    four_shot = task_row(lit_tv(icl.split(" [")[0], capfd), "all", 150)  # the three tasks, 50 queries each
    assert four_shot - task_row(lit_tv(icl_zero, capfd), "all", 150) >= 0.3
    printed = lit_tv(function_vectors, capfd)
    assert re.search(r"^task\s+accuracy\s+queries\b.*\blayer\b", printed, re.MULTILINE), printed
    assert task_row(printed, "all", 150) >= 0.6
    printed = lit_tv(cross_modal, capfd)
    assert task_row(printed, "all", 150) >= 0.6 and re.search(r"^colour\s+[\d.]+\s+50\s+\d+$", printed, re.M)
    monkeypatch.chdir(checkout(tmp_path / "validated", "configs"))  # a folder of its own: it exports the vectors too
    chosen = re.search(r"layer (\d+) chosen", lit_tv(cross_modal.replace(" test ", " validate ", 1), capfd))
    assert chosen, "validate prints the layer it chose"
    monkeypatch.chdir(folder)

    red, blue = (next(o for o in objects("heldout") if o.colour == colour) for colour in ("red", "blue"))
    for index, obj in enumerate((red, blue)):
        draw(obj, random.Random(index)).save(folder / f"q{index}.png")
    lines = [json.dumps({"images": [f"q{index}.png"], "question": ""}) for index in range(2)]
    (folder / "questions.jsonl").write_text("\n".join(lines) + "\n")
    lit_tv(predict, capfd)
    written = (folder / "logs" / "shapes_mtv_colour" / "answers.jsonl").read_text().splitlines()
    answers = [json.loads(line) for line in written]
    assert [answer["answer"].strip() for answer in answers] == ["red", "blue"], answers


def test_the_many_shot_cli_commands_run_as_written(tmp_path, monkeypatch, capfd):
    """docs/shapes.md: ICL on the many-shot family, then MTV's fit and its test with the page's checkpoint."""
    folder = checkout(tmp_path, "configs")
    monkeypatch.chdir(folder)
    icl = task_row(lit_tv(page_command("docs/shapes.md", "lit-tv test --config"), capfd), "all", 450)
    lit_tv(page_command("docs/shapes.md", "lit-tv fit --config"), capfd)
    checkpoint = "logs/shapes_mtv_many_shot/checkpoints/last.ckpt"
    assert checkpoint in (ROOT / "docs" / "shapes.md").read_text().replace("\n", " ")
    mtv = lit_tv(f"lit-tv test --config configs/shapes/mtv_many_shot.yaml --ckpt_path {checkpoint}", capfd)
    assert task_row(mtv, "colour", 150) > 0 and 0 < icl < 1


def test_the_shapes_report_prints_its_table(tmp_path):
    done = run(page_command("docs/shapes.md", "python -m lit_tv.shapes.report"), tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    shown = (ROOT / "docs" / "shapes.md").read_text().split("```\nsetting", 1)[1].split("```", 1)[0]
    assert [line.split() for line in ("setting" + shown).splitlines()] == [
        line.split() for line in done.stdout.splitlines()[1:]
    ], done.stdout


@pytest.mark.parametrize("start", ["--seed", "--init"], ids=["shapes toy", "many-shot toy"])
def test_the_shapes_train_commands_save_a_loadable_toy(start, tmp_path):
    folder = checkout(tmp_path, "lit_tv")  # --init lit_tv/shapes/checkpoint is relative to the checkout
    command = page_command("docs/shapes.md", f"python -m lit_tv.shapes.train --out DIR {start}")
    command = command.replace("DIR", "toy") + " --steps 2"  # the last --steps wins: 2 steps, not hours
    done = run(command, folder)
    assert done.returncode == 0, done.stderr[-3000:]
    vlm = FrozenVLM.from_pretrained(str(folder / "toy"))
    context = 96 if "--context 96" in command else 1024
    assert vlm.model.config.text_config.max_position_embeddings == context
    assert list((folder / "logs" / "shapes").rglob("events.out.tfevents.*")), "TensorBoard under logs/shapes"


SPEED_RUN = "python benchmarks/speed.py --model llava llava-1.5-small-random --device cpu --batch 1 --new-tokens 10 "


@pytest.mark.parametrize(
    ("options", "ratios", "row"),
    [
        ("--repeats 5 --threads 1 --json", 16, "| REINFORCE peak memory: shared-prefix"),
        ("--repeats 5 --threads 1 --sections afg", 4, "| random-heads control, 2-token answers"),
    ],
    ids=["every section", "the control's and the test loop's rows"],
)
def test_speed_py_measures_both_prompt_lengths_side_by_side(tmp_path, options, ratios, row):
    folder = checkout(tmp_path, "benchmarks", "lit_tv")
    command = page_command("benchmarks/README.md", SPEED_RUN + options)
    done = run(f"{command} --model llava llava-1.5-tiny-random --repeats 1 --new-tokens 2", folder)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((folder / "speed.json").read_text())
    short, long = report["models"]
    assert short["prompt_tokens"]["0-shot"] < 100 < 576 < long["prompt_tokens"]["0-shot"]
    assert report["device"] == "cpu" and len(short["ratios"]) == len(long["ratios"]) == ratios
    printed = next(line for line in done.stdout.splitlines() if line.startswith(row))
    assert printed.count("|") == 4, printed  # one column per model: the two prompt lengths side by side


def test_the_patching_profile_lists_what_every_token_patching_adds(tmp_path):
    """benchmarks/README.md's profile of every-token patching, on the tiny LLaVA (argparse keeps the last --model):
    the patched run's added operators include the head replacement's `where`, and the added time is a small share."""
    folder = checkout(tmp_path, "benchmarks", "lit_tv")
    command = page_command("benchmarks/README.md", "python benchmarks/patching_profile.py")
    done = run(f"{command} --model llava --rounds 1", folder)
    assert done.returncode == 0, done.stderr[-3000:]
    added = {line.split()[0] for line in done.stdout.splitlines() if line.startswith("  aten::")}
    assert "aten::where" in added, done.stdout
    last = done.stdout.strip().splitlines()[-1].split()  # patching adds A ms of T ms: ratio R
    assert last[:2] == ["patching", "adds"] and 0 < float(last[2]) < float(last[5]), done.stdout


def test_torchrun_launches_two_processes(tmp_path):
    """docs/scaling.md's torchrun line on one machine: M = 1 node, N = 2 processes (gloo on CPU)."""
    folder = checkout(tmp_path, "configs")
    command = page_command("docs/scaling.md", "torchrun")
    values = {"M": "1", "N": "2", "R": "0", "HOST": "127.0.0.1", "29500": str(free_port())}
    command = " ".join(values.get(word, word) for word in command.split())
    done = run(command, folder)
    assert done.returncode == 0, done.stderr[-3000:]
    assert task_row(done.stdout, "all", 150) > 0.5, done.stdout  # both processes' queries, counted once


def test_the_sharing_and_lmms_eval_commands_run_as_written(tmp_path, monkeypatch, capfd):
    """README "Sharing a vector", after its fit (here on fewer queries): the test writes its scores, `lit-tv-share`
    (the console script, in a shell) writes the folder and card, the push command (in-process, HfApi's network calls
    recorded) uploads it, and the hub id loads it back from the hub cache offline, scoring as the file did. Then
    README "Scoring a vector in lmms-eval": the harness copy of the test queries, lmms-eval's own vizwiz_vqa_val
    scoring the vector (by hub id, offline) at the accuracy `lit-tv test` printed, and zero-shot at what lit_tv's
    VizWiz DataModule prints on the same table, below the vector."""
    assert '\nlit-tv-share = "lit_tv.cli.share:main"\n' in (ROOT / "pyproject.toml").read_text()  # installed_venv's
    folder = checkout(tmp_path, "configs")
    installed_venv(folder)
    monkeypatch.chdir(folder)
    fit = "lit-tv fit --config configs/shapes/mtv.yaml --data.init_args.support_size 24 --data.init_args.train_size 40"
    lit_tv(fit, capfd)
    with_vector = "lit-tv test --config configs/shapes/mtv.yaml --model.init_args.task_vector"
    by_path = task_row(lit_tv(page_command("README.md", f"{with_vector} logs"), capfd), "colour", 150)
    scores = read_scores(folder / "logs" / "shapes_mtv_colour" / "version_1" / "test_scores.json")
    assert scores["accuracy"]["colour"] == pytest.approx(by_path, abs=5e-4) and scores["queries"]["colour"] == 150

    shell = f"{folder / '.venv' / 'bin'}:{os.environ['PATH']}"  # the installed console script first, as activated
    done = run(page_command("README.md", "lit-tv-share --vector logs"), folder, PATH=shell)
    assert done.returncode == 0, done.stderr[-3000:]
    card = (folder / "shared" / "colour" / "README.md").read_text()
    assert "library_name: lit_tv" in card and f"Accuracy: **{by_path:.3f} ± 0.000" in card and "fewer than 3" in card

    uploads: list[dict] = []
    commit = type("Commit", (), {"commit_url": "https://huggingface.co/user/shapes-mtv-colour/commit/1"})
    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **options: None)
    monkeypatch.setattr(HfApi, "upload_folder", lambda self, **upload: uploads.append(upload) or commit)
    share_main(shlex.split(page_command("README.md", "lit-tv-share --vector shared"))[1:])
    (upload,) = uploads
    assert upload["repo_id"] == "user/shapes-mtv-colour" and Path(upload["folder_path"]) == Path("shared/colour")
    assert "user/shapes-mtv-colour" in (folder / "shared" / "colour" / "README.md").read_text()

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    hub_cache(tmp_path / "hub", "user/shapes-mtv-colour", folder / "shared" / "colour" / "task_vector.safetensors")
    by_id = lit_tv(page_command("README.md", f"{with_vector} user/"), capfd)
    assert task_row(by_id, "colour", 150) == by_path
    scored = read_scores(folder / "logs" / "shapes_mtv_colour" / "version_2" / "test_scores.json")["vectors"]
    assert scored[0]["hub"] == "user/shapes-mtv-colour@main" and COMMIT in scored[0]["path"]

    installed = run(f"bash {ROOT / 'scripts' / 'lmms.sh'} --help", ROOT)  # the extra, into this checkout's .lmms/
    assert installed.returncode == 0, installed.stderr[-3000:]
    for name in ("scripts", "pyproject.toml", ".lmms"):
        (folder / name).symlink_to(ROOT / name)
    offline = {"HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1", "HF_DATASETS_CACHE": str(tmp_path / "ds")}
    copied = run(page_command("README.md", "lit-tv-harness-copy"), folder, **offline)
    assert copied.returncode == 0 and "150 test queries" in copied.stdout, copied.stderr[-3000:]
    harness = {}
    for kind in ("vector=", "max_new_tokens="):
        done = run(page_command("README.md", f"bash scripts/lmms.sh --model lit_tv --model_args {MODEL_ARG}{kind}"),
                   folder, timeout=1800, **offline)  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        harness[kind] = harness_accuracy(done.stdout)
    vizwiz = page_command("README.md", "lit-tv test --config configs/shapes/icl.yaml --data lit_tv")
    zero_shot = task_row(lit_tv(vizwiz, capfd), "all", 150)
    assert harness["vector="] == pytest.approx(by_path, abs=1e-3)
    assert harness["max_new_tokens="] == pytest.approx(zero_shot, abs=1e-3) and zero_shot < by_path
