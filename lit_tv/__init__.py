"""lit_tv: training-free adaptation of frozen vision-language models with task vectors."""

from __future__ import annotations

__version__ = "0.1.0"


def __getattr__(name: str):
    """`lit_tv.apply_task_vector`, imported on first use: `import lit_tv` stays light (no torch)."""
    if name == "apply_task_vector":
        from lit_tv.apply import apply_task_vector

        return apply_task_vector
    raise AttributeError(f"module 'lit_tv' has no attribute {name!r}")
