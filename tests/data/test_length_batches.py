"""The test loop's batches: queries of similar prompt lengths together (little padding), every query once, and a
batch stops generating once all its rows ended."""

from __future__ import annotations

from helpers import TEMPLATE, colour_image, episodes_for

from lit_tv.data.loaders import GlobalBatchSampler, by_length
from lit_tv.episodes import Episode, Example


def _episode(text: str, images: int = 0, shots: int = 0) -> Episode:
    example = Example(text, tuple(colour_image("red") for _ in range(images)), ("red",))
    return Episode(query=example, shots=tuple(example for _ in range(shots)))


def test_by_length_puts_images_first_then_characters_and_keeps_ties_in_order():
    episodes = [_episode("a long question here", 1), _episode("short"), _episode("tie"), _episode("one", 1, 1)]
    episodes.append(_episode("abc"))  # as long as "tie": stays after it
    assert by_length(episodes) == [2, 4, 1, 0, 3]
    assert by_length([_episode("same") for _ in range(4)]) == [0, 1, 2, 3], "equal prompts keep the drawn order"


def test_eval_batches_follow_the_length_order_split_over_ranks_and_training_still_shuffles():
    order = [3, 0, 4, 1, 2, 5]
    one = list(GlobalBatchSampler(6, 4, 0, 1, seed=0, training=False, order=order))
    assert one == order
    ranks = [list(GlobalBatchSampler(6, 4, rank, 2, seed=0, training=False, order=order)) for rank in (0, 1)]
    assert ranks == [[3, 0, 2], [4, 1, 5]], "each rank its slice of every global batch of the given order"
    shuffled = list(GlobalBatchSampler(6, 2, 0, 1, seed=0, training=True, order=order))
    assert sorted(shuffled) == list(range(6)) and shuffled != order


def test_a_batch_stops_generating_once_every_row_ended(zoo_vlm):
    """No decoding step after every row gave end-of-sequence: the rows' second tokens made the end tokens, the
    generation of 10 tokens takes the prefill and one step (min_new_tokens=1 keeps the first token)."""
    vlm = zoo_vlm("llava")
    inputs = vlm.build_inputs(episodes_for(vlm), TEMPLATE, 10)
    ids = vlm.model.generate(**inputs, max_new_tokens=2, min_new_tokens=2, do_sample=False)[:, -2:]
    first, second = ids[:, 0].tolist(), ids[:, 1].tolist()
    assert not set(first) & set(second), "a first token among the end tokens would end a row early"
    calls = []
    handle = vlm.model.get_decoder().register_forward_pre_hook(lambda module, args: calls.append(1))
    config = vlm.model.generation_config
    eos, config.eos_token_id = config.eos_token_id, sorted(set(second))
    try:
        answers = vlm.generate(inputs, max_new_tokens=10)
    finally:
        config.eos_token_id = eos
        handle.remove()
    assert len(calls) == 2, f"{len(calls)} decoder calls for answers that all ended after their first token"
    assert answers == vlm._decode_answers(ids), "each row: its first token and the end token it stopped at"
