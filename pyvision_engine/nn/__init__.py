"""pve.nn: modules, parameters and functional ops with torch.nn's names and semantics."""

from pyvision_engine.nn import functional, init
from pyvision_engine.nn.arena import ParameterArena
from pyvision_engine.nn.conv import (Conv2d, ConvBn2d, ConvBnReLU2d, fold_batch_norm,
                                     fuse_conv_bn_eval)
from pyvision_engine.nn.container import ModuleDict, ModuleList, Sequential
from pyvision_engine.nn.linear import Flatten, Identity, Linear
from pyvision_engine.nn.module import Module, StateDictError
from pyvision_engine.nn.parameter import Buffer, Parameter
from pyvision_engine.nn import utils

__all__ = [
    "Module", "Parameter", "Buffer", "Sequential", "ModuleList", "ModuleDict",
    "Linear", "Identity", "Flatten", "ParameterArena", "StateDictError",
    "functional", "init", "utils", "Conv2d", "ConvBn2d", "ConvBnReLU2d", "fuse_conv_bn_eval",
    "fold_batch_norm",
]
