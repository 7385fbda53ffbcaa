"""torch.nn.utils.stateless.functional_call: call a module with some of its parameters and
buffers replaced by given tensors; the module gets its own tensors back afterwards, also
when the call raises. (pve.func.functional_call is the same with a tuple of dicts too.)"""

from __future__ import annotations

import contextlib
import warnings
from typing import Any, Dict, Iterator, List, Tuple

from pyvision_engine.nn._f_common import RuntimeValueError
from pyvision_engine.nn.module import Module
from pyvision_engine.tensor import Tensor

__all__ = ["functional_call"]

_MISSING: Any = object()  # a name the module does not have (swapped in: delete it)


def _submodule(module: Module, path: str, memo: Dict[str, Module]) -> Module:
    """The submodule at dotted ``path`` ('' is the module), remembered in ``memo``."""
    if not path:
        return module
    if path not in memo:
        prefix, _, attr = path.rpartition(".")
        parent = _submodule(module, prefix, memo)
        try:
            child = getattr(parent, attr)
        except AttributeError as error:
            raise AttributeError(f"{parent._get_name()} has no attribute `{attr}`") from error
        if not isinstance(child, Module):
            raise TypeError(f"submodule `{path}`: a {type(child).__name__} is not an instance "
                            "of nn.Module")
        memo[path] = child
    return memo[path]


def _swap_tensor(module: Module, name: str, tensor: Any, path: str) -> Any:
    """Put ``tensor`` (or _MISSING: remove) at attribute ``name`` of ``module`` (``path``
    from the called module) and return what was there (_MISSING when nothing was), as
    torch's swap_tensor: a registered parameter or buffer slot takes any tensor, another
    name is set as an attribute."""
    for store in (module._parameters, module._buffers):
        if name in store:
            original = store[name]
            if tensor is _MISSING:
                del store[name]
            else:
                store[name] = tensor
            return original
    original = getattr(module, name, _MISSING)
    if original is not _MISSING and original is not None and not isinstance(original, Tensor):
        raise TypeError(f"functional_call: attribute `{path}` of the module is not a Tensor "
                        f"({type(original).__name__})")
    if tensor is not _MISSING:
        setattr(module, name, tensor)
    elif original is not _MISSING:
        delattr(module, name)
    return original


def _swap_tensors(module: Module, named: Dict[str, Any], memo: Dict[str, Module]
                  ) -> Dict[str, Any]:
    """Swap every dotted name of ``named`` in; returns what each replaced. A failure
    swaps the ones done back before it raises."""
    originals: Dict[str, Any] = {}
    try:
        for name, tensor in named.items():
            if tensor is not None and not isinstance(tensor, Tensor):
                raise TypeError(f"functional_call: {name!r} must be a Tensor or None, got "
                                f"{type(tensor).__name__}")
            prefix, _, attr = name.rpartition(".")
            originals[name] = _swap_tensor(_submodule(module, prefix, memo), attr, tensor, name)
    except Exception:
        _swap_back(module, originals, memo)
        raise
    finally:
        Module._structure_changed()  # (caches keyed on the module's structure look again)
    return originals


def _swap_back(module: Module, originals: Dict[str, Any], memo: Dict[str, Module]
               ) -> Dict[str, Any]:
    """Put ``originals`` back; returns what each name held until now."""
    current = {}
    for name, tensor in originals.items():
        prefix, _, attr = name.rpartition(".")
        current[name] = _swap_tensor(_submodule(module, prefix, memo), attr, tensor, name)
    Module._structure_changed()
    return current


def _all_named_tensors(module: Module) -> Iterator[Tuple[str, Tensor]]:
    yield from module.named_parameters(remove_duplicate=False)
    yield from module.named_buffers(remove_duplicate=False)


