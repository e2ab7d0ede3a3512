"""lit_tv's vectors in other tools: an answerer any harness can call, and lmms-eval's ``lit_tv`` model."""

from __future__ import annotations

from typing import Any


def lmms_manifest() -> Any:
    """The ``lmms_eval.models`` entry point's payload: lmms-eval's name for the model and where its class is. Here,
    not beside the class: lmms-eval reads its entry points while its own model package is importing, which the
    class's module imports, so the payload must load without it."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return ModelManifest(model_id="lit_tv", simple_class_path="lit_tv.integrations.lmms.LitTVModel")
