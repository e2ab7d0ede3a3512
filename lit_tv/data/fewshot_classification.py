"""Old home of the 2-way DataModules (now ``lit_tv.data.two_way``): configs written before the rename still load."""

import warnings

from lit_tv.data.two_way import CUB200, Flowers102, TwoWayClassification

__all__ = ["CUB200", "Flowers102", "TwoWayClassification"]

warnings.warn(
    "lit_tv.data.fewshot_classification was renamed: write class_path: lit_tv.data.two_way.<class>",
    FutureWarning,
    stacklevel=2,
)
