"""skip_init (torch.nn.utils.init)."""

from __future__ import annotations

import inspect
from typing import Any

from pyvision_engine.nn.module import Module
from pyvision_engine.random import get_rng_state, set_rng_state

__all__ = ["skip_init"]


def skip_init(module_cls: Any, *args: Any, **kwargs: Any) -> Module:
    """``module_cls(*args, **kwargs)`` whose parameter values are unspecified, for code that
    sets them itself. torch builds the module on its meta device and allocates empty
    storage; this engine has no meta device, so it builds it normally and then restores
    the global random state, which is left as torch leaves it (untouched by the init)."""
    if not issubclass(module_cls, Module):
        raise RuntimeError(f"skip_init: Expected a Module; got {module_cls}")
    if "device" not in inspect.signature(module_cls).parameters:
        raise RuntimeError("skip_init: Module must support a 'device' arg to skip initialization")
    kwargs["device"] = kwargs.pop("device", "cpu")
    state = get_rng_state()
    try:
        return module_cls(*args, **kwargs)
    finally:
        set_rng_state(state)
