"""Lookahead (Zhang, Lucas, Hinton & Ba 2019) around any pve optimizer."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional

import numpy as np

from pyvision_engine import _C
from pyvision_engine.nn.arena import aligned_empty
from pyvision_engine.optim.optimizer import Optimizer, _as_array
from pyvision_engine.tensor import Tensor

__all__ = ["Lookahead"]


class Lookahead(Optimizer):
    """Keeps slow weights φ beside the inner optimizer's fast weights θ.

    The slow weights start as a copy of the parameters at construction (the
    authors' version). Every ``k`` inner steps: ``φ ← φ + α(θ − φ)`` and
    ``θ ← φ``. The inner optimizer's state (moments, step counts) carries on.
    Slow weights of a group live in one buffer with the group arena's layout,
    so a synchronisation is one fused pass.

    Args:
        optimizer: the inner optimizer (any pve.optim optimizer).
        k: inner steps between synchronisations (default 5, >= 1).
        alpha: slow-weight step size in [0, 1] (default 0.5).

    ``param_groups`` is the inner optimizer's list (schedulers work unchanged).
    """

    def __init__(self, optimizer: Optimizer, k: int = 5, alpha: float = 0.5) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"Lookahead: expected a pve optimizer, got {type(optimizer).__name__}")
        if not (isinstance(k, int) and k >= 1):
            raise ValueError(f"Invalid lookahead steps: {k}")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"Invalid slow update rate: {alpha}")
        self.optimizer = optimizer
        self.k = k
        self.alpha = float(alpha)
        self.defaults = optimizer.defaults
        self.param_groups = optimizer.param_groups  # shared, so lr changes reach the inner one
        self.state = optimizer.state
        self._counter = 0
        self._slow: List[np.ndarray] = []
        for index in range(len(self.param_groups)):
            self._slow.append(self._new_slow(index))

    def _new_slow(self, index: int) -> np.ndarray:
        lay = self.optimizer._layout(index)
        if lay is None:  # uninitialized lazy parameters: laid out at the first sync after
            return aligned_empty(0)
        slow = aligned_empty(lay.size)
        np.copyto(slow, lay.arena.data)  # φ₀ = θ₀ (padding zero in both)
        for p, view, (start, size) in zip(lay.params, lay.data_views, lay.arena.offsets):
            if p._data is not view:  # moved out of the arena since: take its live value
                slow[start:start + size] = p._data.reshape(-1)
        return slow

    def __repr__(self) -> str:
        return f"Lookahead(k={self.k}, alpha={self.alpha}, optimizer={self.optimizer!r})"

    def add_param_group(self, param_group: Dict[str, Any]) -> None:
        self.optimizer.add_param_group(param_group)
        self._slow.append(self._new_slow(len(self.param_groups) - 1))

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none)

    def step(self, closure: Optional[Callable[[], Any]] = None) -> Any:
        """One inner step; every k-th also pulls the slow weights toward the fast ones."""
        for index, slow in enumerate(self._slow):
            if slow.size == 0:  # lazy parameters materialized by a forward since: φ₀ = θ₀ now
                self._slow[index] = self._new_slow(index)
        loss = self.optimizer.step(closure)
        self._counter += 1
        if self._counter >= self.k:
            self._counter = 0
            self._sync()
        return loss

    def _sync(self) -> None:
        for index in range(len(self.param_groups)):
            lay = self.optimizer._layout(index)
            if lay is None:  # uninitialized lazy parameters: nothing to pull yet
                continue
            slow = self._slow[index]
            if slow.size != lay.size:  # the group's params were replaced
                slow = self._slow[index] = self._new_slow(index)
            for p in lay.params:  # written in place below (see Tensor._bump_version)
                p._bump_version()
            if all(p._data is d for p, d in zip(lay.params, lay.data_views)):
                _C.optim_lookahead_sync(lay.arena.data, slow, self.alpha)
            else:
                for p, (start, size) in zip(lay.params, lay.arena.offsets):
                    _C.optim_lookahead_sync(p._data.reshape(-1), slow[start:start + size],
                                            self.alpha)

    def slow_weights(self, index: int = 0) -> List[np.ndarray]:
        """Views of group ``index``'s slow weights, one per parameter (shapes of the params)."""
        lay = self.optimizer._layout(index)
        if lay is None:
            return []
        return [self._slow[index][s:s + n].reshape(p.shape)
                for p, (s, n) in zip(lay.params, lay.arena.offsets)]

    def state_dict(self) -> Dict[str, Any]:
        """``{'state': {index: {'slow_param': Tensor}}, 'inner': inner state_dict,
        'k', 'alpha', 'step_counter'}`` (parameters numbered as in the inner's)."""
        state: Dict[int, Dict[str, Any]] = {}
        n = 0
        for index in range(len(self.param_groups)):
            for view in self.slow_weights(index):
                state[n] = {"slow_param": Tensor._wrap(view.copy())}
                n += 1
        return {"state": state, "inner": self.optimizer.state_dict(), "k": self.k,
                "alpha": self.alpha, "step_counter": self._counter}

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state_dict["inner"])
        self.k = int(state_dict["k"])
        self.alpha = float(state_dict["alpha"])
        self._counter = int(state_dict["step_counter"])
        n = 0
        for index in range(len(self.param_groups)):
            for view in self.slow_weights(index):
                entry = state_dict["state"].get(n, state_dict["state"].get(str(n)))
                if entry is not None:
                    np.copyto(view, _as_array(entry["slow_param"]).astype(np.float32, copy=False))
                n += 1
