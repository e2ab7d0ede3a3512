"""MTV's random-heads control is a seeded distribution of head sets, and a fit's REINFORCE samples depend on the
seed the run starts with, not on the global state when the module was built."""

from __future__ import annotations

import logging

import lightning as L
import pytest
import torch
from helpers import SHAPES_CONFIGS, TEMPLATE, ZOO_NAMES, episodes_for, logged_scalars, zoo_mtv_run
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer, DynamicSlidingWindowLayer

from lit_tv.cli.app import build_cli
from lit_tv.cli.command import main
from lit_tv.interventions.hooks import replace_heads
from lit_tv.interventions.prefix_attention import HANDOFF
from lit_tv.methods.random_heads import RandomHeadsControl, answers_over_one_prefix, random_head_sets
from lit_tv.metrics import ExactMatch
from lit_tv.spread import by_seed, format_rank, format_spread, on_seeds, rank_among, spread


def test_random_head_sets_keep_the_count_and_differ_per_draw_seed_and_task():
    selected = torch.zeros(4, 8, dtype=torch.bool)
    selected[0, :5] = True
    draws = random_head_sets(selected, 10, seed=0, tasks=["colour"])
    assert all(int(mask.sum()) == 5 and mask.shape == selected.shape for mask in draws)
    assert len({tuple(mask.flatten().tolist()) for mask in draws}) == 10
    same = random_head_sets(selected, 10, seed=0, tasks=["colour"])
    assert all(torch.equal(a, b) for a, b in zip(draws, same, strict=True))
    for other in (random_head_sets(selected, 10, 1, ["colour"]), random_head_sets(selected, 10, 0, ["shape"])):
        assert not torch.equal(torch.stack(draws), torch.stack(other))


def test_spread_and_rank_say_what_the_values_say():
    assert spread([0.5, 0.7, 0.9]) == pytest.approx({"mean": 0.7, "std": 0.2, "min": 0.5, "max": 0.9, "n": 3})
    assert format_spread([0.5, 0.7, 0.9]) == "0.700 ± 0.200 (0.500–0.900)"
    rank = rank_among(0.8, [0.5, 0.8, 0.9, 0.1])
    assert rank == {"above": 2, "tied": 1, "draws": 4}
    assert format_rank(rank) == "above 2 of 4 (1 tied)"
    with pytest.raises(ValueError, match="at least one value"):
        spread([])
    assert on_seeds([True, True, True]) == "every seed" and on_seeds([True, False, True]) == "2 of 3 seeds"


def test_per_seed_results_merge_into_one_list_per_number_in_the_seeds_order():
    runs = [{"a": {"1": 0.5, "2": 0.6}, "draws": [0.1, 0.2]}, {"a": {"1": 0.7, "2": 0.8}, "draws": [0.3, 0.4]}]
    assert by_seed(runs) == {"a": {"1": [0.5, 0.7], "2": [0.6, 0.8]}, "draws": [[0.1, 0.2], [0.3, 0.4]]}
    with pytest.raises(ValueError, match="at least one run"):
        by_seed([])


@pytest.mark.slow
@pytest.mark.parametrize("new_tokens", [1, 3])
def test_the_control_logs_its_draws_beside_the_selected_heads_and_prints_the_rank(
    zoo_folder, capsys, caplog, workdir, new_tokens
):
    """With one new token or more, the draws are answered over each query's one prefix (checked against generate
    on the first batch: no fallback)."""
    run = zoo_mtv_run(zoo_folder("llava"))
    main(["fit", *run])
    checkpoint = workdir / "logs" / "shapes_mtv_colour" / "smoke" / "checkpoints" / "last.ckpt"  # a short fit
    test = ["--ckpt_path", str(checkpoint), "--model.init_args.test_heads", "random"]
    with caplog.at_level(logging.INFO, logger="lit_tv.methods.random_heads"):
        main(["test", *run, *test, f"--model.init_args.max_new_tokens={new_tokens}"])
    assert "answers over one prefix match generate's" in caplog.text
    assert "answered by generate instead" not in caplog.text
    scalars = logged_scalars(workdir / "logs" / "shapes_mtv_colour" / "version_1")
    control = {key: values[0] for key, values in scalars.items() if key.startswith("test/random_heads/")}
    assert control["test/random_heads/draws"] == 20
    assert control["test/random_heads/accuracy_min"] <= control["test/random_heads/accuracy"]
    assert control["test/random_heads/accuracy"] <= control["test/random_heads/accuracy_max"]
    assert 0 <= control["test/random_heads/draws_below_selected"] + control["test/random_heads/draws_tied"] <= 20
    assert "test/accuracy" in scalars  # the selected heads keep their own tag
    assert "random heads (20 draws of " in capsys.readouterr().out


