"""Episode -> prompt text. Images appear as the model's own placeholder; answers follow each shot."""

from __future__ import annotations

from dataclasses import dataclass
from string import Formatter
from typing import Literal

from transformers import PreTrainedTokenizerBase

from lit_tv.episodes import Episode, Example

SENTENCEPIECE_WORD_START = "\u2581"  # '▁': SentencePiece's mark of a token that starts a word


def word_start_token_id(tokenizer: PreTrainedTokenizerBase, answer: str) -> int:
    """The answer's first token as a word of its own, as the MTV reference scores it in REINFORCE.

    The reference tokenizes the bare answer (SentencePiece: the tokenizer adds the word start itself,
    '▁yes') or, for byte-level BPE models (Qwen), ``" " + answer`` ('Ġyes'), and keeps the first
    non-special token. Which of the two: whether the bare answer already comes out with a word-start piece.
    """
    bare = tokenizer(answer, add_special_tokens=False).input_ids
    if not bare:
        raise ValueError(f"answer {answer!r} has no tokens to score")
    if tokenizer.convert_ids_to_tokens(bare[:1])[0].startswith(SENTENCEPIECE_WORD_START):
        return bare[0]
    return tokenizer(" " + answer, add_special_tokens=False).input_ids[0]


def check_prompt_wrap(wrap: str | None) -> None:
    """A model's conversation form around a plain prompt (``USER: {prompt} ASSISTANT:``) holds the prompt
    exactly once, as ``{prompt}``, and no other field; None: the prompt as it is."""
    if wrap is None:
        return
    try:
        fields = [name for _, name, _, _ in Formatter().parse(wrap) if name is not None]
    except ValueError as error:
        fields = [f"unreadable ({error})"]
    if fields != ["prompt"]:
        raise ValueError(
            f"model.prompt_wrap must hold '{{prompt}}' once and no other field (braces doubled), "
            f"e.g. 'USER: {{prompt}} ASSISTANT:', got {wrap!r}"
        )


@dataclass(frozen=True)
class PromptTemplate:
    """A prompt format as data.

    A shot renders as ``query`` then ``answer``; the prompt is ``instruction``, every shot, then the
    query alone, so the prompt ends exactly where the model must start answering. ``{images}``
    becomes one image placeholder per image of the example; ``{text}`` the example's text.
    With ``chat`` the model's chat template wraps each shot as a user/assistant turn instead.
    ``target`` is the token a method scores as the answer's first: ``continuation`` (how the rendered
    answer continues the prompt) or ``word_start`` (`word_start_token_id`, the MTV reference's target).
    """

    query: str = "{images}{text}"
    answer: str = " {answer}\n"
    instruction: str = ""
    chat: bool = False
    target: Literal["continuation", "word_start"] = "continuation"

    def render_query(self, example: Example, image_placeholder: str) -> str:
        return self.query.format(images=image_placeholder * len(example.images), text=example.text)

    def render_answer(self, example: Example) -> str:
        return self.answer.format(answer=example.answer)

    def render(self, episode: Episode, image_placeholder: str) -> str:
        """Plain-text prompt (no chat template): instruction, answered shots, unanswered query."""
        shots = "".join(self.render_query(shot, image_placeholder) + self.render_answer(shot) for shot in episode.shots)
        return self.instruction + shots + self.render_query(episode.query, image_placeholder)
