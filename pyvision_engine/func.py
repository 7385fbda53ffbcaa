"""pve.func (torch.func's name): functional_call, a module called with given parameters
and buffers in place of its own."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Dict

from pyvision_engine.nn.module import Module
from pyvision_engine.nn.utils.stateless import _functional_call

__all__ = ["functional_call"]


def _merged(parameter_and_buffer_dicts: Any) -> Dict[str, Any]:
    """One dict, or the union of a sequence of dicts whose keys must not repeat."""
    if isinstance(parameter_and_buffer_dicts, dict):
        return parameter_and_buffer_dicts
    if not isinstance(parameter_and_buffer_dicts, Sequence):
        raise ValueError("Expected parameter_and_buffer_dicts to be a dict, or a list/tuple of "
                         f"dicts, but got {type(parameter_and_buffer_dicts)}")
    if not all(isinstance(d, dict) for d in parameter_and_buffer_dicts):
        raise ValueError("Expected all elements of parameter_and_buffer_dicts to be "
                         "dictionaries")
    counts: Dict[str, int] = {}
    for d in parameter_and_buffer_dicts:
        for key in d:
            counts[key] = counts.get(key, 0) + 1
    repeated = [key for key, n in counts.items() if n > 1]
    if repeated:
        raise ValueError(f"{repeated} appeared in multiple dictionaries; behavior of "
                         "functional call is ambiguous")
    return {k: v for d in parameter_and_buffer_dicts for k, v in d.items()}


def functional_call(module: Module, parameter_and_buffer_dicts: Any, args: Any = None,
                    kwargs: Any = None, *, tie_weights: bool = True,
                    strict: bool = False) -> Any:
    """torch.func.functional_call: module(*args, **kwargs) with the tensors of
    ``parameter_and_buffer_dicts`` (a dict of dotted names, as named_parameters /
    named_buffers give them, or a tuple/list of such dicts with distinct keys) in place
    of the module's own, which come back afterwards (also when the call raises).
    ``args`` that is not a tuple is one argument. tie_weights: a value given for one name
    of a tensor the module shares under several names is used for all of them (different
    values for one tied tensor are a ValueError). strict: the names must be exactly the
    module's parameters and buffers. Gradients flow to the given tensors."""
    return _functional_call(module, _merged(parameter_and_buffer_dicts), args, kwargs,
                            tie_weights=tie_weights, strict=strict)
