"""Old home of ``ResidualTaskVectors`` (now ``lit_tv.methods.residual``): old configs still load."""

import warnings

from lit_tv.methods.residual import ResidualTaskVectors

__all__ = ["ResidualTaskVectors"]

warnings.warn(
    "lit_tv.methods.cross_modal was renamed: write class_path: lit_tv.methods.residual.ResidualTaskVectors",
    FutureWarning,
    stacklevel=2,
)
