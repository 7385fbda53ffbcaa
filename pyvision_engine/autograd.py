"""Reverse-mode automatic differentiation: grad mode, Function, the backward pass.

Every differentiable op is a ``Function`` subclass whose ``forward`` takes and
returns numpy arrays and whose ``backward`` maps the output gradient to one
gradient per positional input. ``Function.apply`` wraps the result in a
``Tensor`` and, when gradients are needed, records the call as a tape node.
``backward`` walks the nodes reachable from a root in reverse topological
order, summing gradients that meet and accumulating into leaf ``.grad``.
"""

from __future__ import annotations

import functools
import threading
import weakref
from collections import OrderedDict
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import numpy as np

from pyvision_engine import _C

__all__ = [
    "Function",
    "no_grad",
    "enable_grad",
    "set_grad_enabled",
    "is_grad_enabled",
    "backward",
    "RemovableHandle",
]


class _GradMode(threading.local):
    # Thread-local, as in torch: a server thread under no_grad does not turn
    # recording off for a training thread.
    def __init__(self) -> None:
        self.enabled = True


_grad_mode = _GradMode()


def is_grad_enabled() -> bool:
    """True when ops record the tape (the default)."""
    return _grad_mode.enabled


class _GradModeContext:
    """Base of no_grad / enable_grad / set_grad_enabled: context manager and decorator."""

    _target: bool

    def __enter__(self) -> "_GradModeContext":
        self._previous = _grad_mode.enabled
        _grad_mode.enabled = self._target
        return self

    def __exit__(self, *exc: Any) -> None:
        _grad_mode.enabled = self._previous

    def __call__(self, func: Callable) -> Callable:
        target = self._target

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            previous = _grad_mode.enabled
            _grad_mode.enabled = target
            try:
                return func(*args, **kwargs)
            finally:
                _grad_mode.enabled = previous

        return wrapper


class no_grad(_GradModeContext):
    """Disable gradient recording: ``with pve.no_grad():`` or ``@pve.no_grad()``."""

    _target = False


class inference_mode(no_grad):
    """torch.inference_mode: no recording, like ``no_grad`` (here results are
    ordinary tensors). ``inference_mode(False)`` leaves the grad mode as it is.
    Context manager or decorator, with or without the call parentheses."""

    def __new__(cls, mode: Any = True) -> Any:
        if callable(mode):  # bare @pve.inference_mode
            return cls()(mode)
        return super().__new__(cls)

    def __init__(self, mode: bool = True) -> None:
        self._mode = bool(mode)

    @property
    def _target(self) -> bool:  # read when entered / called
        return False if self._mode else _grad_mode.enabled

    def __call__(self, func: Callable) -> Callable:
        return super().__call__(func) if self._mode else func


class enable_grad(_GradModeContext):
    """Enable gradient recording inside a ``no_grad`` region."""

    _target = True


class set_grad_enabled(_GradModeContext):
    """Set recording on or off; usable as a function, context manager or decorator."""

    def __init__(self, mode: bool) -> None:
        # Takes effect at once, so a plain call works like torch's.
        self._target = bool(mode)
        self._previous = _grad_mode.enabled
        _grad_mode.enabled = self._target

    def __enter__(self) -> "set_grad_enabled":
        return self

    def __call__(self, func: Callable) -> Callable:
        _grad_mode.enabled = self._previous  # as a decorator it applies per call only
        return super().__call__(func)


class RemovableHandle:
    """torch's RemovableHandle: puts ``hook`` in ``hooks`` (first with ``prepend``)
    under a fresh id; ``remove()`` takes it out, or use the handle as a context
    manager. Tensor hooks and Module hooks (nn.module's subclass) alike."""

    _next_id = 0

    def __init__(self, hooks: "OrderedDict[int, Callable]", hook: Callable,
                 prepend: bool = False) -> None:
        RemovableHandle._next_id += 1
        self.id = RemovableHandle._next_id
        self._hooks = hooks
        hooks[self.id] = hook
        if prepend:
            hooks.move_to_end(self.id, last=False)

    def remove(self) -> None:
        self._hooks.pop(self.id, None)

    def __enter__(self) -> "RemovableHandle":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()


# Tensor hooks, by id(tensor), kept out of Tensor's slots so that creating a
# tensor (every op) pays nothing for them; an entry leaves with its tensor.
#   _grad_hooks: hook(grad) -> Tensor or None (Tensor.register_hook)
#   _post_accumulate_hooks: hook(tensor) after a leaf's .grad was updated
_grad_hooks: Dict[int, "OrderedDict[int, Callable]"] = {}
_post_accumulate_hooks: Dict[int, "OrderedDict[int, Callable]"] = {}


