"""torch.nn.utils.parametrize: a parameter or buffer expressed as a function of others.

``register_parametrization(module, "weight", P)`` moves ``module.weight`` to
``module.parametrizations.weight.original`` (after ``P.right_inverse`` if ``P`` has
one; ``original0``, ``original1``, ... when it returns a sequence), swaps the
module's class for a generated subclass ``Parametrized<ClassName>`` (the instance's
own, as torch does) with a property ``weight`` that evaluates ``P(original)`` at
every access (once per ``cached()`` block), and whose setter runs
``right_inverse`` into ``original``. The parametrization is made of engine Tensor
ops, so autograd reaches ``original`` through it. state_dict keys are torch's:
``parametrizations.weight.original``.
"""

from __future__ import annotations

import collections.abc
from contextlib import contextmanager
from copy import deepcopy
from typing import Any, Dict, Iterator, Optional, Sequence, Tuple, Union

import numpy as np

from pyvision_engine.autograd import is_grad_enabled, no_grad
from pyvision_engine.nn.container import ModuleDict, ModuleList
from pyvision_engine.nn.module import Module
from pyvision_engine.nn.parameter import Parameter
from pyvision_engine.tensor import Tensor

__all__ = ["cached", "ParametrizationList", "register_parametrization", "is_parametrized",
           "remove_parametrizations", "type_before_parametrizations",
           "transfer_parametrizations_and_params"]

_cache_enabled = 0
_cache: Dict[Tuple[int, str], Optional[Tensor]] = {}


@contextmanager
def cached() -> Iterator[None]:
    """Inside the block each parametrized tensor is computed once, at its first access,
    and that tensor is returned afterwards (nested blocks share the outermost's cache)."""
    global _cache, _cache_enabled
    _cache_enabled += 1
    try:
        yield
    finally:
        _cache_enabled -= 1
        if not _cache_enabled:
            _cache = {}


def _register_parameter_or_buffer(module: Module, name: str, x: Tensor) -> None:
    if isinstance(x, Parameter):
        module.register_parameter(name, x)
    else:
        module.register_buffer(name, x)


def _maybe_set(dest: Tensor, src: Tensor) -> None:
    """torch's ``dest.set_(src)``: ``dest`` (same object, so optimizers keep it) takes
    ``src``'s values. Same shape: copied into dest's own array (an arena view stays a
    view); another shape (unsafe parametrizations): dest gets a copy of the array."""
    if dest is src:
        return
    if dest._data.shape == src._data.shape:
        np.copyto(dest._data, src._data, casting="unsafe")
        dest._bump_version()
    else:
        dest.data = src._data.copy()


def _is_tensor(x: Any) -> bool:
    return isinstance(x, Tensor)


