"""The chat option: each example a chat turn, and the cross-modal paper's ablation naming the roles."""

from __future__ import annotations

from benchmark_fixtures import write_cross_modal
from helpers import CHAT_TEMPLATE

from lit_tv.data.cross_modal import CrossModalTasks
from lit_tv.episodes import Episode, Example


def test_the_chat_option_renders_each_example_as_a_chat_turn(tmp_path, zoo_folder):
    from lit_tv.model.vlm import FrozenVLM

    vlm = FrozenVLM.from_pretrained(zoo_folder("llava"))
    vlm.processor.chat_template = CHAT_TEMPLATE
    root = write_cross_modal(tmp_path, tasks=("food-color",))
    data = CrossModalTasks(str(root), tasks=["food-color"], test_shots=1, chat="template")
    data.setup("test")
    episode = data.test_queries()[0]
    shot = episode.shots[0]
    assert vlm.render(episode, data.template) == (
        f"user:Q:{shot.text}\nA:\nassistant:{shot.answer}\nuser:<image>Q:\nA:\nassistant:"
    )


def test_the_paper_s_chat_ablation_names_the_roles_in_place_of_q_and_a(tmp_path):
    root = write_cross_modal(tmp_path, tasks=("food-color",))
    template = CrossModalTasks(str(root), tasks=["food-color"], chat="roles").template
    shots = (Example("banana", (), ("yellow",)),)
    text = template.render(Episode(query=Example("", ("image.jpg",)), shots=shots), "<image>")
    assert text == "User:banana\nAssistant:yellow\n\nUser:<image>\nAssistant:"
