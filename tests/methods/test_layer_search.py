"""The cross-modal layer grid search: the paper's first-argmax rule, answers scored as the test scores them."""

from __future__ import annotations

import pytest
import torch
from helpers import CONFIGS

from lit_tv.cli.app import build_cli
from lit_tv.methods.residual import ResidualTaskVectors

SHAPES_CROSS_MODAL = CONFIGS / "shapes" / "cross_modal.yaml"


def test_the_layer_is_the_first_argmax_of_the_accuracy_averaged_over_groups():
    method = ResidualTaskVectors(layer=None)
    # group 0: 10 queries, best at layer 1; group 1: 2 queries, best at layer 2. Pooled hits would pick layer 1
    # (8 + 0 = 8 vs 5 + 2 = 7); the mean of the two accuracies picks layer 2 (0.4 vs 0.75).
    hits = torch.tensor([[0.0, 8.0, 5.0, 5.0], [0.0, 0.0, 2.0, 2.0]])
    method._choose_layer(hits, torch.tensor([10.0, 2.0]))
    assert method.layer == 2  # and not 3: ties go to the first layer


@pytest.mark.slow
def test_the_layer_search_scores_answers_as_the_test_does(workdir):
    cli = build_cli(
        SHAPES_CROSS_MODAL,
        [
            "--config",
            str(SHAPES_CROSS_MODAL),
            "--data.init_args.support_size",
            "30",
            "--data.init_args.val_size",
            "30",
            "--model.init_args.layer",
            "1",
        ],
    )
    cli.trainer.validate(cli.model, datamodule=cli.datamodule)
    batch = cli.datamodule.val_queries()
    scores = cli.model.layer_scores(batch)
    metric = cli.datamodule.metric()
    for layer in range(scores.shape[1]):
        cli.model.layer = layer
        expected = [
            metric.score(answer, episode.query.answers)
            for answer, episode in zip(cli.model.answer(batch), batch, strict=True)
        ]
        assert scores[:, layer].tolist() == expected
    assert 0 < scores.sum() < scores.numel()  # the rule really separates hits from misses here
