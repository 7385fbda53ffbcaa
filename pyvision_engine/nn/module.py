"""nn.Module with torch's registration rules, traversal and state_dict format."""

from __future__ import annotations

import warnings
from collections import OrderedDict, namedtuple
from typing import Any, Callable, Dict, Iterator, List, Optional, Set, Tuple

import numpy as np

from pyvision_engine.autograd import Function, RemovableHandle, _replacement_grad, is_grad_enabled
from pyvision_engine.nn.arena import ParameterArena
from pyvision_engine.nn.parameter import Buffer, Parameter
from pyvision_engine.tensor import Tensor

__all__ = ["Module", "StateDictError"]

class _IncompatibleKeys(namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])):
    """load_state_dict's result, as torch's: (missing_keys, unexpected_keys), printed as
    ``<All keys matched successfully>`` when both are empty."""

    __slots__ = ()

    def __repr__(self) -> str:
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return (f"_IncompatibleKeys(missing_keys={self.missing_keys!r}, "
                f"unexpected_keys={self.unexpected_keys!r})")

    __str__ = __repr__


class StateDictError(RuntimeError, ValueError):
    """load_state_dict found missing/unexpected keys or mismatched shapes.

    A RuntimeError like torch's, and a ValueError since it is bad input."""


def _as_array(value: Any) -> np.ndarray:
    """numpy view of a state_dict value: pve Tensor, numpy array, torch tensor, ..."""
    if isinstance(value, Tensor):
        return value._data
    if hasattr(value, "detach") and hasattr(value, "numpy") and not isinstance(value, np.ndarray):
        return value.detach().cpu().numpy()  # a torch tensor
    return np.asarray(value)


