"""The zoo families' chat formats as data, each written out as a short Jinja chat template of lit_tv's own.

A real checkpoint of these families ships a chat template; its format (turn markers, the image placeholder its
processor expands, the prompt that opens the model's turn) is a fact about the family, so the tiny models carry
one too and `chat: template` runs are tested on every family that has one. PaliGemma (a prefix LM prompted
plainly), Fuyu and the plain Llama text model ship none and get none.
"""

from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass(frozen=True)
class ChatFormat:
    """One family's conversation layout.

    user / assistant: what comes before and after the content of that role's turn.
    image: written per image in a turn, before its text: the placeholder the processor expands, with the
        family's markers around it where the processor does not add them.
    generation: what `add_generation_prompt` appends, the opening of the model's turn.
    begin: written once before the first turn (a default system turn, GLM's prefix); `bos`: the tokenizer's
        BOS token first.
    tokens: the family's special tokens the format uses beyond the zoo's shared ones, which its tiny tokenizer
        must hold as single tokens.
    """

    user: tuple[str, str]
    assistant: tuple[str, str]
    image: str
    generation: str
    begin: str = ""
    bos: bool = False
    tokens: tuple[str, ...] = ()

    def jinja(self) -> str:
        """The chat template: literals as Jinja string expressions, so the template engine's whitespace trimming
        around block tags cannot eat a newline of the format."""
        (user_open, user_close), (assistant_open, assistant_close) = self.user, self.assistant
        content = (
            "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
            "{% for part in message['content'] %}"
            f"{{% if part['type'] == 'image' %}}{_say(self.image)}"
            "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}"
        )
        return (
            ("{{ bos_token }}" if self.bos else "")
            + _say(self.begin)
            + "{% for message in messages %}"
            + f"{{% if message['role'] == 'user' %}}{_say(user_open)}"
            + f"{{% elif message['role'] == 'assistant' %}}{_say(assistant_open)}"
            + "{% else %}{{ raise_exception('this chat format has user and assistant turns only, got ' "
            + "+ message['role']) }}{% endif %}"
            + content
            + f"{{% if message['role'] == 'user' %}}{_say(user_close)}{{% else %}}{_say(assistant_close)}{{% endif %}}"
            + "{% endfor %}"
            + f"{{% if add_generation_prompt %}}{_say(self.generation)}{{% endif %}}"
        )


def _say(text: str) -> str:
    """`text` as a Jinja expression that outputs it verbatim (a JSON string is a valid Jinja string literal)."""
    return "{{ " + json.dumps(text) + " }}" if text else ""


