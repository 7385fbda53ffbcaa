"""L-BFGS (torch.optim.LBFGS): limited-memory BFGS with an optional strong-Wolfe line search.

Pure Python/numpy on the flattened parameters, as torch's is pure Python on
torch tensors: the work per iteration is a few dot products and axpys over the
flat vector plus the closure's forward and backward passes, which dominate.
The algorithm is torch 2.13's ``torch/optim/lbfgs.py`` line by line, with the
same types where they change rounding: vectors are float32, and the scalars
torch keeps as 0-d float32 tensors (dot products, ``ro``, ``al``, ``H_diag``,
and ``t`` when it comes from the first-iteration rule or the line search) are
numpy float32 scalars, while those torch keeps as Python floats (the loss, ``t
= lr``) stay Python floats. Differences from torch are rounding only: dot
products and sums are numpy's (BLAS / pairwise) rather than ATen's, and
``p += alpha·v`` is computed in float64 and rounded once (torch's vectorized
add-with-alpha is one FMA).
"""

from __future__ import annotations

import copy
from typing import Any, Callable, Dict, List, Optional

import numpy as np

from pyvision_engine.autograd import enable_grad
from pyvision_engine.optim import _validate as V
from pyvision_engine.optim.optimizer import Optimizer, ParamsT, _as_array
from pyvision_engine.tensor import Tensor

__all__ = ["LBFGS"]

f32 = np.float32


def _axpy(y: np.ndarray, alpha: Any, x: np.ndarray) -> np.ndarray:
    """float32 y + alpha·x with one rounding (alpha cast to float32 first), as
    torch's ``y.add_(x, alpha=alpha)``: the float64 product is exact."""
    return (y.astype(np.float64) + np.float64(f32(alpha)) * x.astype(np.float64)).astype(f32)


def _dot(a: np.ndarray, b: np.ndarray) -> np.float32:
    return f32(np.dot(a, b))


def _cubic_interpolate(x1, f1, g1, x2, f2, g2, bounds=None):
    # ported from torch (itself from minFunc): minimizer of the cubic
    # interpolating two points and their directional derivatives.
    if bounds is not None:
        xmin_bound, xmax_bound = bounds
    else:
        xmin_bound, xmax_bound = (x1, x2) if x1 <= x2 else (x2, x1)
    with np.errstate(all="ignore"):
        d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
        d2_square = d1 ** 2 - g1 * g2
        if d2_square >= 0:
            d2 = np.sqrt(d2_square)
            if x1 <= x2:
                min_pos = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
            else:
                min_pos = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
            return min(max(min_pos, xmin_bound), xmax_bound)
    return (xmin_bound + xmax_bound) / 2.0