class Module:
    """Base class of every layer and model; subclasses define ``forward``."""

    training: bool
    # Counts changes made through the Module API to any module (attributes, children,
    # parameters, buffers, hooks, train/eval): caches of what a model's structure
    # allows (nn/blocked.py's runs) are reused only while it is unchanged. Values are
    # not structure: those caches follow each tensor's identity and _version.
    _structure_epoch = 0
    # The layout version of this class's state dict, saved in state_dict()._metadata and
    # handed to _load_from_state_dict (torch's: BatchNorm is 2, since num_batches_tracked).
    _version: int = 1

    @staticmethod
    def _structure_changed() -> None:
        Module._structure_epoch += 1

    def __init__(self) -> None:
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent_buffers", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_forward_hooks", OrderedDict())
        object.__setattr__(self, "_forward_pre_hooks", OrderedDict())
        # ids of the hooks registered with_kwargs / always_call (torch's bookkeeping)
        object.__setattr__(self, "_forward_hooks_with_kwargs", set())
        object.__setattr__(self, "_forward_pre_hooks_with_kwargs", set())
        object.__setattr__(self, "_forward_hooks_always_called", set())
        object.__setattr__(self, "_backward_hooks", OrderedDict())
        object.__setattr__(self, "_backward_pre_hooks", OrderedDict())
        # state-dict hooks (torch's registries of the same names)
        object.__setattr__(self, "_state_dict_pre_hooks", OrderedDict())
        object.__setattr__(self, "_state_dict_hooks", OrderedDict())
        object.__setattr__(self, "_load_state_dict_pre_hooks", OrderedDict())
        object.__setattr__(self, "_load_state_dict_post_hooks", OrderedDict())
        object.__setattr__(self, "_arena", None)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} has no forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not (self._forward_pre_hooks or self._forward_hooks or self._backward_hooks
                or self._backward_pre_hooks):  # the usual case
            return self.forward(*args, **kwargs)
        for hook_id, hook in list(self._forward_pre_hooks.items()):
            if hook_id in self._forward_pre_hooks_with_kwargs:
                result = hook(self, args, kwargs)
                if result is not None:
                    if not (isinstance(result, tuple) and len(result) == 2):
                        raise RuntimeError("forward pre-hook must return None or a tuple of "
                                           f"(new_args, new_kwargs), but got {result}.")
                    args, kwargs = result
            else:
                result = hook(self, args)
                if result is not None:
                    args = result if isinstance(result, tuple) else (result,)
        backward_hooks = None
        if (self._backward_hooks or self._backward_pre_hooks) and is_grad_enabled():
            backward_hooks = _BackwardHooks(self, args)
            args = backward_hooks.wrap_inputs(args)
        called = set()
        try:
            output = self.forward(*args, **kwargs)
            for hook_id, hook in list(self._forward_hooks.items()):
                called.add(hook_id)
                if hook_id in self._forward_hooks_with_kwargs:
                    result = hook(self, args, kwargs, output)
                else:
                    result = hook(self, args, output)
                if result is not None:
                    output = result
        except Exception:
            # always_call hooks still run (with output None) when forward or a hook raised
            for hook_id, hook in list(self._forward_hooks.items()):
                if hook_id in self._forward_hooks_always_called and hook_id not in called:
                    try:
                        if hook_id in self._forward_hooks_with_kwargs:
                            hook(self, args, kwargs, None)
                        else:
                            hook(self, args, None)
                    except Exception as e:
                        warnings.warn("forward hook with ``always_call=True`` raised an exception "
                                      f"that was silenced as another error was raised in forward: "
                                      f"{str(e)}")
            raise
        if backward_hooks is not None:
            output = backward_hooks.wrap_output(output)
        return output

    # ------------------------------------------------------------ registration
    def __setattr__(self, name: str, value: Any) -> None:
        Module._structure_changed()
        params = self.__dict__.get("_parameters")
        if isinstance(value, Parameter):
            if params is None:
                raise AttributeError("cannot assign parameters before Module.__init__() call")
            self._remove_from(name, self.__dict__, self._buffers, self._modules)
            self._non_persistent_buffers.discard(name)
            self.register_parameter(name, value)
        elif params is not None and name in params:
            if value is not None:
                raise TypeError(
                    f"cannot assign '{type(value).__name__}' as parameter '{name}' "
                    "(nn.Parameter or None expected)"
                )
            params[name] = None
        elif isinstance(value, Module):
            if params is None:
                raise AttributeError("cannot assign module before Module.__init__() call")
            self._remove_from(name, self.__dict__, self._parameters, self._buffers)
            self._non_persistent_buffers.discard(name)
            self._modules[name] = value
        elif isinstance(value, Buffer):
            if params is None:
                raise AttributeError("cannot assign buffer before Module.__init__() call")
            self.register_buffer(name, value, persistent=value.persistent)
        elif params is not None and name in self._modules:
            if value is not None:
                raise TypeError(
                    f"cannot assign '{type(value).__name__}' as child module '{name}' "
                    "(nn.Module or None expected)"
                )
            self._modules[name] = None
        elif params is not None and name in self._buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(
                    f"cannot assign '{type(value).__name__}' as buffer '{name}' "
                    "(Tensor or None expected)"
                )
            self._buffers[name] = value
        else:
            object.__setattr__(self, name, value)

    @staticmethod
    def _remove_from(name: str, *dicts: Dict[str, Any]) -> None:
        for d in dicts:
            if name in d:
                del d[name]

    def __getattr__(self, name: str) -> Any:
        d = self.__dict__
        for store in ("_parameters", "_buffers", "_modules"):
            if store in d and name in d[store]:
                return d[store][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        Module._structure_changed()
        for store in (self._parameters, self._buffers, self._modules):
            if name in store:
                del store[name]
                self._non_persistent_buffers.discard(name)
                return
        object.__delattr__(self, name)

    def _check_name(self, name: str, kind: str, store: str) -> None:
        """torch's checks, in its order: registered before __init__ (AttributeError), a
        non-string (TypeError), '.' or '' (KeyError), or a name already taken by
        anything but the same kind (KeyError: a buffer can't replace a parameter)."""
        if store not in self.__dict__:
            raise AttributeError(f"cannot assign {kind} before Module.__init__() call")
        if not isinstance(name, str):
            raise TypeError(f"{kind} name should be a string. Got {type(name).__name__}")
        if "." in name:
            raise KeyError(f"{kind} name can't contain \".\", got: {name}")
        if name == "":
            raise KeyError(f"{kind} name can't be empty string \"\"")
        if hasattr(self, name) and name not in self.__dict__[store]:
            raise KeyError(f"attribute '{name}' already exists")

    def register_parameter(self, name: str, param: Optional[Parameter]) -> None:
        self._check_name(name, "parameter", "_parameters")
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(
                f"cannot assign '{type(param).__name__}' object to parameter '{name}' "
                "(nn.Parameter or None required)"
            )
        if param is not None and param._node is not None:
            raise ValueError(
                f"Cannot assign non-leaf Tensor to parameter '{name}'. Model parameters must be "
                "created explicitly. To express '{name}' as a function of another Tensor, "
                "compute the value in the forward() method."
            )
        self._remove_from(name, self._buffers, self._modules)
        self._parameters[name] = param
        Module._structure_changed()

    def register_buffer(self, name: str, tensor: Optional[Any], persistent: bool = True) -> None:
        self._check_name(name, "buffer", "_buffers")
        if tensor is not None and not isinstance(tensor, Tensor):
            # numpy arrays are accepted (the engine takes them wherever torch takes a
            # Tensor); anything else is torch's TypeError
            if not isinstance(tensor, np.ndarray):
                raise TypeError(f"cannot assign '{type(tensor).__name__}' object to buffer "
                                f"'{name}' (Tensor or None required)")
            tensor = Tensor(tensor)
        self._remove_from(name, self._parameters, self._modules)
        self._buffers[name] = tensor
        Module._structure_changed()
        if persistent:
            self._non_persistent_buffers.discard(name)
        else:
            self._non_persistent_buffers.add(name)

    def add_module(self, name: str, module: Optional["Module"]) -> None:
        self._check_name(name, "module", "_modules")
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        self._remove_from(name, self._parameters, self._buffers)
        self._modules[name] = module
        Module._structure_changed()

    register_module = add_module

    def get_submodule(self, target: str) -> "Module":
        module = self
        for part in target.split(".") if target else []:
            if part not in module._modules or module._modules[part] is None:
                raise AttributeError(f"{type(module).__name__} has no submodule '{part}'")
            module = module._modules[part]
        return module

    def set_submodule(self, target: str, module: "Module", strict: bool = False) -> None:
        """Replace (or, unless ``strict``, add) the submodule at dotted path ``target``."""
        if target == "":
            raise ValueError("Cannot set the submodule without a target name!")
        atoms = target.split(".")
        if not isinstance(module, Module):
            raise ValueError("`module` is not an nn.Module, found " + str(type(module)))
        parent = self if len(atoms) == 1 else self.get_submodule(".".join(atoms[:-1]))
        if strict and not hasattr(parent, atoms[-1]):
            raise AttributeError(parent._get_name() + " has no attribute `" + atoms[-1] + "`")
        if hasattr(parent, atoms[-1]) and not isinstance(getattr(parent, atoms[-1]), Module):
            raise AttributeError("`" + atoms[-1] + "` is not an nn.Module")
        setattr(parent, atoms[-1], module)

    def _get_name(self) -> str:
        return type(self).__name__

    def get_parameter(self, target: str) -> Parameter:
        return self._get_registered(target, "_parameters", "an nn.Parameter")

    def get_buffer(self, target: str) -> Tensor:
        return self._get_registered(target, "_buffers", "a buffer")

    def _get_registered(self, target: str, store: str, kind: str) -> Any:
        """The tensor at dotted path ``target`` in the submodule's ``store`` registry,
        with torch's AttributeErrors for a missing name or one of another kind."""
        module_path, _, name = target.rpartition(".")
        module = self.get_submodule(module_path)
        if not hasattr(module, name):
            raise AttributeError(f"{type(module).__name__} has no attribute `{name}`")
        registry = module.__dict__[store]
        if name not in registry:
            raise AttributeError(f"`{name}` is not {kind}")
        return registry[name]

    def register_forward_hook(self, hook: Callable, *, prepend: bool = False,
                              with_kwargs: bool = False,
                              always_call: bool = False) -> "_HookHandle":
        """hook(module, args, output) (or (module, args, kwargs, output) with_kwargs)
        after forward; a non-None result replaces the output. always_call hooks also
        run when forward raises."""
        handle = _HookHandle(self._forward_hooks, hook, prepend,
                             (self._forward_hooks_with_kwargs, self._forward_hooks_always_called))
        if with_kwargs:
            self._forward_hooks_with_kwargs.add(handle.id)
        if always_call:
            self._forward_hooks_always_called.add(handle.id)
        return handle

    def register_forward_pre_hook(self, hook: Callable, *, prepend: bool = False,
                                  with_kwargs: bool = False) -> "_HookHandle":
        """hook(module, args) before forward, a non-None result replacing args; with_kwargs
        hook(module, args, kwargs) returns None or (new_args, new_kwargs)."""
        handle = _HookHandle(self._forward_pre_hooks, hook, prepend,
                             (self._forward_pre_hooks_with_kwargs,))
        if with_kwargs:
            self._forward_pre_hooks_with_kwargs.add(handle.id)
        return handle

    def register_full_backward_hook(self, hook: Callable, prepend: bool = False) -> "_HookHandle":
        """hook(module, grad_input, grad_output) once the gradients w.r.t. the module's
        positional inputs are computed (tuples of Tensors, None where an input is not
        a tensor that requires grad); a returned tuple replaces grad_input. As torch's.
        Modules with more than one input that requires grad are not supported (a
        clear error at the call)."""
        return _HookHandle(self._backward_hooks, hook, prepend)

    def register_full_backward_pre_hook(self, hook: Callable,
                                        prepend: bool = False) -> "_HookHandle":
        """hook(module, grad_output) when the gradient w.r.t. the module's output is
        computed, before any w.r.t. its inputs; a returned tuple replaces grad_output."""
        return _HookHandle(self._backward_pre_hooks, hook, prepend)

    def _has_hooks(self) -> bool:
        return bool(self._forward_hooks or self._forward_pre_hooks or self._backward_hooks
                    or self._backward_pre_hooks)

    # --------------------------------------------------------------- traversal
    def named_modules(self, memo: Optional[Set[int]] = None, prefix: str = "",
                      remove_duplicate: bool = True) -> Iterator[Tuple[str, "Module"]]:
        if memo is None:
            memo = set()
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, module in self._modules.items():
            if module is None:
                continue
            sub = prefix + ("." if prefix else "") + name
            yield from module.named_modules(memo, sub, remove_duplicate)

    def modules(self, remove_duplicate: bool = True) -> Iterator["Module"]:
        for _, m in self.named_modules(remove_duplicate=remove_duplicate):
            yield m

    def named_children(self) -> Iterator[Tuple[str, "Module"]]:
        seen = set()
        for name, module in self._modules.items():
            if module is not None and id(module) not in seen:
                seen.add(id(module))
                yield name, module

    def children(self) -> Iterator["Module"]:
        for _, m in self.named_children():
            yield m

    def _named_members(self, store: str, prefix: str, recurse: bool,
                       remove_duplicate: bool = True) -> Iterator[Tuple[str, Tensor]]:
        seen = set()
        modules = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) \
            if recurse else [(prefix, self)]
        for module_prefix, module in modules:
            for name, value in getattr(module, store).items():
                if value is None or (remove_duplicate and id(value) in seen):
                    continue
                if remove_duplicate:
                    seen.add(id(value))
                yield module_prefix + ("." if module_prefix else "") + name, value

    def named_parameters(self, prefix: str = "", recurse: bool = True,
                         remove_duplicate: bool = True) -> Iterator[Tuple[str, Parameter]]:
        return self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True,
                      remove_duplicate: bool = True) -> Iterator[Tuple[str, Tensor]]:
        return self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def apply(self, fn: Callable[["Module"], None]) -> "Module":
        for module in self.children():
            module.apply(fn)
        fn(self)
        return self

    # ------------------------------------------------------------------ modes
    def train(self, mode: bool = True) -> "Module":
        if not isinstance(mode, bool):
            raise ValueError("training mode is expected to be boolean")
        # Recurse through children's train() as torch does, so a layer that
        # overrides train() (to drop cached packed weights, say) sees the switch.
        object.__setattr__(self, "training", mode)
        Module._structure_changed()
        for module in self.children():
            module.train(mode)
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> "Module":
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.parameters():
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                p.grad._data[...] = 0.0

    def to(self, *args: Any, **kwargs: Any) -> "Module":
        """Device/dtype moves are no-ops on this CPU float32 engine (accepted for
        torch compatibility); any other dtype is an error."""
        for a in list(args) + list(kwargs.values()):
            if isinstance(a, str) and a.startswith("cpu"):
                continue
            if a is None or np.dtype(a) == np.float32:
                continue
            raise TypeError(f"Module.to: only float32 on cpu is supported, got {a!r}")
        return self

    def cpu(self) -> "Module":
        return self

    def float(self) -> "Module":
        return self

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # ----------------------------------------------------------- state dict
    def state_dict(self, destination: Optional[Dict[str, Any]] = None, prefix: str = "",
                   keep_vars: bool = False) -> "OrderedDict[str, Tensor]":
        """Parameters and persistent buffers by dotted name, in registration order,
        as torch orders them (each module's own entries, then its children), with
        torch's ``_metadata`` (each module's ``version``) and state-dict hooks."""
        for hook in list(self._state_dict_pre_hooks.values()):
            hook(self, prefix, keep_vars)
        if destination is None:
            destination = OrderedDict()
            destination._metadata = OrderedDict()  # type: ignore[attr-defined]
        local_metadata = {"version": self._version}
        if hasattr(destination, "_metadata"):
            destination._metadata[prefix[:-1]] = local_metadata
        self._save_to_state_dict(destination, prefix, keep_vars)
        for name, module in self._modules.items():
            if module is not None:
                module.state_dict(destination=destination, prefix=prefix + name + ".",
                                  keep_vars=keep_vars)
        for hook in list(self._state_dict_hooks.values()):
            result = hook(self, destination, prefix, local_metadata)
            if result is not None:
                if getattr(hook, "_from_public_api", False):
                    raise RuntimeError("state_dict post-hook must return None")
                destination = result
        return destination

    def _save_to_state_dict(self, destination: Dict[str, Any], prefix: str,
                            keep_vars: bool) -> None:
        """This module's own entries (not its children's): what subclasses override, as
        in torch."""
        for name, p in self._parameters.items():
            if p is not None:
                destination[prefix + name] = p if keep_vars else p.detach()
        for name, b in self._buffers.items():
            if b is not None and name not in self._non_persistent_buffers:
                destination[prefix + name] = b if keep_vars else b.detach()
        if type(self).get_extra_state is not Module.get_extra_state:
            destination[prefix + "_extra_state"] = self.get_extra_state()

    def get_extra_state(self) -> Any:
        """Extra state for the state dict (key ``_extra_state``); override it together
        with set_extra_state."""
        raise RuntimeError(
            "Reached a code path in Module.get_extra_state() that should never be called. "
            "Please file an issue at https://github.com/pytorch/pytorch/issues/new?template="
            "bug-report.yml to report this bug.")

    def set_extra_state(self, state: Any) -> None:
        """Receives what get_extra_state returned, from load_state_dict."""
        raise RuntimeError(
            "Reached a code path in Module.set_extra_state() that should never be called. "
            "Please file an issue at https://github.com/pytorch/pytorch/issues/new?template="
            "bug-report.yml to report this bug.")

    def register_state_dict_pre_hook(self, hook: Callable) -> RemovableHandle:
        """hook(module, prefix, keep_vars), before state_dict collects this module."""
        return RemovableHandle(self._state_dict_pre_hooks, hook)

    def register_state_dict_post_hook(self, hook: Callable) -> RemovableHandle:
        """hook(module, state_dict, prefix, local_metadata), after this module and its
        children are in ``state_dict``; it edits the dict in place and returns None."""
        hook._from_public_api = True  # type: ignore[attr-defined]
        return RemovableHandle(self._state_dict_hooks, hook)

    def _register_state_dict_hook(self, hook: Callable) -> RemovableHandle:
        """As register_state_dict_post_hook, but a returned dict replaces the state dict
        (torch's older private form)."""
        if getattr(hook, "_from_public_api", False):
            raise RuntimeError("Cannot register the same function as the state dict post hook "
                               "that was previously registered via "
                               "register_state_dict_post_hook")
        return RemovableHandle(self._state_dict_hooks, hook)

    def _register_load_state_dict_pre_hook(self, hook: Callable,
                                           with_module: bool = False) -> RemovableHandle:
        """hook(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
        error_msgs) before this module loads its entries (the module first with
        ``with_module``); it may edit state_dict (rename keys) in place."""
        call = (lambda *args: hook(self, *args)) if with_module else hook
        return RemovableHandle(self._load_state_dict_pre_hooks, call)

    def register_load_state_dict_pre_hook(self, hook: Callable) -> RemovableHandle:
        """hook(module, state_dict, prefix, local_metadata, strict, missing_keys,
        unexpected_keys, error_msgs) before this module loads its entries."""
        return self._register_load_state_dict_pre_hook(hook, with_module=True)

    def register_load_state_dict_post_hook(self, hook: Callable) -> RemovableHandle:
        """hook(module, incompatible_keys) after this module and its children loaded;
        it may edit incompatible_keys' lists in place (before strict checks them) and
        returns None."""
        return RemovableHandle(self._load_state_dict_post_hooks, hook)

    def load_state_dict(self, state_dict: Dict[str, Any], strict: bool = True,
                        assign: bool = False) -> _IncompatibleKeys:
        """Copy values (pve Tensors, numpy arrays or torch tensors) into this module's
        parameters and buffers, in place, so optimizers and arenas keep their views;
        with ``assign=True`` the values replace them instead (a Parameter keeps its
        requires_grad). Keys are matched module by module as torch does (each child
        sees the entries under its prefix; load hooks and ``_metadata`` versions as
        torch's), so missing/unexpected keys come in torch's order."""
        if not hasattr(state_dict, "items"):
            raise TypeError(f"Expected state_dict to be dict-like, got {type(state_dict).__name__}.")
        missing: List[str] = []
        unexpected: List[str] = []
        errors: List[str] = []
        metadata = getattr(state_dict, "_metadata", None)
        state_dict = OrderedDict(state_dict)
        if metadata is not None:
            state_dict._metadata = metadata  # type: ignore[attr-defined]

        def load(module: "Module", local_state: Dict[str, Any], prefix: str) -> None:
            local_metadata = {} if metadata is None else dict(metadata.get(prefix[:-1], {}))
            if assign:
                local_metadata["assign_to_params_buffers"] = assign
            module._load_from_state_dict(local_state, prefix, local_metadata, True, missing,
                                         unexpected, errors)
            for name, child in module._modules.items():
                if child is not None:
                    child_prefix = prefix + name + "."
                    child_state = OrderedDict((k, v) for k, v in local_state.items()
                                              if k.startswith(child_prefix))
                    if metadata is not None:
                        child_state._metadata = metadata  # type: ignore[attr-defined]
                    load(child, child_state, child_prefix)
            keys = _IncompatibleKeys(missing, unexpected)
            for hook in list(module._load_state_dict_post_hooks.values()):
                if hook(module, keys) is not None:
                    raise AssertionError(
                        "Hooks registered with ``register_load_state_dict_post_hook`` are not "
                        "expected to return new values, if incompatible_keys need to be "
                        "modified, it should be done inplace.")

        load(self, state_dict, "")
        if strict:
            if unexpected:
                errors.insert(0, "Unexpected key(s) in state_dict: "
                              + ", ".join(f'"{k}"' for k in unexpected) + ". ")
            if missing:
                errors.insert(0, "Missing key(s) in state_dict: "
                              + ", ".join(f'"{k}"' for k in missing) + ". ")
        if errors:
            raise StateDictError(
                f"Error(s) in loading state_dict for {type(self).__name__}:\n\t" + "\n\t".join(errors)
            )
        return _IncompatibleKeys(missing, unexpected)

    def _load_from_state_dict(self, state_dict: Dict[str, Any], prefix: str,
                              local_metadata: Dict[str, Any], strict: bool,
                              missing_keys: List[str], unexpected_keys: List[str],
                              error_msgs: List[str]) -> None:
        """This module's own entries (not its children's), torch's signature and rules:
        what subclasses override to read old layouts."""
        for hook in list(self._load_state_dict_pre_hooks.values()):
            hook(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                 error_msgs)
        assign = bool(local_metadata.get("assign_to_params_buffers", False))
        local = [(n, p) for n, p in self._parameters.items() if p is not None]
        local += [(n, b) for n, b in self._buffers.items()
                  if b is not None and n not in self._non_persistent_buffers]
        for name, target in local:
            key = prefix + name
            if key not in state_dict:
                if strict:
                    missing_keys.append(key)
                continue
            value = state_dict[key]
            source = _as_array(value)
            if source.shape != target.shape:
                error_msgs.append(
                    f"size mismatch for {key}: copying a param with shape {tuple(source.shape)} "
                    f"from checkpoint, the shape in current model is {tuple(target.shape)}."
                )
                continue
            if source.dtype.kind not in "fiub":
                error_msgs.append(f"unsupported dtype {source.dtype} for {key}")
                continue
            if assign:
                self._assign_state(name, target, value, source)
            else:
                np.copyto(target._data, source, casting="unsafe")
                target._bump_version()
        extra_key = prefix + "_extra_state"
        if type(self).set_extra_state is not Module.set_extra_state:
            if extra_key in state_dict:
                self.set_extra_state(state_dict[extra_key])
            elif strict:
                missing_keys.append(extra_key)
        elif strict and extra_key in state_dict:
            unexpected_keys.append(extra_key)
        if not strict:
            return
        # Keys under this prefix that are neither this module's entries nor (dotted)
        # under one of its children: "child" alone, or "weight.x", is unexpected.
        local_names = {n for n, _ in local}
        for key in state_dict.keys():
            if isinstance(key, str) and key.startswith(prefix) and key != extra_key:
                parts = key[len(prefix):].split(".", 1)
                if (parts[0] not in self._modules) if len(parts) > 1 \
                        else (parts[0] not in local_names):
                    unexpected_keys.append(key)

    def _assign_state(self, name: str, target: Tensor, value: Any, source: np.ndarray) -> None:
        """load_state_dict(assign=True): the checkpoint's tensor (converted to the
        engine's dtype of the entry if needed) becomes the parameter or buffer."""
        if isinstance(target, Parameter):
            if isinstance(value, Parameter) and value.dtype == target.dtype:
                value.requires_grad_(target.requires_grad)
                new: Tensor = value
            else:
                new = Parameter(np.ascontiguousarray(source, dtype=target.dtype),
                                requires_grad=target.requires_grad)
            self._parameters[name] = new
        else:
            if isinstance(value, Tensor) and value.dtype == target.dtype:
                new = value
            else:
                new = Tensor(np.ascontiguousarray(source, dtype=target.dtype))
            self._buffers[name] = new
        Module._structure_changed()

    # ------------------------------------------------------------------ arena
    def to_flat(self) -> ParameterArena:
        """Lay out all parameters that require grad in one parameter arena.

        Each parameter keeps its identity and becomes a view into the arena;
        gradients accumulate into the arena's gradient buffer."""
        arena = ParameterArena(p for p in self.parameters() if p.requires_grad)
        object.__setattr__(self, "_arena", arena)
        return arena

    # ------------------------------------------------------------------- repr
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = []
        extra = self.extra_repr()
        if extra:
            lines = extra.split("\n")
        for name, module in self._modules.items():
            text = repr(module).replace("\n", "\n  ")
            lines.append(f"({name}): {text}")
        main = type(self).__name__ + "("
        if lines:
            if len(lines) == 1 and not self._modules:
                main += lines[0]
            else:
                main += "\n  " + "\n  ".join(lines) + "\n"
        return main + ")"

    def __dir__(self) -> List[str]:
        return sorted(set(super().__dir__()) | set(self._parameters) | set(self._buffers)
                      | set(self._modules))


