"""pve.onnx.export: being written (placeholder for the session's work in progress)."""
from typing import Any


def export(model: Any, example_input: Any, path: Any, **kwargs: Any) -> None:
    raise NotImplementedError("pve.onnx.export is not written yet")
