"""Data pipeline: datasets, loaders and transforms (the loader comes with the main-job issue)."""

from pyvision_engine.data._augment import uint8_hwc_to_normalized_chw

__all__ = ["uint8_hwc_to_normalized_chw"]
