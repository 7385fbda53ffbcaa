"""The weights / progress / pretrained arguments of torchvision's model builders.

pyvision_engine ships no pretrained weights and downloads nothing, so ``weights=None``
(torchvision's default) is the only value a builder takes; ``progress`` is accepted and
unused, and the deprecated ``pretrained=False`` means ``weights=None`` (with torchvision's
warning). Any request for weights is a ValueError that says how to load torchvision's."""

from __future__ import annotations

import warnings
from typing import Any, Dict


def check_no_weights(builder: str, weights: Any, progress: Any, kwargs: Dict[str, Any]) -> None:
    """Validate a builder's weights arguments; removes a ``pretrained`` entry from ``kwargs``."""
    if "pretrained" in kwargs:
        pretrained = kwargs.pop("pretrained")
        warnings.warn(f"{builder}: the parameter 'pretrained' is deprecated (as in torchvision), "
                      "please use 'weights' instead", UserWarning, stacklevel=3)
        if pretrained:
            weights = "DEFAULT" if weights is None else weights
    if not isinstance(progress, bool):
        raise TypeError(f"{builder}: progress must be a bool, got {type(progress).__name__}")
    if weights is not None:
        raise ValueError(
            f"{builder}: weights={weights!r}, but pyvision_engine ships no pretrained weights and "
            "downloads nothing; build the model with weights=None and load torchvision's "
            "state_dict into it, e.g. safetensors.torch.save_file(torchvision.models."
            f"{builder}(weights='DEFAULT').state_dict(), 'w.safetensors') and then "
            "model.load_state_dict(pve.load('w.safetensors'))")