def _add_hook(registry: Dict[int, "OrderedDict[int, Callable]"], tensor: Any,
              hook: Callable) -> RemovableHandle:
    key = id(tensor)
    hooks = registry.get(key)
    if hooks is None:
        hooks = registry[key] = OrderedDict()
        weakref.finalize(tensor, registry.pop, key, None)
    return RemovableHandle(hooks, hook)


def _replacement_grad(value: Any, like: np.ndarray, who: str) -> np.ndarray:
    """A gradient that hook ``who`` returned (Tensor or array) in place of ``like``:
    same shape (torch's error otherwise), ``like``'s dtype, contiguous."""
    from pyvision_engine.tensor import Tensor

    new = np.asarray(value._data if isinstance(value, Tensor) else value)
    if new.shape != like.shape:
        raise RuntimeError(f"hook '{who}' has changed the size of value: expected "
                           f"{like.shape}, got {new.shape}")
    return np.ascontiguousarray(new, dtype=like.dtype)


def _run_grad_hooks(hooks: "OrderedDict[int, Callable]", grad: np.ndarray) -> np.ndarray:
    """grad through each hook in registration order; a returned value replaces it."""
    from pyvision_engine.tensor import Tensor

    for hook in list(hooks.values()):
        result = hook(Tensor._wrap(grad))
        if result is not None:
            grad = _replacement_grad(result, grad, getattr(hook, "__name__", repr(hook)))
    return grad


class Function:
    """A differentiable op. Subclasses define static ``forward`` and ``backward``.

    ``forward(ctx, *args)`` receives numpy arrays in place of Tensors and
    returns one numpy array; ``backward(ctx, grad)`` returns a tuple with one
    gradient (numpy array or None) per positional argument of ``forward``.
    ``ctx`` is the node itself: store what backward needs on it, and use
    ``ctx.needs_input_grad`` to skip gradients nobody asked for.

    ``owns_grads = True`` declares that backward returns newly allocated
    arrays that nothing else references; a leaf then takes such a gradient
    without a copy (torch's AccumulateGrad steals a uniquely owned gradient
    the same way). For large activations the copy costs as much as the kernel.

    ``saved_inputs`` names the positional arguments whose values backward reads:
    a tuple, or a function of ``needs_input_grad`` giving one (for ops that read an
    input only for another's gradient), or None (not declared: every Tensor
    argument counts). ``saves_output`` says whether backward reads the op's own
    output (None: not declared; an in-place op on the output then leaves the node
    a copy of what it saved). Such a tensor changed in place after the op recorded
    it is an error in backward, as torch's saved-tensor version check.
    """

    owns_grads = False
    saved_inputs: Any = None
    saves_output: Optional[bool] = None

    @staticmethod
    def forward(ctx: "Function", *args: Any, **kwargs: Any) -> np.ndarray:
        raise NotImplementedError

    @staticmethod
    def backward(ctx: "Function", grad: np.ndarray) -> Tuple[Optional[np.ndarray], ...]:
        raise NotImplementedError

    @classmethod
    def apply(cls, *args: Any, **kwargs: Any) -> "Tensor":
        from pyvision_engine.tensor import Tensor

        # A plain loop, no generator expressions: this runs for every op, and
        # each generator is an object and a frame to build (measured: 1.5 us
        # per op hot, 13 us with cold caches, as after a large layer).
        ctx = cls.__new__(cls)
        arrays = list(args)
        record = False
        for i, a in enumerate(args):
            if isinstance(a, Tensor):
                arrays[i] = a._data
                record = record or a.requires_grad
        record = record and _grad_mode.enabled
        if record:
            inputs = []
            # The producers as they are now: an input changed in place later gets a new
            # node, but this op's gradient still goes to the one that made its value.
            nodes = []
            for a in args:
                if isinstance(a, Tensor) and a.requires_grad:
                    inputs.append(a)
                    nodes.append(a._node)
                else:
                    inputs.append(None)
                    nodes.append(None)
            needs = ctx.needs_input_grad = tuple([a is not None for a in inputs])
        else:
            ctx.needs_input_grad = (False,) * len(args)
        ctx._released = False
        result = cls.forward(ctx, *arrays, **kwargs)
        out = Tensor._wrap(result)
        if record:
            ctx.inputs = tuple(inputs)
            ctx.input_nodes = tuple(nodes)
            # Versions of the tensors backward reads (after forward, which may write).
            watched = cls.saved_inputs
            if watched is None:
                stamps = [(a, _stamp(a)) for a in args if isinstance(a, Tensor)]
            else:
                if watched.__class__ is not tuple:
                    watched = watched(needs)
                stamps = [(args[i], _stamp(args[i])) for i in watched
                          if isinstance(args[i], Tensor)] if watched else None
            if stamps:
                ctx._stamps = stamps
            if cls.saves_output:
                shared = out._share_changes()
                ctx._out_stamp = (shared, shared.writes)
            object.__setattr__(out, "requires_grad", True)  # float32 by construction
            out._node = ctx
        return out

    @property
    def name(self) -> str:
        return type(self).__name__

    def __repr__(self) -> str:
        return f"<{self.name}Backward>"

    def _release(self) -> None:
        # Drop saved arrays so a graph that was backpropagated frees its memory.
        inputs, nodes = self.inputs, self.input_nodes
        self.__dict__.clear()
        self.inputs, self.input_nodes = inputs, nodes
        self._released = True

    def _check_versions(self) -> None:
        """torch's saved-tensor check: an input (or the output) whose values backward
        reads was changed in place after this op recorded it."""
        for t, version in self.__dict__.get("_stamps", ()):
            now = _stamp(t)
            if now != version:
                raise RuntimeError(
                    "one of the variables needed for gradient computation has been modified "
                    f"by an inplace operation: [{_type_name(t._data.dtype)} "
                    f"{list(t._data.shape)}], an input of {self.name}Backward, is at version "
                    f"{now}; expected version {version} instead. Compute on a copy "
                    "(clone()) or use the out-of-place operation."
                )
        out_stamp = self.__dict__.get("_out_stamp")
        if out_stamp is not None and out_stamp[0].writes != out_stamp[1]:
            raise RuntimeError(
                "one of the variables needed for gradient computation has been modified by "
                f"an inplace operation: output 0 of {self.name}Backward is at version "
                f"{out_stamp[0].writes}; expected version {out_stamp[1]} instead. Compute on "
                "a copy (clone()) or use the out-of-place operation."
            )