CHATML = ("<|im_start|>", "<|im_end|>")
# Qwen-style turns: <|im_start|>role, newline, content, <|im_end|>, newline
IM_USER, IM_ASSISTANT = ("<|im_start|>user\n", "<|im_end|>\n"), ("<|im_start|>assistant\n", "<|im_end|>\n")
QWEN_IMAGE = "<|vision_start|><|image_pad|><|vision_end|>"
QWEN2_VL = ChatFormat(
    user=IM_USER,
    assistant=IM_ASSISTANT,
    image=QWEN_IMAGE,
    generation="<|im_start|>assistant\n",
    begin="<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n",  # Qwen2-VL's and 2.5-VL's default
    tokens=CHATML,
)
QWEN3_VL = ChatFormat(
    user=IM_USER, assistant=IM_ASSISTANT, image=QWEN_IMAGE, generation="<|im_start|>assistant\n", tokens=CHATML
)
# GLM-4.1V / GLM-4.5V: after "[gMASK]<sop>", role tokens open each turn (nothing closes one)
GLM4V = ChatFormat(
    user=("<|user|>\n", ""),
    assistant=("<|assistant|>\n", ""),
    image="<|begin_of_image|><|image|><|end_of_image|>",
    generation="<|assistant|>\n",
    begin="[gMASK]<sop>",
    tokens=("[gMASK]", "<sop>", "<|user|>", "<|assistant|>"),
)
# Idefics2 / Idefics3 / SmolVLM: "User:" and "Assistant:" turns, each ended by <end_of_utterance> and a newline
UTTERANCE_USER, UTTERANCE_ASSISTANT = ("User:", "<end_of_utterance>\n"), ("Assistant: ", "<end_of_utterance>\n")
CHAT_FORMATS: dict[str, ChatFormat] = {
    # LLaVA-1.5 (Vicuna v1): "USER: <image>\n... ASSISTANT:"
    "llava": ChatFormat(
        user=("USER: ", " "), assistant=("ASSISTANT: ", "</s>"), image="<image>\n", generation="ASSISTANT:"
    ),
    # LLaVA-NeXT on Mistral-7B-Instruct: "[INST] <image>\n... [/INST]", the answer ended by EOS
    "llava_next": ChatFormat(user=("[INST] ", " [/INST]"), assistant=(" ", "</s>"), image="<image>\n", generation=""),
    # LLaVA-OneVision (Qwen2): "<|im_start|>user <image>\n...<|im_end|>"
    "llava_onevision": ChatFormat(
        user=("<|im_start|>user ", "<|im_end|>\n"),
        assistant=("<|im_start|>assistant\n", "<|im_end|>\n"),
        image="<image>\n",
        generation="<|im_start|>assistant\n",
        tokens=CHATML,
    ),
    # Aya Vision (Cohere): turn tokens around each role's token
    "aya_vision": ChatFormat(
        user=("<|START_OF_TURN_TOKEN|><|USER_TOKEN|>", "<|END_OF_TURN_TOKEN|>"),
        assistant=("<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>", "<|END_OF_TURN_TOKEN|>"),
        image="<image>",
        generation="<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>",
        bos=True,
        tokens=("<|START_OF_TURN_TOKEN|>", "<|END_OF_TURN_TOKEN|>", "<|USER_TOKEN|>", "<|CHATBOT_TOKEN|>"),
    ),
    # InternVL3 (-hf): Qwen-style turns, each image "<IMG_CONTEXT>" on a line of its own
    "internvl": ChatFormat(
        user=IM_USER,
        assistant=IM_ASSISTANT,
        image="<IMG_CONTEXT>\n",
        generation="<|im_start|>assistant\n",
        tokens=CHATML,
    ),
    "idefics2": ChatFormat(
        user=UTTERANCE_USER, assistant=UTTERANCE_ASSISTANT, image="<image>", generation="Assistant:"
    ),
    "idefics3": ChatFormat(
        user=UTTERANCE_USER, assistant=UTTERANCE_ASSISTANT, image="<image>", generation="Assistant:", bos=True
    ),
    "smolvlm": ChatFormat(
        user=UTTERANCE_USER,
        assistant=UTTERANCE_ASSISTANT,
        image="<image>",
        generation="Assistant:",
        begin="<|im_start|>",
        tokens=CHATML[:1],
    ),
    # Gemma 3: the model's turn is "model"; the processor expands <start_of_image>
    "gemma3": ChatFormat(
        user=("<start_of_turn>user\n", "<end_of_turn>\n"),
        assistant=("<start_of_turn>model\n", "<end_of_turn>\n"),
        image="<start_of_image>",
        generation="<start_of_turn>model\n",
        bos=True,
        tokens=("<start_of_turn>", "<end_of_turn>"),
    ),
    # Gemma 4: <|turn>role ... <turn|> turns, the model's turn "model"; the processor expands <|image|>
    "gemma4": ChatFormat(
        user=("<|turn>user\n", "<turn|>\n"),
        assistant=("<|turn>model\n", "<turn|>\n"),
        image="<|image|>",
        generation="<|turn>model\n",
        bos=True,
        tokens=("<|turn>", "<turn|>"),
    ),
    "qwen2_vl": QWEN2_VL,
    "qwen2_5_vl": QWEN2_VL,
    "qwen3_vl": QWEN3_VL,
    "qwen3_vl_moe": QWEN3_VL,
    "glm4v": GLM4V,
    "glm4v_moe": GLM4V,
    # Llama 3.2 Vision: Llama 3's header tokens, one <|image|> token per image
    "mllama": ChatFormat(
        user=("<|start_header_id|>user<|end_header_id|>\n\n", "<|eot_id|>"),
        assistant=("<|start_header_id|>assistant<|end_header_id|>\n\n", "<|eot_id|>"),
        image="<|image|>",
        generation="<|start_header_id|>assistant<|end_header_id|>\n\n",
        bos=True,
        tokens=("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"),
    ),
}
