"""Optimizer base: torch.optim.Optimizer's API over fused C++ update kernels.

Layout. Each parameter group's parameters are moved into one
:class:`~pyvision_engine.nn.arena.ParameterArena` when the group is added
(parameters keep their identity and become views; autograd then accumulates
gradients straight into the arena's gradient buffer). At the group's first
step its state tensors (``exp_avg`` ...) are allocated as ONE aligned buffer of
shape ``(num_state_tensors, arena.size)`` with the arena's layout, each
per-parameter state tensor a view into it, and the per-parameter scalar states
(``step``, NAdam's ``mu_product``) as one float32 array per group whose 0-d
views appear in ``state[p]``.

A step is then ONE kernel call over the group's whole buffers when every
parameter of the group has its gradient in the arena and the same step count;
otherwise one call per parameter that has a gradient (parameters whose
``grad`` is None are skipped, as torch does). Both paths run the same
element-wise arithmetic, so they give bit-identical results.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from pyvision_engine.autograd import enable_grad
from pyvision_engine.nn.arena import ParameterArena, aligned_empty
from pyvision_engine.nn.parameter import UninitializedTensorMixin
from pyvision_engine.optim import _validate as V
from pyvision_engine.tensor import Tensor

__all__ = ["Optimizer", "required"]

ParamsT = Union[Iterable[Tensor], Iterable[Dict[str, Any]]]


class _RequiredParameter:
    """Marks a hyperparameter that has no default (torch.optim.optimizer.required)."""

    def __repr__(self) -> str:
        return "<required parameter>"


required = _RequiredParameter()


def _uninitialized(p: Tensor) -> bool:
    """A lazy module's parameter before its first forward (no shape, no values yet)."""
    return isinstance(p, UninitializedTensorMixin)


def _as_array(value: Any) -> np.ndarray:
    """numpy view/copy of a state value: pve Tensor, numpy array, torch tensor or number."""
    if isinstance(value, Tensor):
        return value._data
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor
        return np.asarray(value.detach().cpu().numpy())
    return np.asarray(value)


class _GroupLayout:
    """Arena, state buffer and scalar-state arrays of one parameter group."""

    def __init__(self, params: Sequence[Tensor]) -> None:
        self.arena = ParameterArena(params)
        self.params: List[Tensor] = list(self.arena.params)
        self.data_views = [p._data for p in self.params]
        self.grad_views = [p._grad_slot for p in self.params]
        self.size = self.arena.size
        # State tensors: rows of one buffer; filled at the first step.
        self.rows: Dict[str, int] = {}
        self.state_buf: Optional[np.ndarray] = None
        # Scalar states: one float32 entry per parameter (torch keeps them as
        # float32 tensors, so they round like torch's).
        self.scalars: Dict[str, np.ndarray] = {}
        self.initialized = np.zeros(len(self.params), dtype=bool)

    # -------------------------------------------------------------- state buffer
    def ensure_rows(self, spec: Sequence[Tuple[str, float]]) -> bool:
        """Make sure every (key, fill) in ``spec`` has a row; True when rows were added."""
        missing = [(k, v) for k, v in spec if k not in self.rows]
        if not missing:
            return False
        old, old_rows = self.state_buf, dict(self.rows)
        count = len(old_rows) + len(missing)
        buf = aligned_empty(count * self.size).reshape(count, self.size) if self.size else \
            np.zeros((count, 0), dtype=np.float32)
        for key, row in old_rows.items():
            buf[row] = old[row]
        for j, (key, fill) in enumerate(missing):
            row = len(old_rows) + j
            self.rows[key] = row
            if fill != 0.0:
                buf[row].fill(fill)
        self.state_buf = buf
        return True

    def ensure_scalar(self, key: str, init: float) -> np.ndarray:
        if key not in self.scalars:
            self.scalars[key] = np.full(len(self.params), init, dtype=np.float32)
        return self.scalars[key]

    def state_view(self, key: str, i: int) -> np.ndarray:
        start, size = self.arena.offsets[i]
        return self.state_buf[self.rows[key], start:start + size].reshape(self.params[i].shape)

    def flat_state(self, key: str, i: Optional[int]) -> np.ndarray:
        """The whole row (i None) or one parameter's flat slice of a state tensor."""
        row = self.state_buf[self.rows[key]]
        if i is None:
            return row
        start, size = self.arena.offsets[i]
        return row[start:start + size]

    def owns_all(self) -> bool:
        """Every parameter still lives in this arena and has its gradient there."""
        for p, data, slot in zip(self.params, self.data_views, self.grad_views):
            g = p.grad
            if p._data is not data or g is None or g._data is not slot:
                return False
        return True