def _stamp(t: Any) -> int:
    """How many in-place writes reached ``t``'s memory: its own and, through the
    record they share, those of its views (torch's version counter)."""
    shared = t._shared
    return t._version if shared is None else t._version + shared.writes


def _type_name(dtype: np.dtype) -> str:
    return {"float32": "FloatTensor", "int64": "LongTensor", "bool": "BoolTensor"}.get(
        str(dtype), str(dtype))


def _topological_order(root: Function) -> list:
    """Nodes reachable from root, each listed after every node that consumes it."""
    order: list = []
    visited = set()
    stack = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if children_done:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        for n in node.input_nodes:
            if n is not None and id(n) not in visited:
                stack.append((n, False))
    order.reverse()
    return order


def _accumulate_into_leaf(leaf: "Tensor", grad: np.ndarray, owned: bool = False) -> None:
    from pyvision_engine.tensor import Tensor

    if grad.shape != leaf._data.shape:
        raise RuntimeError(
            f"backward: gradient of shape {grad.shape} does not match the leaf's shape "
            f"{leaf._data.shape}"
        )
    if leaf.grad is None:
        slot = leaf._grad_slot  # a view into a gradient arena, if the leaf has one
        if slot is not None:
            np.copyto(slot, grad)
            leaf.grad = Tensor._wrap(slot)
        elif (owned and grad.dtype == leaf._data.dtype and grad.base is None
              and grad.flags.c_contiguous and grad.flags.writeable):
            leaf.grad = Tensor._wrap(grad)  # fresh and unshared (Function.owns_grads)
        else:
            # Copy: backward functions may hand the same array to several inputs.
            leaf.grad = Tensor._wrap(np.array(grad, dtype=leaf._data.dtype, copy=True))
    else:
        # In place, so a gradient that lives in an arena stays there.
        leaf.grad._data += grad
    if _post_accumulate_hooks:
        hooks = _post_accumulate_hooks.get(id(leaf))
        if hooks:
            for hook in list(hooks.values()):
                hook(leaf)