def _untie(module: Module, given: Dict[str, Any]) -> Dict[str, Any]:
    """``given`` plus, for each name of a tensor the module shares under several names
    (tied weights), the same value under the other names. Different values given for one
    tied tensor are an error."""
    names_of: Dict[int, List[str]] = {}
    for name, tensor in _all_named_tensors(module):
        names_of.setdefault(id(tensor), []).append(name)
    tied = {name: names for names in names_of.values() if len(names) > 1 for name in names}
    untied = dict(given)
    for name in given:
        if name not in tied:
            continue
        values = {id(given[other]) for other in tied[name] if other in given}
        if len(values) > 1:
            raise ValueError(f"functional_call got multiple values for keys "
                             f"{sorted(tied[name])}, which are tied. Consider using "
                             "tie_weights=False")
        for other in tied[name]:
            untied[other] = given[name]
    return untied


def _check_keys(module: Module, keys: Any) -> None:
    """strict: the keys must be exactly the module's parameter and buffer names."""
    valid = {name for name, _ in _all_named_tensors(module)}
    missing, unexpected = sorted(valid - set(keys)), sorted(set(keys) - valid)
    messages = []
    if unexpected:
        messages.append(f"Unexpected key(s): {', '.join(map(repr, unexpected))}.")
    if missing:
        messages.append(f"Missing key(s): {', '.join(map(repr, missing))}.")
    if messages:
        raise RuntimeValueError(f"Error(s) in reparametrizing for {module._get_name()}:\n\t"
                                + "\n\t".join(messages))


@contextlib.contextmanager
def _reparametrize_module(module: Module, parameters_and_buffers: Dict[str, Any],
                          tie_weights: bool = False, strict: bool = False) -> Iterator[None]:
    """The module with the given tensors swapped in, inside the ``with`` block. Afterwards
    its own come back, and a given name whose tensor the module replaced meanwhile (an
    assignment in forward) gets the replacement in ``parameters_and_buffers``, as torch."""
    named = _untie(module, parameters_and_buffers) if tie_weights else parameters_and_buffers
    if strict:
        _check_keys(module, named)
    memo: Dict[str, Module] = {}
    originals: Dict[str, Any] = {}
    try:
        originals = _swap_tensors(module, named, memo)
        yield
    finally:
        current = _swap_back(module, originals, memo)
        parameters_and_buffers.update({name: current[name] for name in parameters_and_buffers
                                       if name in current})


def _functional_call(module: Module, parameters_and_buffers: Dict[str, Any], args: Any = None,
                     kwargs: Any = None, *, tie_weights: bool = True,
                     strict: bool = False) -> Any:
    if not isinstance(module, Module):
        raise TypeError(f"functional_call: module must be an nn.Module, got "
                        f"{type(module).__name__}")
    if not isinstance(parameters_and_buffers, dict):
        raise TypeError("functional_call: parameters_and_buffers must be a dict of name -> "
                        f"Tensor, got {type(parameters_and_buffers).__name__}")
    kwargs = {} if kwargs is None else kwargs
    if args is None:
        args = ()
    elif not isinstance(args, tuple):
        args = (args,)
    with _reparametrize_module(module, parameters_and_buffers, tie_weights=tie_weights,
                               strict=strict):
        return module(*args, **kwargs)


def functional_call(module: Module, parameters_and_buffers: Dict[str, Any], args: Any = None,
                    kwargs: Any = None, *, tie_weights: bool = True,
                    strict: bool = False) -> Any:
    """module(*args, **kwargs) with the tensors of ``parameters_and_buffers`` (dotted
    names, as named_parameters / named_buffers give them) in place of the module's own.
    ``args`` that is not a tuple is one argument. tie_weights: a value given for one name
    of a tensor the module shares under several names is used for all of them. strict:
    the names must be exactly the module's. Deprecated as in torch (FutureWarning): use
    pve.func.functional_call."""
    warnings.warn("`pve.nn.utils.stateless.functional_call` is deprecated, as torch's is "
                  "since PyTorch 2.0. Please use `pve.func.functional_call` instead which is "
                  "a drop-in replacement.", FutureWarning, stacklevel=2)
    return _functional_call(module, parameters_and_buffers, args, kwargs,
                            tie_weights=tie_weights, strict=strict)