def _strong_wolfe(obj_func, x, t, d, f, g, gtd, c1=1e-4, c2=0.9, tolerance_change=1e-9,
                  max_ls=25):
    # ported from torch (minFunc's WolfeLineSearch), same branches and order.
    d_norm = np.abs(d).max()
    g = g.copy()
    f_new, g_new = obj_func(x, t, d)
    ls_func_evals = 1
    gtd_new = _dot(g_new, d)

    t_prev, f_prev, g_prev, gtd_prev = 0, f, g, gtd
    done = False
    ls_iter = 0
    while ls_iter < max_ls:
        if f_new > (f + c1 * t * gtd) or (ls_iter > 1 and f_new >= f_prev):
            bracket = [t_prev, t]
            bracket_f = [f_prev, f_new]
            bracket_g = [g_prev, g_new.copy()]
            bracket_gtd = [gtd_prev, gtd_new]
            break
        if abs(gtd_new) <= -c2 * gtd:
            bracket = [t]
            bracket_f = [f_new]
            bracket_g = [g_new]
            done = True
            break
        if gtd_new >= 0:
            bracket = [t_prev, t]
            bracket_f = [f_prev, f_new]
            bracket_g = [g_prev, g_new.copy()]
            bracket_gtd = [gtd_prev, gtd_new]
            break
        # interpolate
        min_step = t + 0.01 * (t - t_prev)
        max_step = t * 10
        tmp = t
        t = _cubic_interpolate(t_prev, f_prev, gtd_prev, t, f_new, gtd_new,
                               bounds=(min_step, max_step))
        # next step
        t_prev = tmp
        f_prev = f_new
        g_prev = g_new.copy()
        gtd_prev = gtd_new
        f_new, g_new = obj_func(x, t, d)
        ls_func_evals += 1
        gtd_new = _dot(g_new, d)
        ls_iter += 1

    # reached the maximum number of line-search iterations
    if ls_iter == max_ls:
        bracket = [0, t]
        bracket_f = [f, f_new]
        bracket_g = [g, g_new]

    # zoom phase: a point satisfying the strong Wolfe conditions lies in the bracket
    insuf_progress = False
    low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[-1] else (1, 0)
    while not done and ls_iter < max_ls:
        if abs(bracket[1] - bracket[0]) * d_norm < tolerance_change:
            break
        t = _cubic_interpolate(bracket[0], bracket_f[0], bracket_gtd[0],
                               bracket[1], bracket_f[1], bracket_gtd[1])
        # Guard against slow progress at the bracket's ends (minFunc's safeguard).
        eps = 0.1 * (max(bracket) - min(bracket))
        if min(max(bracket) - t, t - min(bracket)) < eps:
            if insuf_progress or t >= max(bracket) or t <= min(bracket):
                if abs(t - max(bracket)) < abs(t - min(bracket)):
                    t = max(bracket) - eps
                else:
                    t = min(bracket) + eps
                insuf_progress = False
            else:
                insuf_progress = True
        else:
            insuf_progress = False
        f_new, g_new = obj_func(x, t, d)
        ls_func_evals += 1
        gtd_new = _dot(g_new, d)
        ls_iter += 1

        if f_new > (f + c1 * t * gtd) or f_new >= bracket_f[low_pos]:
            bracket[high_pos] = t
            bracket_f[high_pos] = f_new
            bracket_g[high_pos] = g_new.copy()
            bracket_gtd[high_pos] = gtd_new
            low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True
            elif gtd_new * (bracket[high_pos] - bracket[low_pos]) >= 0:
                bracket[high_pos] = bracket[low_pos]
                bracket_f[high_pos] = bracket_f[low_pos]
                bracket_g[high_pos] = bracket_g[low_pos]
                bracket_gtd[high_pos] = bracket_gtd[low_pos]
            bracket[low_pos] = t
            bracket_f[low_pos] = f_new
            bracket_g[low_pos] = g_new.copy()
            bracket_gtd[low_pos] = gtd_new

    t = bracket[low_pos]
    f_new = bracket_f[low_pos]
    g_new = bracket_g[low_pos]
    return f_new, g_new, t, ls_func_evals


# State values: numpy float32 arrays/scalars inside the algorithm, pve Tensors
# in ``self.state`` (what torch's state holds as tensors).
def _to_state(value: Any) -> Any:
    if isinstance(value, list):
        return [_to_state(v) for v in value]
    if isinstance(value, (np.ndarray, np.floating)):
        return Tensor._wrap(np.array(value, dtype=f32))
    return value


def _from_state(value: Any) -> Any:
    if isinstance(value, list):
        return [_from_state(v) for v in value]
    if value is None or isinstance(value, (bool, int, float)):
        return value
    arr = _as_array(value)
    if arr.ndim == 0:
        return f32(arr)
    return np.array(arr, dtype=f32).reshape(-1)