class ParametrizationList(ModuleList):
    """The parametrizations of one tensor, applied in order (``self[0]`` first) to
    ``original`` (or to ``original0, original1, ...`` when the first one's
    ``right_inverse`` returns a sequence). ``unsafe=True`` skips the checks that the
    parametrized tensor keeps the original's shape and dtype."""

    def __init__(self, modules: Sequence[Module], original: Tensor, unsafe: bool = False) -> None:
        if len(modules) == 0:
            raise ValueError("ParametrizationList requires one or more modules.")
        super().__init__(modules)
        self.unsafe = unsafe
        original_shape = tuple(original.shape)
        original_dtype = original.dtype
        with no_grad():
            new: Any = original
            for module in reversed(list(self)):
                if hasattr(module, "right_inverse"):
                    try:
                        new = module.right_inverse(new)
                    except NotImplementedError:
                        pass
        if not _is_tensor(new) and not isinstance(new, collections.abc.Sequence):
            raise ValueError("'right_inverse' must return a Tensor or a Sequence of tensors "
                             f"(list, tuple...). Got {type(new).__name__}")
        self.is_tensor = _is_tensor(new)
        self.ntensors = 1 if self.is_tensor else len(new)
        if self.is_tensor:
            if original.dtype != new.dtype:
                raise ValueError("When `right_inverse` outputs one tensor, it may not change the "
                                 f"dtype.\noriginal.dtype: {original.dtype}\n"
                                 f"right_inverse(original).dtype: {new.dtype}")
            with no_grad():
                _maybe_set(original, new)
            _register_parameter_or_buffer(self, "original", original)
        else:
            for i, originali in enumerate(new):
                if not _is_tensor(originali):
                    raise ValueError("'right_inverse' must return a Tensor or a Sequence of "
                                     f"tensors (list, tuple...). Got element {i} of the sequence "
                                     f"with type {type(originali).__name__}.")
                if isinstance(original, Parameter):
                    originali = Parameter(originali._data.copy(), original.requires_grad)
                else:
                    originali = Tensor(originali._data.copy())
                originali.requires_grad_(original.requires_grad)
                _register_parameter_or_buffer(self, f"original{i}", originali)
        if not self.unsafe:
            z = self()
            if not _is_tensor(z):
                raise ValueError(f"A parametrization must return a tensor. Got {type(z).__name__}.")
            if z.dtype != original_dtype:
                raise ValueError("Registering a parametrization may not change the dtype of the "
                                 "tensor, unless `unsafe` flag is enabled.\n"
                                 f"unparametrized dtype: {original_dtype}\n"
                                 f"parametrized dtype: {z.dtype}")
            if tuple(z.shape) != original_shape:
                raise ValueError("Registering a parametrization may not change the shape of the "
                                 "tensor, unless `unsafe` flag is enabled.\n"
                                 f"unparametrized shape: {original_shape}\n"
                                 f"parametrized shape: {tuple(z.shape)}")

    def right_inverse(self, value: Any) -> None:
        """Set ``original`` (or ``original0..n``) so that this list evaluates to
        ``value``: every parametrization's ``right_inverse``, last to first, under no_grad
        (RuntimeError if one has none)."""
        with no_grad():
            for module in reversed(list(self)):
                if hasattr(module, "right_inverse"):
                    value = module.right_inverse(value)
                else:
                    raise RuntimeError(f"parametrization {type(module).__name__} does not "
                                       "implement right_inverse.")
            if self.is_tensor:
                if not _is_tensor(value):
                    raise ValueError("`right_inverse` should return a tensor. Got "
                                     f"{type(value).__name__}")
                if value.dtype != self.original.dtype:
                    raise ValueError(f"The tensor returned by `right_inverse` has dtype "
                                     f"{value.dtype} while `original` has dtype "
                                     f"{self.original.dtype}")
                _maybe_set(self.original, value)
            else:
                if not isinstance(value, collections.abc.Sequence):
                    raise ValueError("'right_inverse' must return a sequence of tensors. Got "
                                     f"{type(value).__name__}.")
                if len(value) != self.ntensors:
                    raise ValueError("'right_inverse' must return a sequence of tensors of length "
                                     f"{self.ntensors}. Got a sequence of length {len(value)}.")
                for i, tensor in enumerate(value):
                    original_i = getattr(self, f"original{i}")
                    if not _is_tensor(tensor):
                        raise ValueError("'right_inverse' must return a sequence of tensors. Got "
                                         f"element {i} of type {type(tensor).__name__}.")
                    if original_i.dtype != tensor.dtype:
                        raise ValueError(f"Tensor {i} returned by `right_inverse` has dtype "
                                         f"{tensor.dtype} while `original{i}` has dtype "
                                         f"{original_i.dtype}")
                    _maybe_set(original_i, tensor)

    def _sources(self) -> Tuple[Tensor, ...]:
        """The tensors the parametrized value is computed from: the originals and every
        parameter and buffer of the parametrizations (spectral_norm's u and v, ...)."""
        return tuple(self.parameters()) + tuple(self.buffers())

    def _inference_value(self) -> Tensor:
        """The value in eval mode under no_grad: one tensor of this list's own, recomputed
        into (in place, its version bumped) only when a source tensor changed (identity,
        array or ``_changes()``), the tensor itself was written to, or a module changed
        through the Module API. Inference caches that key on a weight's identity and
        version (Conv2d's packed and folded weights) then stay valid and cheap, where a
        new tensor per access would defeat them -- or, once a freed tensor's id and
        address are reused, match a stale entry. (torch returns a new tensor per access;
        here the same object is returned while nothing changed.)"""
        entry = self.__dict__.get("_inference")
        if entry is not None:
            epoch, state, value, stamp = entry
            if (epoch == Module._structure_epoch and value._changes() == stamp
                    and _unchanged(self._sources(), state)):
                return value
        z = self()
        if entry is not None and entry[2].shape == z.shape and entry[2].dtype == z.dtype:
            value = entry[2]
            np.copyto(value._data, z._data)
            value._bump_version()
        else:  # (a copy: the result may be a source itself, e.g. an identity)
            value = Tensor(z._data.copy())
        sources = self._sources()
        object.__setattr__(self, "_inference", (
            Module._structure_epoch, tuple((t, t._data, t._changes()) for t in sources),
            value, value._changes()))
        return value

    def forward(self) -> Tensor:
        if self.is_tensor:
            x = self[0](self.original)
        else:
            x = self[0](*(getattr(self, f"original{i}") for i in range(self.ntensors)))
        # (torch walks the numbered children; a slice of this list can't be rebuilt)
        curr_idx = 1
        while str(curr_idx) in self._modules:
            x = self._modules[str(curr_idx)](x)
            curr_idx += 1
        return x


