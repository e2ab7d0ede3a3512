"""lit_tv: training-free adaptation of frozen vision-language models with task vectors.

The public face is lazy (PEP 562): `import lit_tv` loads no torch; each name below is imported on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "FrozenVLM": "lit_tv.model.vlm",
    "VLMOptions": "lit_tv.model.loading",
    "HeadVector": "lit_tv.vectors.kinds",
    "ResidualVector": "lit_tv.vectors.kinds",
    "load_vector": "lit_tv.vectors.kinds",
    "apply_task_vector": "lit_tv.vectors.apply",
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'lit_tv' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), "load" if name == "load_vector" else name)
