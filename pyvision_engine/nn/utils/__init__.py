"""pve.nn.utils: gradient clipping (torch.nn.utils names)."""

from pyvision_engine.nn.utils.clip_grad import (
    clip_grad_norm_, clip_grad_value_, clip_grads_with_norm_, get_total_norm,
)

__all__ = ["clip_grad_norm_", "clip_grad_value_", "clip_grads_with_norm_", "get_total_norm"]
from pyvision_engine.nn.utils.clip_grad import clip_grad_norm  # noqa: E402
from pyvision_engine.nn.utils.convert_parameters import (  # noqa: E402
    parameters_to_vector, vector_to_parameters,
)
from pyvision_engine.nn.utils.fusion import (  # noqa: E402
    fuse_conv_bn_eval, fuse_conv_bn_weights, fuse_linear_bn_eval, fuse_linear_bn_weights,
)
from pyvision_engine.nn.utils.init import skip_init  # noqa: E402
from pyvision_engine.nn.utils.spectral_norm import (  # noqa: E402
    remove_spectral_norm, spectral_norm,
)
from pyvision_engine.nn.utils.weight_norm import remove_weight_norm, weight_norm  # noqa: E402

__all__ += ["clip_grad_norm", "parameters_to_vector", "vector_to_parameters",
            "fuse_conv_bn_eval", "fuse_conv_bn_weights", "fuse_linear_bn_eval",
            "fuse_linear_bn_weights", "skip_init", "weight_norm", "remove_weight_norm",
            "spectral_norm", "remove_spectral_norm"]
from pyvision_engine.nn.utils import parametrizations, parametrize  # noqa: E402

__all__ += ["parametrizations", "parametrize"]

# Submodules a CNN program rarely needs load on first use (import time; PEP 562).
_LAZY_SUBMODULES = ("rnn", "stateless")
__all__ += list(_LAZY_SUBMODULES)


def __getattr__(name: str):
    if name in _LAZY_SUBMODULES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")  # (binds it here too)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY_SUBMODULES))
