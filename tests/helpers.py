"""What many tests share: the repository's paths, the options that size a run to seconds, small models' inputs,
task-vector files, the logs a run wrote, the commands a page shows. Fixtures are in conftest.py."""

from __future__ import annotations

import re
import shutil
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from filelock import FileLock, Timeout
from lightning.pytorch.callbacks import Callback
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from transformers import AutoModelForImageTextToText

from lit_tv.episodes import Episode, Example
from lit_tv.model.loading import BUILTIN_MODELS, VLMOptions
from lit_tv.model.vlm import FrozenVLM
from lit_tv.prompts import PromptTemplate
from lit_tv.shapes.toy import SHAPES_TEMPLATE
from lit_tv.shapes.world import ShapeObject
from lit_tv.testing.zoo import ZOO
from lit_tv.vectors.file import layout_from_config, write_vector_file
from lit_tv.vectors.fingerprint import model_fingerprint
from lit_tv.vectors.kinds import HeadVector, ResidualVector
from lit_tv.vectors.sources import FILENAME

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "configs"
SHAPES_CONFIGS = CONFIGS / "shapes"
MTV_YAML, ICL_YAML = str(SHAPES_CONFIGS / "mtv.yaml"), str(SHAPES_CONFIGS / "icl.yaml")
PREDICT_ARGS = [str(SHAPES_CONFIGS / "predict.yaml"), "--model.init_args.task_vector={valid}"]

# a chat template that names each turn's role, images as <image>
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] }}:"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}<image>{% else %}{{ part['text'] }}"
    "{% endif %}{% endfor %}{% endif %}{{ '\\n' }}{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}"
)


def sized(
    *,
    support: int | None = None,
    train: int | None = None,
    test: int | None = None,
    steps: int | None = None,
    tasks: str | None = None,
) -> list[str]:
    """CLI options that shrink a run on the shapes world (sizes of the data roles, REINFORCE steps, one
    task), without a progress bar; what is not given stays as the config has it."""
    options = {
        "data.init_args.tasks": f"[{tasks}]" if tasks else None,
        "data.init_args.support_size": support,
        "data.init_args.train_size": train,
        "data.init_args.test_size": test,
        "trainer.max_steps": steps,
    }
    return [f"--{key}={value}" for key, value in options.items() if value is not None] + [
        "--trainer.enable_progress_bar=false"
    ]


ZOO_NAMES = sorted(ZOO)
# The architectures whose intervention checks also run in the fast loop (`-m "not slow"`): the six the suite began
# with, each placing images its own way. Every other zoo family runs the same checks in the full suite, so the fast
# loop does not grow as families join (each family's layout check stays in it: a fraction of a second).
FAST_ZOO = ("fuyu", "idefics2", "idefics3", "llama", "llava", "qwen2_vl")


def zoo_params() -> list:
    """ZOO_NAMES to parametrize over, those outside FAST_ZOO marked slow."""
    return [name if name in FAST_ZOO else pytest.param(name, marks=pytest.mark.slow) for name in ZOO_NAMES]


TEMPLATE = PromptTemplate(query="{images}Q: {text}\nA:", answer=" {answer}\n")


def colour_image(colour: str, size: tuple[int, int] = (40, 30)) -> Image.Image:
    return Image.new("RGB", size, colour)


def episodes_for(vlm: FrozenVLM) -> list[Episode]:
    """Three episodes of different lengths (so left padding matters) that this model can take."""
    images_per_shot = 1 if vlm.is_multimodal else 0

    def example(text: str, colour: str, n_images: int) -> Example:
        return Example(text=text, images=tuple(colour_image(colour) for _ in range(n_images)), answers=(colour,))

    query_images = 1 if vlm.is_multimodal else 0
    return [
        Episode(query=example("what colour?", "red", query_images)),
        Episode(
            query=example("and this one, which colour is it?", "blue", query_images),
            shots=(example("colour?", "green", images_per_shot),),
        ),
        Episode(
            query=example("colour?", "yellow", query_images),
            shots=(example("what colour is this?", "red", images_per_shot), example("this?", "blue", images_per_shot)),
        ),
    ]


def mtv_vector_file(
    folder: Path, name: str, drop: str = "", method: str = "mtv", metadata: dict | None = None, **replace: torch.Tensor
) -> Path:
    """A task-vector file for the shapes toy: the tensors MTV exports, with `replace` / `drop` applied, and the
    metadata MTV writes updated with `metadata` (a None value leaves the field out)."""
    layout = layout_from_config(VLMOptions("lit_tv/shapes-toy"))
    shape = (layout["num_layers"], layout["num_heads"])
    tensors = {
        "mean_activations": torch.ones(*shape, layout["head_dim"]),
        "theta": torch.zeros(shape),
        "heads": HeadVector.indices(torch.ones(shape, dtype=torch.bool)),
        **replace,
    }
    tensors.pop(drop, None)
    fingerprint = model_fingerprint(AutoModelForImageTextToText.from_pretrained(BUILTIN_MODELS["lit_tv/shapes-toy"]))
    fields = {
        "kind": "heads",
        "method": method,
        "model": "lit_tv/shapes-toy",
        "layout": layout,
        "fingerprint": fingerprint,
        "tasks": [],
    } | (metadata or {})
    return write_vector_file(folder / name, tensors, {key: value for key, value in fields.items() if value is not None})


