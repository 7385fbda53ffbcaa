"""torch.nn.utils.fusion: fold an eval-mode BatchNorm into the convolution or linear layer
before it. The convolution forms are nn.conv's (shared with pve.nn.fuse_conv_bn_eval)."""

from __future__ import annotations

import copy
from typing import Any, Tuple

from pyvision_engine.nn._f_common import RuntimeValueError
from pyvision_engine.nn._f_norm import batch_norm_scale_shift
from pyvision_engine.nn.conv import (_tensor_array, check_fusable, fuse_conv_bn_eval,
                                     fuse_conv_bn_weights, scale_conv_weights)
from pyvision_engine.nn.module import Module
from pyvision_engine.nn.parameter import Parameter
from pyvision_engine.tensor import as_tensor

__all__ = ["fuse_conv_bn_eval", "fuse_conv_bn_weights", "fuse_linear_bn_eval",
           "fuse_linear_bn_weights"]


def fuse_linear_bn_weights(linear_w: Any, linear_b: Any, bn_rm: Any, bn_rv: Any, bn_eps: float,
                           bn_w: Any, bn_b: Any) -> Tuple[Parameter, Parameter]:
    """The (weight, bias) Parameters of a Linear followed by an eval-mode BatchNorm
    (per output feature, or one feature broadcast over all), requires_grad kept."""
    w = as_tensor(linear_w)
    scale, shift = batch_norm_scale_shift(as_tensor(bn_rm)._data, as_tensor(bn_rv)._data,
                                          _tensor_array(bn_w), _tensor_array(bn_b), bn_eps)
    fused_w, fused_b = scale_conv_weights(w._data, _tensor_array(linear_b), scale, shift)
    return (Parameter(fused_w, requires_grad=w.requires_grad),
            Parameter(fused_b,
                      requires_grad=linear_b is not None and as_tensor(linear_b).requires_grad))


def fuse_linear_bn_eval(linear: Module, bn: Module) -> Module:
    """A new Linear (a deep copy; ``linear`` is left as it is) equal to ``bn(linear(x))``
    for eval-mode modules; bn.num_features must be linear.out_features or 1."""
    op = "fuse_linear_bn_eval"
    check_fusable(linear, bn, op)
    if linear.out_features != bn.num_features and bn.num_features != 1:
        raise RuntimeValueError(f"{op}: To fuse, linear.out_features == bn.num_features or "
                                f"bn.num_features == 1, got linear.out_features="
                                f"{linear.out_features} and bn.num_features={bn.num_features}")
    fused = copy.deepcopy(linear)
    fused.weight, fused.bias = fuse_linear_bn_weights(fused.weight, fused.bias, bn.running_mean,
                                                      bn.running_var, bn.eps, bn.weight, bn.bias)
    return fused