class _HookHandle(RemovableHandle):
    """A module hook's handle: it also drops the hook's id from the module's
    bookkeeping sets (with_kwargs, always_call), and any change to a module's hooks
    counts as a change of structure (the fused paths skip modules with hooks)."""

    def __init__(self, hooks: "OrderedDict[int, Callable]", hook: Callable,
                 prepend: bool = False, extra_sets: Tuple[Set[int], ...] = ()) -> None:
        super().__init__(hooks, hook, prepend)
        self._extra_sets = extra_sets
        Module._structure_changed()

    def remove(self) -> None:
        super().remove()
        for ids in self._extra_sets:
            ids.discard(self.id)
        Module._structure_changed()


class _HookPoint(Function):
    """Identity whose backward hands the gradient to a hook runner (a bound method
    of _BackwardHooks: at the module's output or at its input) and passes on what
    the hooks make of it."""

    @staticmethod
    def forward(ctx, x, run_hooks):
        ctx.run_hooks = run_hooks
        return x

    @staticmethod
    def backward(ctx, g):
        return ctx.run_hooks(g), None


def _hook_tuple(result: Any, expected: int, what: str, hook: Callable) -> Tuple[Any, ...]:
    """A hook's replacement gradients: a tuple of the expected length, as torch requires."""
    if not isinstance(result, tuple) or len(result) != expected:
        got = f"{len(result)}" if isinstance(result, tuple) else f"a {type(result).__name__}"
        raise RuntimeError(f"backward hook {getattr(hook, '__name__', hook)!r} returned an "
                           f"invalid number of {what}: got {got}, expected a tuple of {expected}")
    return result