def _unchanged(sources: Tuple[Tensor, ...], state: Tuple[Any, ...]) -> bool:
    if len(sources) != len(state):
        return False
    for t, (rt, data, changes) in zip(sources, state):
        if t is not rt or t._data is not data or t._changes() != changes:
            return False
    return True


def _inject_new_class(module: Module) -> None:
    """Give ``module`` its own subclass ``Parametrized<Class>`` to hold the properties
    (deepcopy-able; pickling raises, as torch: state_dict is the supported way)."""
    cls = module.__class__

    def default_deepcopy(self: Module, memo: Dict[int, Any]) -> Module:
        obj = memo.get(id(self), None)
        if obj is not None:
            return obj
        replica = self.__new__(self.__class__)
        memo[id(self)] = replica
        replica.__dict__ = deepcopy(self.__dict__, memo)
        return replica

    def getstate(self: Module) -> None:
        raise RuntimeError(
            "Serialization of parametrized modules is only supported through state_dict(). "
            "See:\nhttps://pytorch.org/tutorials/beginner/saving_loading_models.html"
            "#saving-loading-a-general-checkpoint-for-inference-and-or-resuming-training")

    dct: Dict[str, Any] = {"__getstate__": getstate}
    if not hasattr(cls, "__deepcopy__"):
        dct["__deepcopy__"] = default_deepcopy
    param_cls = type(f"Parametrized{cls.__name__}", (cls,), dct)
    module.__class__ = param_cls


def _inject_property(module: Module, tensor_name: str) -> None:
    if hasattr(module, tensor_name):
        raise AssertionError(f"Module already has an attribute named '{tensor_name}'")

    def get_parametrized(self: Module) -> Tensor:
        parametrization = self.parametrizations[tensor_name]
        if _cache_enabled:
            key = (id(self), tensor_name)
            tensor = _cache.get(key)
            if tensor is None:
                tensor = parametrization()
                _cache[key] = tensor
            return tensor
        if not self.training and not is_grad_enabled():
            return parametrization._inference_value()
        return parametrization()

    def set_original(self: Module, value: Tensor) -> None:
        self.parametrizations[tensor_name].right_inverse(value)

    setattr(module.__class__, tensor_name, property(get_parametrized, set_original))
    Module._structure_changed()  # (fusion decisions depend on what the class is)


def register_parametrization(module: Module, tensor_name: str, parametrization: Module,
                             *, unsafe: bool = False) -> Module:
    """Parametrize ``module.<tensor_name>`` (a parameter or buffer, or one already
    parametrized: ``parametrization`` is then appended) by ``parametrization``; see the
    module docstring. Returns ``module``. ValueError when there is no such tensor, or
    (unless ``unsafe``) when the result changes the tensor's shape or dtype."""
    parametrization.train(module.training)
    if is_parametrized(module, tensor_name):
        if not unsafe:
            y = getattr(module, tensor_name)
            x = parametrization(y)
            if not _is_tensor(x):
                raise ValueError(f"A parametrization must return a tensor. Got {type(x).__name__}.")
            if x.dtype != y.dtype:
                raise ValueError("Registering a parametrization may not change the dtype of the "
                                 "tensor, unless the `unsafe` flag is enabled.\n"
                                 f"module.{tensor_name}.dtype: {y.dtype}\n"
                                 f"parametrization(module.{tensor_name}).dtype: {x.dtype}")
            if tuple(x.shape) != tuple(y.shape):
                raise ValueError("Registering a parametrization may not change the shape of the "
                                 "tensor, unless the `unsafe` flag is enabled.\n"
                                 f"module.{tensor_name}.shape: {tuple(y.shape)}\n"
                                 f"parametrization(module.{tensor_name}).shape: "
                                 f"{tuple(x.shape)}")
            if hasattr(parametrization, "right_inverse"):
                try:
                    z = parametrization.right_inverse(x)
                except NotImplementedError:
                    pass
                else:
                    if not _is_tensor(z):
                        raise ValueError("parametrization.right_inverse must return a tensor. "
                                         f"Got: {type(z).__name__}")
                    if z.dtype != y.dtype:
                        raise ValueError(
                            "The tensor returned by parametrization.right_inverse must have the "
                            f"same dtype as module.{tensor_name}, unless the `unsafe` flag is "
                            f"enabled.\nmodule.{tensor_name}.dtype: {y.dtype}\n"
                            f"returned dtype: {z.dtype}")
                    if tuple(z.shape) != tuple(y.shape):
                        raise ValueError(
                            "The tensor returned by parametrization.right_inverse must have the "
                            f"same shape as module.{tensor_name}, unless the `unsafe` flag is "
                            f"enabled.\nmodule.{tensor_name}.shape: {tuple(y.shape)}\n"
                            f"returned shape: {tuple(z.shape)}")
        plist = module.parametrizations[tensor_name]
        plist.append(parametrization)
        plist.unsafe |= unsafe
    elif tensor_name in module._buffers or tensor_name in module._parameters:
        original = getattr(module, tensor_name)
        parametrizations = ParametrizationList([parametrization], original, unsafe=unsafe)
        delattr(module, tensor_name)
        if not is_parametrized(module):
            _inject_new_class(module)
            module.parametrizations = ModuleDict()
        _inject_property(module, tensor_name)
        module.parametrizations[tensor_name] = parametrizations
    else:
        raise ValueError(f"Module '{module}' does not have a parameter, a buffer, or a "
                         f"parametrized element with name '{tensor_name}'")
    return module