class Optimizer:
    """Base class of all optimizers (torch.optim.Optimizer semantics).

    Args:
        params: an iterable of Tensors, or of dicts with a ``'params'`` key and
            per-group hyperparameters that override ``defaults``.
        defaults: default hyperparameters for every group.

    Subclasses declare their state with :meth:`_tensor_state_spec` (tensor
    states and their initial fill), ``_scalar_state`` (scalar states and their
    initial values), and implement :meth:`_update`, which advances the scalar
    states and calls the fused kernel on flat float32 arrays.
    """

    _scalar_state: Dict[str, float] = {"step": 0.0}

    def __init__(self, params: ParamsT, defaults: Dict[str, Any]) -> None:
        if isinstance(params, Tensor):
            raise TypeError(
                "params argument given to the optimizer should be an iterable of Tensors or "
                f"dicts, but got {type(params).__name__}"
            )
        self.defaults: Dict[str, Any] = defaults
        # A defaultdict as torch's: opt.state[p] is {} for a parameter without state.
        self.state: Dict[Tensor, Dict[str, Any]] = defaultdict(dict)
        self.param_groups: List[Dict[str, Any]] = []
        self._layouts: List[Optional[_GroupLayout]] = []
        param_list = list(params)
        if len(param_list) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(param_list[0], dict):
            param_list = [{"params": param_list}]
        for group in param_list:
            self.add_param_group(group)

    def __repr__(self) -> str:
        # torch's text exactly (each group opens with a newline, so a blank
        # line separates groups); scheduler error messages embed it.
        text = type(self).__name__ + " ("
        for i, group in enumerate(self.param_groups):
            text += f"\nParameter Group {i}\n"
            for key in sorted(group):
                if key != "params":
                    text += f"    {key}: {group[key]}\n"
        return text + ")"

    # ---------------------------------------------------------------- groups
    def add_param_group(self, param_group: Dict[str, Any]) -> None:
        """Add a group of parameters (a dict with ``'params'`` and optional options).

        Raises ValueError when a parameter is already in another group or a
        required option is missing; TypeError for a set or a non-Tensor."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group).__name__}")
        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, set):
            raise TypeError(
                "optimizer parameters need to be organized in ordered collections, but the "
                "ordering of tensors in sets will change between runs. Please use a list instead."
            )
        else:
            params = list(params)
        names = [p[0] for p in params if isinstance(p, tuple)]
        params = [p[1] if isinstance(p, tuple) else p for p in params]
        if names:
            if len(names) != len(params):
                raise ValueError(
                    "all optimizer params should be with/without names. Some param names are missing"
                )
            param_group["param_names"] = names
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(
                    "optimizer can only optimize Tensors, but one of the params is "
                    + type(p).__name__
                )
            if not self.defaults.get("differentiable", None) and not p.is_leaf:
                raise ValueError("can't optimize a non-leaf Tensor")
            if p.dtype != np.float32:
                raise TypeError(f"optimizer: parameters must be float32, got {p.dtype}")
        for name, default in self.defaults.items():
            if default is required and name not in param_group:
                raise ValueError(
                    "parameter group didn't specify a value of required optimization "
                    f"parameter {name}"
                )
            param_group.setdefault(name, default)
        if len({id(p) for p in params}) != len(params):
            warnings.warn(
                "optimizer contains a parameter group with duplicate parameters; "
                "in future, this will cause an error; "
                "see github.com/pytorch/pytorch/issues/40967 for more information",
                stacklevel=3,
            )
        for group in self.param_groups:
            if ("param_names" in param_group) != ("param_names" in group):
                current = "with names" if "param_names" in param_group else "without names"
                raise ValueError(
                    "all optimizer param groups should be with/without names. "
                    f"cannot add param group {current} to the optimizer"
                )
        existing = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in existing for p in params):
            raise ValueError("some parameters appear in more than one parameter group")
        # Duplicates inside one group: torch warns (above); the arena keeps one copy.
        unique: List[Tensor] = []
        seen = set()
        for p in params:
            if id(p) not in seen:
                seen.add(id(p))
                unique.append(p)
        param_group["params"] = unique
        self._layouts.append(None if any(map(_uninitialized, unique)) else _GroupLayout(unique))
        self.param_groups.append(param_group)

    def _layout(self, index: int) -> Optional[_GroupLayout]:
        """The layout of group ``index``; rebuilt if the user replaced its param list.
        None while the group holds a lazy module's uninitialized parameter: torch
        accepts those (they have no gradient, so a step skips them), and the arena is
        laid out once the first forward has given them their shapes."""
        group, lay = self.param_groups[index], self._layouts[index]
        params = group["params"]
        if lay is None or len(params) != len(lay.params) or \
                any(a is not b for a, b in zip(params, lay.params)):
            if any(map(_uninitialized, params)):
                self._layouts[index] = None
                return None
            lay = _GroupLayout(params)
            self._layouts[index] = lay
            for i, p in enumerate(lay.params):
                if p in self.state:
                    self._adopt_state(lay, i, self.state.pop(p))
        return lay

    # ----------------------------------------------------------------- state
    def _tensor_state_spec(self, group: Dict[str, Any]) -> List[Tuple[str, float]]:
        """(key, initial fill) of each per-parameter state tensor, for this group's options."""
        return []

    def _scalar_init(self, group: Dict[str, Any]) -> Dict[str, float]:
        """Initial value of each scalar state for a parameter of this group (in
        the order torch's state lists them); ASGD's eta starts at the group's lr."""
        return self._scalar_state

    def _register_state(self, lay: _GroupLayout, i: int) -> None:
        """Point state[p] at the layout's views for parameter i."""
        p = lay.params[i]
        entry: Dict[str, Any] = {}
        for key, arr in lay.scalars.items():
            entry[key] = Tensor._wrap(arr[i:i + 1].reshape(()))
        for key in lay.rows:
            if self._exposes_state(key, lay, i):
                entry[key] = Tensor._wrap(lay.state_view(key, i))
        if entry:
            self.state[p] = entry
        else:  # torch keeps no entry for a stateless parameter (SGD without momentum)
            self.state.pop(p, None)

    def _exposes_state(self, key: str, lay: _GroupLayout, i: int) -> bool:
        return True

    def _prepare_group(self, index: int, group: Dict[str, Any], idxs: Sequence[int]) -> _GroupLayout:
        """Allocate state rows/scalars for the group's options and init params in ``idxs``."""
        lay = self._layout(index)
        spec = self._tensor_state_spec(group)
        grown = lay.ensure_rows(spec)
        scalar_init = self._scalar_init(group)
        for key, init in scalar_init.items():
            lay.ensure_scalar(key, init)
        for i in idxs:
            if not lay.initialized[i]:
                # Fresh state: the views already hold the initial fill unless an
                # earlier per-tensor path touched them (never before init).
                for key, fill in spec:
                    lay.flat_state(key, i).fill(fill)
                for key, init in scalar_init.items():
                    lay.scalars[key][i] = init
                lay.initialized[i] = True
                self._register_state(lay, i)
        if grown:  # new rows: refresh the views of already-initialized params
            for i in np.flatnonzero(lay.initialized):
                self._register_state(lay, int(i))
        return lay

    def _adopt_state(self, lay: _GroupLayout, i: int, entry: Dict[str, Any]) -> None:
        """Copy a saved per-parameter state dict into the layout (load_state_dict)."""
        group = self.param_groups[self._layouts.index(lay)]
        spec = list(self._tensor_state_spec(group))
        extra = [(k, 0.0) for k in entry
                 if k not in self._scalar_state and k not in dict(spec) and entry[k] is not None
                 and np.ndim(_as_array(entry[k])) > 0]
        lay.ensure_rows(spec + extra)
        for key, init in self._scalar_state.items():
            lay.ensure_scalar(key, init)
        for key, value in entry.items():
            if value is None:
                continue
            arr = _as_array(value)
            if key in self._scalar_state:
                lay.scalars[key][i] = np.float32(arr.reshape(()).item())
            elif key in lay.rows:
                view = lay.state_view(key, i)
                if arr.shape != view.shape:
                    raise ValueError(
                        f"load_state_dict: state '{key}' has shape {arr.shape}, the parameter "
                        f"has shape {view.shape}"
                    )
                np.copyto(view, arr.astype(np.float32, copy=False))
        lay.initialized[i] = True
        self._register_state(lay, i)
        self._after_adopt(lay, i, entry)

    def _after_adopt(self, lay: _GroupLayout, i: int, entry: Dict[str, Any]) -> None:
        pass

    # ------------------------------------------------------------------ step
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset gradients. ``set_to_none=True`` (default) sets ``.grad`` to None
        (autograd refills the arena views); False zeroes each group's whole
        gradient arena with one memset, and any other grad tensor in place; a
        grad that is None stays None, as in torch."""
        for index in range(len(self.param_groups)):
            lay = self._layout(index)
            if lay is None:  # uninitialized lazy parameters have no gradient yet
                continue
            if set_to_none:
                for p in lay.params:
                    p.grad = None
                continue
            # A grad that is None stays None (torch); the others are zeroed in
            # place, so a user's own grad tensor keeps its identity.
            in_arena = all(p._data is d for p, d in zip(lay.params, lay.data_views))
            if in_arena:
                lay.arena.grad.fill(0.0)  # one memset over the group
            for p, slot in zip(lay.params, lay.grad_views):
                if p.grad is not None and not (in_arena and p.grad._data is slot):
                    p.grad._data.fill(0.0)

    def step(self, closure: Optional[Callable[[], Any]] = None) -> Any:
        """One update of every parameter that has a gradient.

        Args:
            closure: re-evaluates the model and returns the loss; called under
                ``enable_grad`` before the update. Its result is returned.
        """
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            V.check_step_supported(type(self).__name__, group)
        for index, group in enumerate(self.param_groups):
            self._step_group(index, group)
        return loss

    def _uniform(self, lay: _GroupLayout) -> bool:
        """Whether one call with one set of scalars can serve the whole group."""
        for arr in lay.scalars.values():
            if arr.size and arr.min() != arr.max():
                return False
        return bool(lay.initialized.all())

    def _fused_safe(self, group: Dict[str, Any]) -> bool:
        """Whether the arena's zero padding stays zero under the update (eps > 0)."""
        return group.get("eps", 1.0) > 0.0

    def _stepping(self, index: int, group: Dict[str, Any]
                  ) -> Optional[Tuple[_GroupLayout, List[int]]]:
        """(the group's prepared layout, indices of its parameters that have a gradient),
        or None when none does (or its lazy parameters have no shape yet)."""
        lay = self._layout(index)
        if lay is None:  # uninitialized lazy parameters have no gradient yet
            return None
        idxs = [i for i, p in enumerate(lay.params) if p.grad is not None]
        if not idxs:
            return None
        return self._prepare_group(index, group, idxs), idxs

    def _step_group(self, index: int, group: Dict[str, Any]) -> None:
        stepping = self._stepping(index, group)
        if stepping is None:
            return
        lay, idxs = stepping
        for i in idxs:  # the kernels below write in place: tell value caches (packed conv weights)
            lay.params[i]._bump_version()
        if len(idxs) == len(lay.params) and lay.size and self._uniform(lay) and \
                self._fused_safe(group) and lay.owns_all():
            self._update(group, lay, None, lay.arena.data, lay.arena.grad)
            return
        for i in idxs:
            p = lay.params[i]
            grad = p.grad._data
            if grad.dtype != np.float32 or not grad.flags.c_contiguous:
                grad = np.ascontiguousarray(grad, dtype=np.float32)
            self._update(group, lay, i, p._data.reshape(-1), grad.reshape(-1))

    def _update(self, group: Dict[str, Any], lay: _GroupLayout, i: Optional[int],
                param: np.ndarray, grad: np.ndarray) -> None:
        """Advance the scalar states of parameter ``i`` (all when None) and run
        the kernel on the flat arrays ``param``/``grad``; states via
        ``lay.flat_state(key, i)``."""
        raise NotImplementedError

    @staticmethod
    def _scalar_slice(lay: _GroupLayout, key: str, i: Optional[int]) -> np.ndarray:
        arr = lay.scalars[key]
        return arr if i is None else arr[i:i + 1]

    def _advance_step(self, lay: _GroupLayout, i: Optional[int]) -> float:
        """step += 1 (float32, as torch's step tensors) for i (or all); returns the new step."""
        steps = self._scalar_slice(lay, "step", i)
        steps += np.float32(1.0)
        return float(steps[0])

    # ------------------------------------------------------------ state dict
    def state_dict(self) -> Dict[str, Any]:
        """``{'state': {index: {key: Tensor}}, 'param_groups': [{..., 'params': [index...]}]}``.

        Parameters are numbered in group order as torch does. Tensors are copies."""
        index_of: Dict[int, int] = {}
        groups = []
        next_index = 0
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            ids = []
            for p in group["params"]:
                if id(p) not in index_of:
                    index_of[id(p)] = next_index
                    next_index += 1
                ids.append(index_of[id(p)])
            packed["params"] = ids
            groups.append(packed)
        state: Dict[int, Dict[str, Any]] = {}
        for p, entry in self.state.items():
            if id(p) in index_of:
                state[index_of[id(p)]] = {
                    k: (v.clone() if isinstance(v, Tensor) else v) for k, v in entry.items()
                }
        # (in the order the parameters got their state, as torch's dict is)
        return {"state": state, "param_groups": groups}

    def _matching_saved_groups(self, state_dict: Dict[str, Any]) -> List[Dict[str, Any]]:
        """The saved param_groups, checked group by group against this optimizer's (torch's
        errors when their number or sizes differ)."""
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        for g, s in zip(self.param_groups, saved_groups):
            if len(g["params"]) != len(s["params"]):
                raise ValueError(
                    "loaded state dict contains a parameter group that doesn't match the size "
                    "of optimizer's group"
                )
        return saved_groups

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        """Load a state dict from :meth:`state_dict` (or torch's, same structure).

        Hyperparameters of each group are replaced by the saved ones; state
        values are copied into this optimizer's buffers."""
        saved_groups = self._matching_saved_groups(state_dict)
        saved_state = state_dict["state"]
        for index, (group, saved) in enumerate(zip(self.param_groups, saved_groups)):
            for key, value in saved.items():
                if key not in ("params", "param_names"):
                    group[key] = tuple(value) if isinstance(value, list) and key == "betas" else value
            lay = self._layout(index)
            if lay is None:
                if any(saved_state.get(i, saved_state.get(str(i))) for i in saved["params"]):
                    raise ValueError(
                        f"optimizer: parameter group {index} holds uninitialized parameters "
                        "(a lazy module before its first forward), which cannot take saved "
                        "state; run one forward pass before load_state_dict")
                continue
            for i, (p, saved_id) in enumerate(zip(lay.params, saved["params"])):
                entry = saved_state.get(saved_id, saved_state.get(str(saved_id)))
                if entry is None:
                    self.state.pop(p, None)
                    lay.initialized[i] = False
                    continue
                self._adopt_state(lay, i, entry)