class _BackwardHooks:
    """One call of a module with full backward (pre-)hooks: its input that requires
    grad and its output pass through identity nodes, whose backward runs the hooks
    with the gradients w.r.t. them (torch's BackwardHook, for one such input)."""

    def __init__(self, module: "Module", args: Tuple[Any, ...]) -> None:
        self.module = module
        self.n_args = len(args)
        wanted = [i for i, a in enumerate(args) if isinstance(a, Tensor) and a.requires_grad]
        if len(wanted) > 1:
            raise NotImplementedError(
                f"{type(module).__name__}: full backward hooks on a module with more than one "
                f"input that requires grad (inputs {wanted}) are not supported")
        self.index = wanted[0] if wanted else None
        self.grad_output: Tuple[Any, ...] = ()

    def wrap_inputs(self, args: Tuple[Any, ...]) -> Tuple[Any, ...]:
        if self.index is None:
            return args
        args = list(args)
        args[self.index] = _HookPoint.apply(args[self.index], self.input_gradient)
        return tuple(args)

    def wrap_output(self, output: Any) -> Any:
        if isinstance(output, Tensor) and output.requires_grad:
            return _HookPoint.apply(output, self.output_gradient)
        if isinstance(output, Tensor) or output is None:
            return output  # nothing to differentiate: the hooks never run, as in torch
        raise NotImplementedError(f"{type(self.module).__name__}: full backward hooks need "
                                  f"a single Tensor output, got {type(output).__name__}")

    def output_gradient(self, g: np.ndarray) -> np.ndarray:
        grad_output: Tuple[Any, ...] = (Tensor._wrap(g),)
        for hook in list(self.module._backward_pre_hooks.values()):
            result = hook(self.module, grad_output)
            if result is not None:
                grad_output = _hook_tuple(result, 1, "grad_output", hook)
        self.grad_output = grad_output
        if self.index is None:  # no input gradient will come: the hooks run now
            self._run_hooks((None,) * self.n_args)
        return _replacement_grad(grad_output[0], g,
                                 f"{type(self.module).__name__} backward pre-hook")

    def input_gradient(self, g: np.ndarray) -> np.ndarray:
        grad_input = tuple(Tensor._wrap(g) if i == self.index else None
                           for i in range(self.n_args))
        grad_input = self._run_hooks(grad_input)
        new = grad_input[self.index]
        return None if new is None else _replacement_grad(
            new, g, f"{type(self.module).__name__} backward hook")

    def _run_hooks(self, grad_input: Tuple[Any, ...]) -> Tuple[Any, ...]:
        for hook in list(self.module._backward_hooks.values()):
            result = hook(self.module, grad_input, self.grad_output)
            if result is not None:
                grad_input = _hook_tuple(result, self.n_args, "grad_input", hook)
        return grad_input