class LBFGS(Optimizer):
    """L-BFGS (Nocedal 1980; torch's port of minFunc), torch 2.13 semantics.

    ``step(closure)`` runs up to ``max_iter`` iterations, calling ``closure``
    (which must zero the gradients, compute the loss, call ``backward`` and
    return the loss) once per iteration, or several times per iteration with
    ``line_search_fn='strong_wolfe'``, and returns the loss of its FIRST call.
    Only one parameter group is supported, as in torch.

    Args:
        lr: step length (default 1).
        max_iter: iterations per ``step`` (default 20).
        max_eval: closure calls per ``step`` (default ``max_iter * 5 // 4``).
        tolerance_grad: stop when max|g| <= this (default 1e-7).
        tolerance_change: stop when the step or the loss change is below this
            (default 1e-9).
        history_size: (s, y) pairs kept (default 100).
        line_search_fn: None or ``'strong_wolfe'``.

    The state (``state[params[0]]``) has torch's keys: ``func_evals``, ``n_iter``,
    ``d``, ``t``, ``old_dirs``, ``old_stps``, ``ro``, ``H_diag``,
    ``prev_flat_grad``, ``prev_loss`` and ``al``.
    """

    _scalar_state: Dict[str, float] = {}

    def __init__(self, params: ParamsT, lr: float = 1, max_iter: int = 20,
                 max_eval: Optional[int] = None, tolerance_grad: float = 1e-7,
                 tolerance_change: float = 1e-9, history_size: int = 100,
                 line_search_fn: Optional[str] = None) -> None:
        V.check_lr(lr)
        if max_eval is None:
            max_eval = max_iter * 5 // 4
        defaults = dict(lr=lr, max_iter=max_iter, max_eval=max_eval,
                        tolerance_grad=tolerance_grad, tolerance_change=tolerance_change,
                        history_size=history_size, line_search_fn=line_search_fn)
        super().__init__(params, defaults)
        if len(self.param_groups) != 1:
            raise ValueError("LBFGS doesn't support per-parameter options (parameter groups)")
        self._params = self.param_groups[0]["params"]
        self._numel_cache: Optional[int] = None

    # ------------------------------------------------------------ flat views
    def _numel(self) -> int:
        if self._numel_cache is None:
            self._numel_cache = sum(int(p._data.size) for p in self._params)
        return self._numel_cache

    def _gather_flat_grad(self) -> np.ndarray:
        views = []
        for p in self._params:
            if p.grad is None:
                views.append(np.zeros(p._data.size, dtype=f32))
            else:
                views.append(np.asarray(p.grad._data, dtype=f32).reshape(-1))
        return np.concatenate(views) if views else np.zeros(0, f32)

    def _add_grad(self, step_size: Any, update: np.ndarray) -> None:
        offset = 0
        for p in self._params:
            n = p._data.size
            flat = p._data.reshape(-1)
            flat[...] = _axpy(flat, step_size, update[offset:offset + n])
            p._bump_version()  # the parameter changed in place (packed-weight caches)
            offset += n
        assert offset == self._numel()

    def _clone_param(self) -> List[np.ndarray]:
        return [p._data.copy() for p in self._params]

    def _set_param(self, params_data: List[np.ndarray]) -> None:
        for p, data in zip(self._params, params_data):
            np.copyto(p._data, data)
            p._bump_version()

    def _directional_evaluate(self, closure, x, t, d):
        self._add_grad(t, d)
        loss = float(closure())
        flat_grad = self._gather_flat_grad()
        self._set_param(x)
        return loss, flat_grad

    # ------------------------------------------------------------------ step
    def step(self, closure: Callable[[], Any]) -> Any:  # type: ignore[override]
        """Run up to ``max_iter`` L-BFGS iterations; returns the closure's first loss.

        Args:
            closure: re-evaluates the model (zero_grad, forward, backward) and
                returns the loss; called under ``enable_grad``.
        """
        if len(self.param_groups) != 1:
            raise ValueError("LBFGS doesn't support per-parameter options (parameter groups)")
        if closure is None:
            raise TypeError("LBFGS.step() requires a closure that reevaluates the model "
                            "and returns the loss")

        def evaluate():
            with enable_grad():
                return closure()

        group = self.param_groups[0]
        lr = group["lr"]  # as given (torch's default is the int 1, and t = lr keeps its type)
        if isinstance(lr, Tensor):
            lr = lr.item()
        max_iter = group["max_iter"]
        max_eval = group["max_eval"]
        tolerance_grad = group["tolerance_grad"]
        tolerance_change = group["tolerance_change"]
        line_search_fn = group["line_search_fn"]
        history_size = group["history_size"]

        # the state lives with the first parameter (torch's convention)
        entry = self.state[self._params[0]]
        entry.setdefault("func_evals", 0)
        entry.setdefault("n_iter", 0)

        orig_loss = evaluate()
        loss = float(orig_loss)
        current_evals = 1
        entry["func_evals"] += 1

        flat_grad = self._gather_flat_grad()
        opt_cond = np.abs(flat_grad).max() <= tolerance_grad if flat_grad.size else True
        if opt_cond:  # optimal condition: nothing to do
            return orig_loss

        d = _from_state(entry.get("d"))
        t = _from_state(entry.get("t"))
        old_dirs = _from_state(entry.get("old_dirs"))
        old_stps = _from_state(entry.get("old_stps"))
        ro = _from_state(entry.get("ro"))
        H_diag = _from_state(entry.get("H_diag"))
        prev_flat_grad = _from_state(entry.get("prev_flat_grad"))
        prev_loss = entry.get("prev_loss")
        al = _from_state(entry["al"]) if "al" in entry else None

        n_iter = 0
        while n_iter < max_iter:
            n_iter += 1
            entry["n_iter"] += 1

            # ---------------------------------------- the descent direction
            if entry["n_iter"] == 1:
                d = -flat_grad
                old_dirs, old_stps, ro = [], [], []
                H_diag = 1
            else:
                # L-BFGS update (memory kept to history_size pairs)
                y = flat_grad - prev_flat_grad
                s = d * f32(t)
                ys = _dot(y, s)
                if ys > 1e-10:
                    if len(old_dirs) == history_size:
                        old_dirs.pop(0)
                        old_stps.pop(0)
                        ro.pop(0)
                    old_dirs.append(y)
                    old_stps.append(s)
                    ro.append(f32(1.0) / ys)
                    H_diag = ys / _dot(y, y)
                num_old = len(old_dirs)
                if al is None:
                    al = [None] * history_size
                    entry["al"] = None  # (keeps torch's key order: 'al' is added here)
                # two-loop recursion: d = -H·g
                q = -flat_grad
                for i in range(num_old - 1, -1, -1):
                    al[i] = _dot(old_stps[i], q) * ro[i]
                    q = _axpy(q, -al[i], old_dirs[i])
                r = q * f32(H_diag)
                for i in range(num_old):
                    be_i = _dot(old_dirs[i], r) * ro[i]
                    r = _axpy(r, al[i] - be_i, old_stps[i])
                d = r

            prev_flat_grad = flat_grad.copy()
            prev_loss = loss

            # ---------------------------------------- the step length
            if entry["n_iter"] == 1:
                inv = f32(1.0) / f32(np.abs(flat_grad).sum(dtype=f32))
                t = f32(inv * f32(lr)) if inv < 1.0 else 1.0 * lr
            else:
                t = lr

            gtd = _dot(flat_grad, d)
            if gtd > -tolerance_change:  # directional derivative below tolerance
                break

            ls_func_evals = 0
            if line_search_fn is not None:
                if line_search_fn != "strong_wolfe":
                    raise RuntimeError("only 'strong_wolfe' is supported")
                x_init = self._clone_param()

                def obj_func(x, t, d):
                    return self._directional_evaluate(evaluate, x, t, d)

                loss, flat_grad, t, ls_func_evals = _strong_wolfe(
                    obj_func, x_init, t, d, loss, flat_grad, gtd,
                    max_ls=max_eval - current_evals)
                self._add_grad(t, d)
                opt_cond = np.abs(flat_grad).max() <= tolerance_grad
            else:
                # fixed step, then re-evaluate (unless this was the last iteration)
                self._add_grad(t, d)
                if n_iter != max_iter:
                    loss = float(evaluate())
                    flat_grad = self._gather_flat_grad()
                    opt_cond = np.abs(flat_grad).max() <= tolerance_grad
                    ls_func_evals = 1

            current_evals += ls_func_evals
            entry["func_evals"] += ls_func_evals

            # ---------------------------------------- stopping conditions
            if n_iter == max_iter:
                break
            if current_evals >= max_eval:
                break
            if opt_cond:
                break
            if np.abs(d * f32(t)).max() <= tolerance_change:
                break
            if abs(loss - prev_loss) < tolerance_change:
                break

        if al is not None:
            entry["al"] = _to_state(al)
        entry["d"] = _to_state(d)
        entry["t"] = _to_state(t)
        entry["old_dirs"] = _to_state(old_dirs)
        entry["old_stps"] = _to_state(old_stps)
        entry["ro"] = _to_state(ro)
        entry["H_diag"] = _to_state(H_diag)
        entry["prev_flat_grad"] = _to_state(prev_flat_grad)
        entry["prev_loss"] = prev_loss
        return orig_loss

    # ------------------------------------------------------------ state dict
    def state_dict(self) -> Dict[str, Any]:
        """torch's structure: ``{'state': {0: {...}}, 'param_groups': [...]}``; copies."""
        sd = super().state_dict()
        sd["state"] = {k: {key: _copy_value(v) for key, v in entry.items()}
                       for k, entry in sd["state"].items()}
        return sd

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        """Load :meth:`state_dict`'s output, or torch's LBFGS state dict."""
        saved_groups = self._matching_saved_groups(state_dict)
        group, saved = self.param_groups[0], saved_groups[0]
        for key, value in saved.items():
            if key not in ("params", "param_names"):
                group[key] = value
        self.state.clear()
        saved_state = state_dict["state"]
        for p, saved_id in zip(group["params"], saved["params"]):
            entry = saved_state.get(saved_id, saved_state.get(str(saved_id)))
            if entry is not None:
                self.state[p] = {k: _to_state(_from_state(v)) if k not in ("func_evals", "n_iter",
                                                                           "prev_loss") else v
                                 for k, v in entry.items()}
                # a 0-d float32 t/H_diag stays a tensor; plain numbers stay numbers
        self._numel_cache = None


def _copy_value(value: Any) -> Any:
    if isinstance(value, Tensor):
        return value.clone()
    if isinstance(value, list):
        return [_copy_value(v) for v in value]
    return copy.copy(value)