def is_parametrized(module: Module, tensor_name: Optional[str] = None) -> bool:
    """Whether ``module`` has any parametrization (or one on ``tensor_name``)."""
    parametrizations = getattr(module, "parametrizations", None)
    if parametrizations is None or not isinstance(parametrizations, ModuleDict):
        return False
    if tensor_name is None:
        return len(parametrizations) > 0
    return tensor_name in parametrizations


def remove_parametrizations(module: Module, tensor_name: str,
                            leave_parametrized: bool = True) -> Module:
    """Undo the parametrizations of ``module.<tensor_name>``: it becomes a plain
    parameter (or buffer) again, holding the parametrized value
    (``leave_parametrized=True``, the same Parameter object as ``original``) or the
    original's. The module gets its class back when nothing is parametrized."""
    if not is_parametrized(module, tensor_name):
        raise ValueError(f"Module {module} does not have a parametrization on {tensor_name}")
    parametrizations = module.parametrizations[tensor_name]
    if parametrizations.is_tensor:
        original = parametrizations.original
        if leave_parametrized:
            with no_grad():
                t = getattr(module, tensor_name)
                _maybe_set(original, t)
    elif leave_parametrized:
        t = getattr(module, tensor_name)
        original = Parameter(t._data.copy()) if t.requires_grad else t.detach()
    else:
        raise ValueError("Cannot leave unparametrized (`leave_parametrized=False`) a tensor that "
                         "is parametrized in terms of a sequence of tensors.")
    delattr(module.__class__, tensor_name)
    del module.parametrizations[tensor_name]
    _register_parameter_or_buffer(module, tensor_name, original)
    if not is_parametrized(module):
        delattr(module, "parametrizations")
        module.__class__ = module.__class__.__bases__[0]
    Module._structure_changed()
    return module


def type_before_parametrizations(module: Module) -> type:
    """The module's class before any parametrization was registered."""
    if is_parametrized(module):
        return module.__class__.__bases__[0]
    return type(module)


def transfer_parametrizations_and_params(from_module: Module, to_module: Module,
                                         tensor_name: Optional[str] = None) -> Module:
    """Register ``from_module``'s parametrizations (all, or ``tensor_name``'s) on
    ``to_module`` and share their originals (the same Parameter objects); a tensor
    ``to_module`` lacks is created from the parametrized value first."""
    if is_parametrized(from_module):
        names: Union[Any, list] = (from_module.parametrizations if tensor_name is None
                                   else [tensor_name])
        for parameter_name in names:
            if not hasattr(to_module, parameter_name):
                setattr(to_module, parameter_name,
                        Parameter(getattr(from_module, parameter_name)._data.copy()))
            for param_func in from_module.parametrizations[parameter_name]:
                register_parametrization(to_module, parameter_name, param_func)
            source = from_module.parametrizations[parameter_name]
            target = to_module.parametrizations[parameter_name]
            if "original" in source._parameters or "original" in source._buffers:
                target.original = source.original
            else:
                num = 0
                while hasattr(source, f"original{num}"):
                    setattr(target, f"original{num}", getattr(source, f"original{num}"))
                    num += 1
    return to_module
