"""Every number a run logs reaches any Lightning logger, not only TensorBoard: the end-of-test table's columns,
the random-heads control's every draw, the layer search's curve (here through the CSV logger, which runs offline)."""

from __future__ import annotations

import csv
import statistics
from pathlib import Path

import pytest
from helpers import zoo_cross_modal_run, zoo_mtv_run

from lit_tv.cli.command import main

CSV = ["--trainer.logger=lightning.pytorch.loggers.CSVLogger", "--trainer.logger.init_args.save_dir=csv_logs"]


def logged_rows(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Each metric's (step, value) pairs in the order the CSV logger wrote them."""
    (path,) = folder.glob("*/version_*/metrics.csv")
    rows: dict[str, list[tuple[int, float]]] = {}
    with path.open() as file:
        for row in csv.DictReader(file):
            for name, value in row.items():
                if name != "step" and value != "":
                    rows.setdefault(name, []).append((int(row["step"]), float(value)))
    return rows


@pytest.mark.slow
def test_a_csv_logger_gets_the_tables_columns_and_every_random_heads_draw(zoo_folder, workdir):
    run = zoo_mtv_run(zoo_folder("llava"))
    main(["fit", *run])
    checkpoint = workdir / "logs" / "shapes_mtv_colour" / "smoke" / "checkpoints" / "last.ckpt"  # a short fit
    control = ["--model.init_args.test_heads=random", "--model.init_args.random_draws=5"]
    main(["test", *run, *CSV, "--ckpt_path", str(checkpoint), *control])
    rows = logged_rows(workdir / "csv_logs")
    for name in ("test/accuracy", "test/accuracy/colour", "test/queries/colour", "test/heads", "test/heads/colour"):
        assert len(rows[name]) == 1, name
    assert rows["test/heads/colour"][0][1] >= 1
    draws = rows["test/random_heads/draw_accuracy"]
    assert [step for step, _ in draws] == [0, 1, 2, 3, 4]
    values = [value for _, value in draws]
    assert rows["test/random_heads/accuracy"][0][1] == pytest.approx(statistics.mean(values))
    assert rows["test/random_heads/accuracy_min"][0][1] == pytest.approx(min(values))


@pytest.mark.slow
def test_a_csv_logger_gets_the_layer_searchs_accuracy_at_each_layer(zoo_folder, workdir):
    main(["validate", *zoo_cross_modal_run(zoo_folder("llava"), *CSV)])
    rows = logged_rows(workdir / "csv_logs")
    curve = rows["val/accuracy_by_layer"]
    assert [step for step, _ in curve] == [0, 1]  # the zoo LLaVA's two layers
    (best,) = rows["val/best_layer"]
    assert best[1] == max(range(2), key=lambda layer: (curve[layer][1], -layer))
    assert rows["val/best_accuracy"][0][1] == pytest.approx(max(value for _, value in curve))
