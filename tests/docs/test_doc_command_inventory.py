"""Every command README.md, docs/*.md and benchmarks/README.md show has a test that runs it, listed here.

The docs are read for commands (lines of shell code blocks, and inline code that starts like a command);
each must have a row in `INVENTORY` naming its page, the command as the page spells it, the test that runs it
and how. A new command in the docs without a row, a row whose command left the docs, or a row naming a test
that does not exist fails here.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import cache

from helpers import REPO, shown_commands

ROOT = REPO
PAGES = [ROOT / "README.md", ROOT / "benchmarks" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@dataclass(frozen=True)
class Shown:
    """One command a page shows, the test that runs it, and how (as written, or what differs and why)."""

    page: str
    command: str
    test: str | None  # "tests/<file>.py::<test>"; None only for a command that cannot run here (`how` says why)
    how: str


AS_WRITTEN = "as written"
RUNS = "tests/docs/test_doc_commands_as_written.py::"
MAIN_SH = RUNS + "test_main_sh_runs_the_main_job"
MAIN_SH_ARGS = RUNS + "test_main_sh_refuses_a_second_run_and_passes_arguments_to_lit_tv"
TEST_SH = RUNS + "test_test_sh_checks_format_lint_types_then_runs_pytest_with_its_arguments"
ACTIVATE = RUNS + "test_sourcing_the_environment_puts_its_commands_first_on_path"
TENSORBOARD = RUNS + "test_tensorboard_serves_a_runs_logged_scalars"
TABLE = RUNS + "test_the_readme_method_commands_run_as_written"
SPEED = RUNS + "test_speed_py_measures_both_prompt_lengths_side_by_side"
REPORT = RUNS + "test_the_shapes_report_prints_its_table"
TRAIN = RUNS + "test_the_shapes_train_commands_save_a_loadable_toy"
MANY_SHOT_CLI = RUNS + "test_the_many_shot_cli_commands_run_as_written"
TORCHRUN = RUNS + "test_torchrun_launches_two_processes"
SHARE = RUNS + "test_the_sharing_and_lmms_eval_commands_run_as_written"
TEST_SH_HOW = (
    "the script as written with one `-k` test; its other arguments go to pytest unchanged (the whole suite is "
    "CI's command, .ci/run: run inside the suite it would recurse)"
)
MENTION = "a subcommand named in prose; its full commands are the README table's"
TRAIN_HOW = "the page's arguments, then `--steps 2` (argparse keeps the last): the full run takes minutes to hours"

INVENTORY: tuple[Shown, ...] = (
    Shown("README.md", "bash scripts/main.sh", MAIN_SH, AS_WRITTEN + ": the 3-seed main job, its table"),
    Shown("README.md", "bash scripts/test.sh", TEST_SH, TEST_SH_HOW),
    Shown("README.md", "source .venv/bin/activate", ACTIVATE, AS_WRITTEN + ", in a fresh shell with a bare PATH"),
    Shown("README.md", "bash scripts/main.sh fit --config ...", MAIN_SH_ARGS, "with `...` = configs/shapes/vtv.yaml"),
    Shown("README.md", "bash scripts/test.sh -k mtv", TEST_SH, TEST_SH_HOW),
    Shown("README.md", 'bash scripts/test.sh -m "not slow"', TEST_SH, TEST_SH_HOW),
    Shown("README.md", "tensorboard --logdir logs", TENSORBOARD, AS_WRITTEN + " with --port: a free one"),
    Shown("README.md", "lit-tv fit|validate|test|predict --config <yaml>", TABLE, "the synopsis of the table's rows"),
    Shown("README.md", "lit-tv fit --config configs/shapes/mtv.yaml", TABLE, AS_WRITTEN),
    Shown(
        "README.md",
        "lit-tv test --config configs/shapes/mtv.yaml --ckpt_path logs/shapes_mtv_colour/checkpoints/last.ckpt",
        TABLE,
        AS_WRITTEN + ", also with the row's `--model.init_args.task_vector` and `test_heads random`",
    ),
    Shown("README.md", "lit-tv fit --config configs/shapes/mtv.yaml --ckpt_path last", TABLE, AS_WRITTEN),
    Shown("README.md", "lit-tv fit --config configs/shapes/vtv.yaml", MAIN_SH_ARGS, AS_WRITTEN + ", through main.sh"),
    Shown(
        "README.md", "lit-tv test --config configs/shapes/icl.yaml [--data.init_args.test_shots 0]", TABLE, AS_WRITTEN
    ),
    Shown("README.md", "lit-tv test --config configs/shapes/function_vectors.yaml", TABLE, AS_WRITTEN),
    Shown("README.md", "lit-tv test --config configs/shapes/cross_modal.yaml", TABLE, AS_WRITTEN),
    Shown("README.md", "lit-tv validate", TABLE, AS_WRITTEN + " with the cross-modal row's --config"),
    Shown(
        "README.md",
        "lit-tv predict --config configs/shapes/predict.yaml --data.init_args.path questions.jsonl",
        TABLE,
        AS_WRITTEN + ", on a questions.jsonl of the row's form",
    ),
    Shown(
        "README.md",
        "lit-tv test --config configs/shapes/mtv.yaml --model.init_args.task_vector "
        "logs/shapes_mtv_colour/task_vector.safetensors",
        SHARE,
        AS_WRITTEN + ", after the README's fit on fewer queries (24 support, 40 training): its scores file",
    ),
    Shown(
        "README.md",
        "lit-tv-share --vector logs/shapes_mtv_colour/task_vector.safetensors --scores "
        "logs/shapes_mtv_colour/version_1/test_scores.json --folder shared/colour",
        SHARE,
        AS_WRITTEN + ", in a shell, the console script first on PATH: the folder and its card",
    ),
    Shown(
        "README.md",
        "lit-tv-share --vector shared/colour --scores logs/shapes_mtv_colour/version_1/test_scores.json "
        "--folder shared/colour --overwrite --repo_id user/shapes-mtv-colour",
        SHARE,
        AS_WRITTEN + " in-process, HfApi's create_repo and upload_folder recorded (no network): what is uploaded",
    ),
    Shown(
        "README.md",
        "lit-tv test --config configs/shapes/mtv.yaml --model.init_args.task_vector user/shapes-mtv-colour",
        SHARE,
        AS_WRITTEN + ", offline from a hub cache holding the pushed file: the same accuracy as by path",
    ),
    Shown(
        "README.md",
        "lit-tv-harness-copy --config configs/shapes/mtv.yaml --out shapes_colour",
        SHARE,
        AS_WRITTEN + ", in a shell after the sharing commands: 150 queries, the table lmms-eval reads",
    ),
    Shown(
        "README.md",
        "bash scripts/lmms.sh --model lit_tv --model_args pretrained=lit_tv/shapes-toy,vector=user/shapes-mtv-colour "
        "--tasks shapes_colour --batch_size 16",
        SHARE,
        AS_WRITTEN + ", offline from the hub cache the sharing commands left: the accuracy `lit-tv test` printed",
    ),
    Shown(
        "README.md",
        "bash scripts/lmms.sh --model lit_tv --model_args pretrained=lit_tv/shapes-toy,max_new_tokens=1 "
        "--tasks shapes_colour --batch_size 16",
        SHARE,
        AS_WRITTEN + ": the zero-shot accuracy the VizWiz DataModule prints on the same table, below the vector's",
    ),
    Shown(
        "README.md",
        "lit-tv test --config configs/shapes/icl.yaml --data lit_tv.data.vqa.VizWiz --data.init_args.root=null "
        "--data.init_args.train shapes_colour/val.parquet --data.init_args.train_table_split val "
        "--data.init_args.test shapes_colour/val.parquet --data.init_args.test_shots 0",
        SHARE,
        AS_WRITTEN + ": equals lmms-eval's zero-shot number",
    ),
    Shown(
        "docs/runs.md",
        "lit-tv-share --vector FILE [--scores JSON [JSON ...]] --folder DIR [--repo_id USER/NAME] "
        "[--revision BRANCH] [--private] [--overwrite]",
        SHARE,
        "the synopsis; the README's commands are run (tests/vectors/test_sharing.py: each option)",
    ),
    Shown("benchmarks/README.md", "bash scripts/main.sh", MAIN_SH, AS_WRITTEN),
    Shown("benchmarks/README.md", "source .venv/bin/activate", ACTIVATE, AS_WRITTEN),
    Shown(
        "benchmarks/README.md",
        "bash benchmarks/gpu.sh",
        "tests/benchmarks/test_speed_benchmark.py::test_gpu_benchmark_in_cpu_mode_writes_every_ratio_and_peak_memory_at_both_prompt_lengths",
        "its CPU mode (`OUT_DIR --cpu`); the CUDA run needs a GPU, which CI has not",
    ),
    Shown(
        "benchmarks/README.md",
        "python benchmarks/speed.py [--model MODEL [MODEL ...]] [--device cuda --dtype bfloat16] [--threads 1] "
        "[--json out.json]",
        SPEED,
        "the synopsis; the page's full command is run",
    ),
    Shown(
        "benchmarks/README.md",
        "bash benchmarks/gpu.sh OUT_DIR",
        "tests/benchmarks/test_speed_benchmark.py::test_a_given_python_wins_over_the_checkouts_venv",
        "needs CUDA (CI has none): its refusal without CUDA and its interpreter choice are tested",
    ),
    Shown(
        "benchmarks/README.md",
        "bash benchmarks/gpu.sh OUT_DIR --cpu",
        "tests/benchmarks/test_speed_benchmark.py::test_gpu_benchmark_in_cpu_mode_writes_every_ratio_and_peak_memory_at_both_prompt_lengths",
        AS_WRITTEN + ", plus `--model llava llava-1.5-tiny-random` (the 600-token layout too)",
    ),
    Shown(
        "benchmarks/README.md",
        "python benchmarks/speed.py --model llava llava-1.5-small-random --device cpu --batch 1 --new-tokens 10 "
        "--repeats 5 --threads 1 --json speed.json",
        SPEED,
        "the page's arguments, then `--model llava llava-1.5-tiny-random --repeats 1 --new-tokens 2` "
        "(argparse keeps the last): as written it takes 9 min",
    ),
    Shown(
        "benchmarks/README.md",
        "python benchmarks/speed.py --model llava llava-1.5-small-random --device cpu --batch 1 --new-tokens 10 "
        "--repeats 5 --threads 1 --sections afg --json speed.json",
        SPEED,
        "the page's arguments, then `--model llava llava-1.5-tiny-random --repeats 1 --new-tokens 2`: as written it "
        "takes minutes",
    ),
    Shown(
        "benchmarks/README.md",
        "python benchmarks/patching_profile.py --model llava-1.5-small-random --rounds 5 --heads 1",
        RUNS + "test_the_patching_profile_lists_what_every_token_patching_adds",
        "the page's arguments, then `--model llava --rounds 1` (argparse keeps the last)",
    ),
    Shown("docs/architecture.md", "bash scripts/test.sh", TEST_SH, TEST_SH_HOW),
    Shown("docs/architecture.md", 'bash scripts/test.sh -m "not slow"', TEST_SH, TEST_SH_HOW),
    Shown(
        "docs/findings.md",
        "python -m lit_tv.shapes.studies.findings [--out docs/figures] [--logdir logs/findings] [--fast]",
        "tests/shapes/test_findings.py::test_the_findings_command_writes_every_figure_and_its_numbers_the_same_in_any_order",
        "`main(['--fast'])` in-process; the full measurement (minutes per seed) regenerates docs/figures by hand",
    ),
    Shown(
        "docs/findings.md",
        "python -m lit_tv.shapes.studies.findings_page",
        "tests/shapes/test_findings.py::test_the_findings_page_shows_the_committed_numbers",
        "`main(['--check'])`: the page equals what the command writes",
    ),
    Shown(
        "docs/findings.md",
        "python -m lit_tv.shapes.studies.findings",
        "tests/shapes/test_findings.py::test_the_findings_command_writes_every_figure_and_its_numbers_the_same_in_any_order",
        "`main(['--fast', ...])` in-process, as the bracketed synopsis above",
    ),
    Shown("docs/findings.md", "lit-tv fit/test", TABLE, MENTION),
    Shown(
        "docs/findings.md",
        "python -m lit_tv.shapes.studies.many_shot",
        "tests/shapes/test_many_shot.py::test_measurement_command_prints_the_table_over_seeds_the_same_in_any_order",
        "`main([...])` with `--queries 4 --steps 2`: the full run takes minutes",
    ),
    Shown("docs/methods.md", "lit-tv test", TABLE, MENTION),
    Shown(
        "docs/methods.md",
        "python -m lit_tv.testing.zoo llava /tmp/tiny-llava",
        "tests/docs/test_doc_snippets.py::test_the_zoo_command_saves_a_tiny_model",
        AS_WRITTEN + " into a temporary folder instead of /tmp/tiny-llava",
    ),
    Shown(
        "docs/families.md",
        "python -m lit_tv.testing.coverage",
        "tests/docs/test_families_table.py::test_the_families_page_is_up_to_date",
        "the page equals what the command writes",
    ),
    Shown(
        "docs/reproducing.md",
        "python -m lit_tv.paper.reproduction",
        "tests/paper/test_fidelity.py::test_the_reproduction_document_is_up_to_date",
        "the page equals what the command writes",
    ),
    Shown("docs/reproducing.md", "lit-tv test", TABLE, MENTION),
    Shown("docs/runs.md", "lit-tv fit|validate|test|predict", TABLE, MENTION),
    Shown("docs/runs.md", "source .venv/bin/activate", ACTIVATE, AS_WRITTEN),
    Shown("docs/runs.md", "lit-tv test", TABLE, MENTION),
    Shown(
        "docs/runs.md",
        "python -m lit_tv.testing.zoo ARCH DIR",
        "tests/cli/test_overwrite.py::test_the_zoo_refuses_a_folder_that_holds_a_model",
        "with ARCH = llava, the refusal the row describes",
    ),
    Shown("docs/runs.md", "lit-tv fit", TABLE, MENTION),
    Shown("docs/runs.md", "lit-tv predict", TABLE, MENTION),
    Shown(
        "docs/runs.md",
        "lit-tv test --config configs/shapes/mtv.yaml --ckpt_path logs/shapes_mtv_colour/checkpoints/last.ckpt",
        TABLE,
        AS_WRITTEN + ": the printed table",
    ),
    Shown("docs/runs.md", "tensorboard --logdir logs", TENSORBOARD, AS_WRITTEN + " with --port: a free one"),
    Shown(
        "docs/runs.md",
        "lit-tv test --config configs/shapes/icl.yaml --trainer.logger=lightning.pytorch.loggers.CSVLogger",
        RUNS + "test_the_csv_logger_command_writes_the_tables_numbers",
        AS_WRITTEN + ": the CSV file's per-task accuracies equal the printed table's",
    ),
    Shown(
        "docs/scaling.md",
        "srun lit-tv test --config configs/shapes/icl.yaml --trainer.strategy ddp --trainer.devices N "
        "--trainer.num_nodes M",
        None,
        "needs a SLURM cluster, which CI has not: the page shows it as an example of a launcher",
    ),
    Shown(
        "docs/scaling.md",
        "torchrun --nnodes M --nproc-per-node N --node-rank R --master-addr HOST --master-port 29500 -m lit_tv test "
        "--config configs/shapes/icl.yaml --trainer.strategy ddp --trainer.devices N --trainer.num_nodes M",
        TORCHRUN,
        "with M = 1, N = 2, R = 0, HOST = 127.0.0.1 and a free port: two CPU processes on gloo",
    ),
    Shown(
        "docs/shapes.md",
        "python -m lit_tv.shapes.train --out DIR --init lit_tv/shapes/checkpoint --context 96 --max-shots 4 "
        "--text-shots 15 --distractors 0.45 --denoise --uniform-tasks --steps 1500 --lr 1e-3 --seed 0",
        TRAIN,
        TRAIN_HOW,
    ),
    Shown("docs/shapes.md", "source .venv/bin/activate", ACTIVATE, AS_WRITTEN),
    Shown("docs/shapes.md", "bash scripts/main.sh", MAIN_SH, AS_WRITTEN),
    Shown("docs/shapes.md", "python -m lit_tv.shapes.report", REPORT, AS_WRITTEN),
    Shown("docs/shapes.md", "python -m lit_tv.shapes.train --out DIR --seed 0 --steps 3600", TRAIN, TRAIN_HOW),
    Shown(
        "docs/shapes.md",
        "python -m lit_tv.shapes.studies.many_shot [--seeds 0 1 2]",
        "tests/shapes/test_many_shot.py::test_measurement_command_prints_the_table_over_seeds_the_same_in_any_order",
        "`main([...])` with `--queries 4 --steps 2`: the full run takes minutes",
    ),
    Shown(
        "docs/runs.md",
        "python -m lit_tv.shapes.studies.many_shot --seeds 0 1 2",
        "tests/shapes/test_many_shot.py::test_measurement_command_prints_the_table_over_seeds_the_same_in_any_order",
        "`main([...])` with these seeds and `--queries 4 --steps 2`: the full run takes minutes",
    ),
    Shown(
        "docs/runs.md",
        "python -m lit_tv.shapes.studies.findings",
        "tests/shapes/test_findings.py::test_the_findings_command_writes_every_figure_and_its_numbers_the_same_in_any_order",
        "`main(['--fast', ...])` in-process: the full run takes most of an hour",
    ),
    Shown("docs/shapes.md", "lit-tv test --config configs/shapes/icl_many_shot.yaml", MANY_SHOT_CLI, AS_WRITTEN),
    Shown("docs/shapes.md", "lit-tv fit --config configs/shapes/mtv_many_shot.yaml", MANY_SHOT_CLI, AS_WRITTEN),
    Shown("docs/shapes.md", "lit-tv test", MANY_SHOT_CLI, "with the fit's config and `--ckpt_path`, as the page says"),
)


@cache
def _tests_in(path: str) -> set[str]:
    tree = ast.parse((ROOT / path).read_text())
    return {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}


def test_every_command_the_docs_show_has_an_inventory_row():
    shown = {(str(page.relative_to(ROOT)), command) for page in PAGES for command in shown_commands(page.read_text())}
    listed = {(row.page, row.command) for row in INVENTORY}
    assert not shown - listed, f"commands without a row in INVENTORY (add one naming its test): {shown - listed}"
    assert not listed - shown, f"rows whose command no page shows any more: {listed - shown}"


def test_every_row_names_a_test_that_exists_or_says_why_none_can_run():
    for row in INVENTORY:
        assert row.how, row
        if row.test is None:
            assert "which CI has not" in row.how, row
            continue
        path, name = row.test.split("::")
        assert name in _tests_in(path), f"{row.command!r}: no test {row.test}"


def test_commands_are_found_in_blocks_and_inline_and_output_is_not():
    page = (
        "Run `lit-tv fit --config a.yaml` or `--flag`.\n```bash\nbash x.sh \\\n  --y 1   # why\n```\n"
        "```\nshapes world, accuracy\n```\n```python\nimport lit_tv\n```\n"
    )
    assert shown_commands(page) == ["bash x.sh --y 1", "lit-tv fit --config a.yaml"]