COMMIT = "0123456789abcdef0123456789abcdef01234567"  # a hub commit hash, for hub caches written by tests


def hub_cache(cache: Path, repo_id: str, file: Path, revision: str = "main", commit: str = COMMIT) -> None:
    """The layout hf_hub_download reads offline: refs/<revision> holds a commit, snapshots/<commit>/ the file."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / revision).write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(file, repo / "snapshots" / commit / FILENAME)


# sizes of a seconds-long MTV fit and test
TINY_MTV = [*sized(support=8, test=6, steps=4), "--model.init_args.selection_queries=4", "--model.init_args.samples=8"]


def zoo_mtv_run(model_folder: Path, *extra: str) -> list[str]:
    """CLI arguments for a seconds-long MTV run on a zoo model (run with cwd in a temp folder)."""
    model = ["--model.init_args.model.name", str(model_folder)]
    return ["--config", MTV_YAML, *model, *TINY_MTV, "--trainer.log_every_n_steps=1", *extra]


def zoo_cross_modal_run(model_folder: Path, *extra: str) -> list[str]:
    """CLI arguments for a seconds-long cross-modal (residual vectors) run on a zoo model."""
    sizes = ["--data.init_args.support_size=6", "--data.init_args.val_size=6", "--data.init_args.test_size=6"]
    return ["--config", str(SHAPES_CONFIGS / "cross_modal.yaml"), "--model.init_args.model.name", str(model_folder),
            *sizes, *extra]  # fmt: skip


def paper_config_on_zoo(config: str, model_folder: Path) -> list[str]:
    """A paper config (`configs/<config>`) with a zoo model in place of its hub model, in float32: a local folder
    has no hub revision to pin."""
    model = ["--model.init_args.model.name", str(model_folder), "--model.init_args.model.revision=null"]
    return ["--config", str(CONFIGS / config), *model, "--model.init_args.model.dtype=float32"]


class Killed(Exception):
    """Stands for the process being killed."""


class KillAtStep(Callback):
    """Simulates a fit killed mid-REINFORCE."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            raise Killed


def residual_file(path: Path, model, tasks: list[str], hidden: int, head_dim: int) -> Path:
    """A residual vectors file for `model` (ones), recording the shapes world's prompt as a cross-modal export does."""
    layout = {"num_layers": 4, "num_heads": 8, "head_dim": head_dim, "hidden_size": hidden}
    return ResidualVector(
        vectors=torch.ones(len(tasks), 4, hidden),
        layer=1,
        tasks=tasks,
        method="residual",
        layout=layout,
        fingerprint=model_fingerprint(model),
        extra={"prompt": asdict(SHAPES_TEMPLATE), "prompt_wrap": None, "image_placeholder": "<image>"},
    ).save(path)


TASK_WORDS = {"colour", "color", "shape", "position", "task"}


def fingerprint(episodes: list[Episode]) -> list[tuple]:
    """Everything an episode shows a model: texts, answers, tasks and raw image bytes."""
    return [
        (e.task, tuple((x.text, x.answers, tuple(im.tobytes() for im in x.images)) for x in (*e.shots, e.query)))
        for e in episodes
    ]


def text_objects(episodes: list[Episode]) -> list[ShapeObject]:
    return [ShapeObject(*x.text.split()) for e in episodes for x in (*e.shots, e.query) if x.text]


COMMAND_WORDS = (
    "lit-tv", "lit-tv-share", "lit-tv-harness-copy", "python", "bash", "tensorboard", "torchrun", "srun", "source"
)  # fmt: skip


FENCE = re.compile(r"^ *```(\w*)\n(.*?)^ *```", re.MULTILINE | re.DOTALL)


INLINE = re.compile(rf"`((?:{'|'.join(COMMAND_WORDS)}) [^`]*)`")


def is_command(text: str) -> bool:
    return text.split(" ", 1)[0] in COMMAND_WORDS


def shown_commands(text: str) -> list[str]:
    """Commands of one page, whitespace collapsed: shell-block lines (continuations joined, comments cut), then
    inline code starting with a command word. Blocks of other languages and printed output are not commands."""
    commands = []
    for language, body in FENCE.findall(text):
        if language not in ("", "bash", "sh"):
            continue
        for line in body.replace("\\\n", " ").splitlines():
            line = " ".join(line.split(" #", 1)[0].split())
            if is_command(line):
                commands.append(line)
    commands += [" ".join(span.split()) for span in INLINE.findall(FENCE.sub("", text))]
    return commands


def read_events(log_dir: Path | str) -> EventAccumulator:
    """Every event under `log_dir`, loaded: size 0 keeps all of each kind (the default samples images and tensors)."""
    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    events.Reload()
    return events


def logged_scalars(log_dir: Path | str) -> dict[str, list[float]]:
    """Each logged scalar's values in logging order, by tag."""
    events = read_events(log_dir)
    return {tag: [event.value for event in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def held_locks(folder: Path) -> list[Path]:
    """The output locks under `folder` that some run (this process included) still holds."""
    held = []
    for path in folder.rglob("*.lock"):
        lock = FileLock(path)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            held.append(path)
        else:
            lock.release()
    return held