def backward(
    root: "Tensor", gradient: Optional[Any] = None, retain_graph: Optional[bool] = None
) -> None:
    """Accumulate d(root)/d(leaf) into the ``.grad`` of every leaf that requires it."""
    from pyvision_engine.tensor import Tensor

    if not root.requires_grad:
        raise RuntimeError(
            "element 0 of tensors does not require grad and does not have a grad_fn"
        )
    if gradient is None:
        if root._data.size != 1:
            raise RuntimeError("grad can be implicitly created only for scalar outputs")
        grad = np.ones_like(root._data)
    else:
        grad = np.asarray(gradient._data if isinstance(gradient, Tensor) else gradient,
                          dtype=root._data.dtype)
        if grad.shape != root._data.shape:
            raise RuntimeError(
                f"backward: gradient has shape {grad.shape}, but the output has shape "
                f"{root._data.shape}"
            )
    if root._node is None:  # a leaf
        hooks = _grad_hooks.get(id(root)) if _grad_hooks else None
        _accumulate_into_leaf(root, _run_grad_hooks(hooks, grad) if hooks else grad)
        return
    order = _topological_order(root._node)
    pending = {id(root._node): grad}
    # Leaves with gradient hooks: their contributions are summed first, so that
    # each hook runs once with the whole gradient, as torch's.
    hooked_leaves: Dict[int, list] = {}
    for node in order:
        g = pending.pop(id(node), None)
        if g is None:
            continue
        if node._released:
            raise RuntimeError(
                "Trying to backward through the graph a second time (or directly access "
                "saved tensors after they have already been freed). Specify "
                "retain_graph=True if you need to backward through the graph a second time."
            )
        node_dict = node.__dict__
        if "_stamps" in node_dict or "_out_stamp" in node_dict:
            node._check_versions()
        hooked_ref = node.__dict__.get("_hooked_tensor")  # a non-leaf output with hooks
        hooked = hooked_ref() if hooked_ref is not None else None
        if hooked is not None:
            hooks = _grad_hooks.get(id(hooked))
            if hooks:
                g = _run_grad_hooks(hooks, g)
            if hooked._retains_grad and hooked._node is node:  # (after the hooks, as torch's)
                _accumulate_into_leaf(hooked, g)
        input_grads = type(node).backward(node, g)
        if not isinstance(input_grads, tuple):
            input_grads = (input_grads,)
        if len(input_grads) != len(node.inputs):
            raise RuntimeError(
                f"{node.name}.backward returned {len(input_grads)} gradients, "
                f"expected {len(node.inputs)}"
            )
        owns = type(node).owns_grads
        for t, n, gi in zip(node.inputs, node.input_nodes, input_grads):
            if t is None or gi is None:
                continue
            if n is None:  # a leaf
                if _grad_hooks and id(t) in _grad_hooks:
                    entry = hooked_leaves.get(id(t))
                    if entry is None:
                        hooked_leaves[id(t)] = [t, gi]
                    else:
                        entry[1] = entry[1] + gi
                    continue
                # An array handed to two inputs is not owned by either.
                _accumulate_into_leaf(t, gi, owns and sum(g is gi for g in input_grads) == 1)
                continue
            if t._retains_grad and t._node is n and "_hooked_tensor" not in n.__dict__:
                _accumulate_into_leaf(t, gi)
            key = id(n)
            pending[key] = add_arrays(pending[key], gi) if key in pending else gi
        if not retain_graph:
            node._release()
    for leaf, g in hooked_leaves.values():
        hooks = _grad_hooks.get(id(leaf))
        _accumulate_into_leaf(leaf, _run_grad_hooks(hooks, g) if hooks else g)


# float32 sums of at least this many elements run on the threaded add kernel
# (numpy's add runs on one thread); below it the call costs more than it saves.
_THREADED_ADD_MIN = 1 << 15
_ADD = 10  # activation code "identity": add_activation_forward is then a + b


def add_arrays(a: Any, b: Any) -> Any:
    """a + b; same-shape contiguous float32 arrays (a residual block's two gradient
    contributions, its sum forward) on the threaded kernel, with numpy's exactly
    rounded result."""
    if (type(a) is np.ndarray and type(b) is np.ndarray and a.dtype == np.float32
            and b.dtype == np.float32 and a.shape == b.shape and a.size >= _THREADED_ADD_MIN
            and a.flags.c_contiguous and b.flags.c_contiguous):
        out = np.empty(a.shape, np.float32)
        _C.add_activation_forward(_ADD, a, b, out)
        return out
    return a + b


def _unbroadcast(grad: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Sum ``grad`` down to ``shape``, undoing numpy broadcasting."""
    if grad.shape == tuple(shape):
        return grad
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)