@pytest.mark.slow
def test_a_fit_is_seeded_when_it_starts_not_when_the_module_is_built(zoo_folder, workdir):
    """Two modules built under different global seeds, each fitted after `seed_everything(0)`, fit alike (the
    first fit in a process used to take whatever seed was global when MTV was built)."""
    thetas = []
    for built_under in (1, 2):
        cli = build_cli(
            SHAPES_CONFIGS / "mtv.yaml",
            zoo_mtv_run(
                zoo_folder("llava"),
                f"--seed_everything={built_under}",
                "--model.init_args.export=null",
                "--trainer.enable_checkpointing=false",
                "--trainer.callbacks=[{class_path: lit_tv.callbacks.mean_activations.MeanActivations}]",
            ),
        )
        L.seed_everything(0, verbose=False)
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
        thetas.append(cli.model.theta.detach().clone())
    assert torch.equal(thetas[0], thetas[1])


@pytest.mark.slow
@pytest.mark.parametrize("name", ZOO_NAMES)
def test_answers_over_one_prefix_equal_a_generate_per_head_set(zoo_vlm, name, monkeypatch):
    """The control's fast path (each query's prefix once, one row per head set) answers as a generate per set: one
    new token over the uncached prefix, 3 and 10 generated together over its cache, patched at the prompt or at
    every token; a set's answers sit in its own place (two sets swapped would differ)."""
    vlm = zoo_vlm(name)
    layout = vlm.layout
    values = 10 * torch.randn(
        layout.num_layers, layout.num_heads, layout.head_dim, generator=torch.Generator().manual_seed(1)
    )
    selected = torch.zeros(layout.num_layers, layout.num_heads, dtype=torch.bool)
    selected.view(-1)[: max(2, selected.numel() // 3)] = True
    head_sets = random_head_sets(selected, 5, seed=0, tasks=["colour"])
    episodes = episodes_for(vlm)
    shared = (1, "prompt") if vlm.prompt_attends_both_ways else (10, "every_token")  # the swap's, below
    by_run = {}
    for new_tokens, policy in ((1, "prompt"), (3, "prompt"), (10, "prompt"), (10, "every_token")):
        generated = by_run[new_tokens, policy] = []
        for heads in head_sets:
            with replace_heads(vlm, values, heads, policy=policy):
                inputs = vlm.build_inputs(episodes, TEMPLATE, new_tokens)
                generated.append(vlm.generate(inputs, max_new_tokens=new_tokens))
        if new_tokens > 1 and vlm.prompt_attends_both_ways:  # PaliGemma: no prefix to share; the control falls back
            with pytest.raises(ValueError, match="prompt attends both ways"):
                answers_over_one_prefix(vlm, TEMPLATE, episodes, values, head_sets, new_tokens, policy)
            continue
        taken = _prefix_takes(monkeypatch)
        over_prefix = answers_over_one_prefix(vlm, TEMPLATE, episodes, values, head_sets, new_tokens, policy)
        assert over_prefix == generated, (new_tokens, policy)
        # a cache layer that holds the whole prefix is read once by the rows (not copied per row), each step
        holding = _layers_holding(vlm, int(vlm.build_inputs(episodes[:1], TEMPLATE)["input_ids"].shape[1]) - 1)
        assert len(taken) >= new_tokens * holding if new_tokens > 1 else not taken, (taken, holding)
        assert len({tuple(answers) for answers in generated}) > 1, "the head sets should answer differently"
        if new_tokens > 1:  # answers longer than one token: the cache's rows really decode on
            assert max(len(vlm.tokenizer(answer).input_ids) for answers in generated for answer in answers) > 1
    # two sets that answer differently, swapped: their answers swap too (a row answers for its own set)
    generated = by_run[shared]
    i, j = next((i, j) for i in range(5) for j in range(i) if generated[i] != generated[j])
    swapped = [*head_sets]
    swapped[i], swapped[j] = head_sets[j], head_sets[i]
    answers = answers_over_one_prefix(vlm, TEMPLATE, episodes, values, swapped, *shared)
    assert (answers[i], answers[j]) == (generated[j], generated[i]) and answers != generated


def _layers_holding(vlm, prefix: int) -> int:
    """How many of the decoder's cache layers hold every token of a `prefix`-token prompt prefix: plain ones, and
    sliding windows wider than it (a window keeps its last `sliding_window - 1` tokens)."""
    layers = DynamicCache(config=vlm.model.config).layers
    return sum(
        type(layer) is DynamicLayer or (type(layer) is DynamicSlidingWindowLayer and prefix < layer.sliding_window)
        for index, layer in enumerate(layers)
        if index not in vlm.layout.cross_attention_layers
    )


@pytest.mark.slow
def test_a_sliding_window_wider_than_the_prompt_shares_its_prefix_too(zoo_vlm, monkeypatch):
    """Gemma 3 with its window widened past the prompt: its sliding layers hold the whole prefix, so every layer
    is read once by the rows, and the answers are a generate's per head set (the mask keeps the window)."""
    vlm = zoo_vlm("gemma3")
    monkeypatch.setattr(vlm.model.config.get_text_config(), "sliding_window", 4096)
    layout = vlm.layout
    generator = torch.Generator().manual_seed(2)
    values = 10 * torch.randn(layout.num_layers, layout.num_heads, layout.head_dim, generator=generator)
    selected = torch.zeros(layout.num_layers, layout.num_heads, dtype=torch.bool)
    selected.view(-1)[: max(2, selected.numel() // 3)] = True
    head_sets = random_head_sets(selected, 4, seed=1, tasks=["colour"])
    episodes = episodes_for(vlm)
    generated = []
    for heads in head_sets:
        with replace_heads(vlm, values, heads, policy="every_token"):
            generated.append(vlm.generate(vlm.build_inputs(episodes, TEMPLATE, 5), max_new_tokens=5))
    taken = _prefix_takes(monkeypatch)
    assert answers_over_one_prefix(vlm, TEMPLATE, episodes, values, head_sets, 5, "every_token") == generated
    assert len({tuple(answers) for answers in generated}) > 1
    layers = len(DynamicCache(config=vlm.model.config).layers)
    assert _layers_holding(vlm, 10**3) == layers and len(taken) >= 5 * layers, taken


def _prefix_takes(monkeypatch) -> list[int]:
    """The prefix lengths attention reads from the shared-prefix handoff, one per layer and step, from now on."""
    taken: list[int] = []
    take = HANDOFF.take

    def counted() -> tuple[torch.Tensor, torch.Tensor] | None:
        prefix = take()
        if prefix is not None:
            taken.append(prefix[0].shape[-2])
        return prefix

    monkeypatch.setattr(HANDOFF, "take", counted)
    return taken


def _control(draws: int = 3) -> RandomHeadsControl:
    selected = torch.zeros(2, 4, dtype=torch.bool)
    selected[0, :2] = True
    return RandomHeadsControl(selected, draws, seed=0, tasks=["colour"], make_metric=ExactMatch)


def test_the_control_answers_over_one_prefix_once_checked_against_generate():
    control, generated = _control(), []

    def answer(heads: torch.Tensor) -> list[str]:
        generated.append(heads)
        return ["red", "blue"]

    for _ in range(2):
        control.update(answer, [("red",), ("red",)], lambda sets: [["red", "blue"]] * len(sets))
    assert control.shares_prefix is True and len(generated) == 1, "generate only for the first batch's check"
    assert control.accuracies() == [0.5, 0.5, 0.5]


def test_the_control_falls_back_to_generate_when_the_answers_over_one_prefix_differ(caplog):
    control, over_prefix_calls = _control(), []

    def over_prefix(sets: list[torch.Tensor]) -> list[list[str]]:
        over_prefix_calls.append(len(sets))
        return [["blue", "blue"]] * len(sets)

    for _ in range(2):
        control.update(lambda heads: ["red", "blue"], [("red",), ("red",)], over_prefix)
    assert control.shares_prefix is False and over_prefix_calls == [3], "not tried again after a mismatch"
    assert control.accuracies() == [0.5, 0.5, 0.5], "generate's answers are the ones scored"
    assert "answered by generate instead" in caplog.text


def test_the_control_falls_back_to_generate_when_answering_over_one_prefix_fails_on_the_first_batch(caplog):
    control, answered = _control(), []

    def over_prefix(sets: list[torch.Tensor]) -> list[list[str]]:
        raise TypeError("forward() got an unexpected keyword argument 'cache'")

    def answer(heads: torch.Tensor) -> list[str]:
        answered.append(heads)
        return ["red", "blue"]

    control.update(answer, [("red",), ("red",)], over_prefix)
    assert control.shares_prefix is False and len(answered) == 3, "every set answered by generate"
    assert control.accuracies() == [0.5, 0.5, 0.5]
    assert "answering over one prefix failed (forward() got an unexpected keyword argument 'cache')" in caplog.text
