"""Muon (torch.optim.Muon, torch 2.13): momentum SGD whose update is orthogonalised by a
Newton-Schulz iteration, for 2-D parameters (the weights of hidden layers).

A numpy implementation, not a fused C++ kernel: the orthogonalisation is a chain of
matrix products over the whole matrix. It reproduces torch's CPU arithmetic bit for bit:
torch runs the iteration in bfloat16, so here every bfloat16 tensor is a float32 array
holding values rounded to bfloat16 (round to nearest even), and each product is formed
the way torch's CPU bfloat16 GEMM (oneDNN, AVX512-BF16 dot products) forms it: the exact
products of a dot product are added to a float32 accumulator in pairs, the odd-numbered
term of each pair first; ``addmm`` then computes fma(beta, C, alpha * acc) in float32
and rounds once to bfloat16. That costs one numpy pass per inner index: a step takes
about 15 ms for a 128 x 128 matrix and 1.5 s for 512 x 2048.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from pyvision_engine.optim.optimizer import Optimizer, ParamsT
from pyvision_engine.tensor import Tensor

__all__ = ["Muon"]

# Keller Jordan's constants (https://kellerjordan.github.io/posts/muon/), torch's defaults
EPS = 1e-7
DEFAULT_A = 3.4445
DEFAULT_B = -4.7750
DEFAULT_C = 2.0315
DEFAULT_NS_STEPS = 5

_F32 = np.float32


def to_bfloat16(x: np.ndarray) -> np.ndarray:
    """float32 values rounded to bfloat16 (nearest, ties to even; NaN stays NaN), kept
    as float32."""
    x = np.ascontiguousarray(x, dtype=_F32)
    bits = x.view(np.uint32)
    rounded = (bits + np.uint32(0x7FFF) + ((bits >> 16) & np.uint32(1))) & np.uint32(0xFFFF0000)
    return np.where(np.isnan(x), x, rounded.view(_F32))


def _fma(a: Any, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """float32 a * b + c rounded once (a float32 product is exact in float64)."""
    return (np.float64(a) * b.astype(np.float64) + c.astype(np.float64)).astype(_F32)


def _pair_order(k: int) -> List[int]:
    """Inner indices in the order the bfloat16 dot product adds them: 1, 0, 3, 2, ..."""
    order: List[int] = []
    for j in range(0, k - 1, 2):
        order += [j + 1, j]
    if k % 2:
        order.append(k - 1)
    return order


def bf16_addmm(c: Optional[np.ndarray], a: np.ndarray, b: np.ndarray, beta: float = 1.0,
               alpha: float = 1.0) -> np.ndarray:
    """torch.addmm(c, a, b, beta=beta, alpha=alpha) on bfloat16 operands (c None: a @ b),
    as torch's CPU kernel computes it (see the module docstring)."""
    acc = np.zeros((a.shape[0], b.shape[1]), dtype=_F32)
    term = np.empty_like(acc)
    columns, rows = np.ascontiguousarray(a.T), np.ascontiguousarray(b)
    for j in _pair_order(a.shape[1]):
        # a[:, j] b[j, :]: products of two bfloat16 values are exact in float32
        np.multiply(columns[j][:, None], rows[j][None, :], out=term)
        acc += term
    if c is None:
        return to_bfloat16(acc)
    scaled = acc * _F32(alpha)
    return to_bfloat16(_fma(_F32(beta), c, scaled))


def _bf16_norm(x: np.ndarray) -> _F32:
    """torch's Tensor.norm() of a bfloat16 tensor: float32 sum of squares, square root
    in float32, result rounded to bfloat16."""
    squares = _F32(np.sum(x.astype(np.float64) ** 2))
    return to_bfloat16(np.sqrt(np.array([squares], dtype=_F32)))[0]


def zeropower_via_newtonschulz(grad: np.ndarray, ns_coefficients: Sequence[float],
                               ns_steps: int, eps: float) -> np.ndarray:
    """torch's _zeropower_via_newtonschulz on a float32 matrix: scaled to spectral norm
    <= 1, then ``ns_steps`` quintic steps X <- aX + (bA + cA^2)X with A = XX^T (on the
    wide orientation), all in bfloat16. Returns bfloat16 values as float32."""
    if ns_steps >= 100:
        raise ValueError("Number of steps must be less than 100 for computational efficiency")
    if grad.ndim != 2:
        raise ValueError("Input tensor gradient must be a 2D matrix")
    if len(ns_coefficients) != 3:
        raise ValueError("Coefficients must be a tuple of exactly 3 values")
    a, b, c = ns_coefficients
    tall = grad.shape[0] > grad.shape[1]
    x = to_bfloat16(grad.T if tall else grad)
    # norm().clamp(min=eps) of a bfloat16 tensor: eps rounded to bfloat16, NaN kept
    norm = np.maximum(_bf16_norm(x), to_bfloat16(np.array([eps], dtype=_F32))[0])
    x = to_bfloat16(x / norm)
    for _ in range(ns_steps):
        gram = bf16_addmm(None, x, x.T)
        gram_update = bf16_addmm(gram, gram, gram, beta=b, alpha=c)
        x = bf16_addmm(x, gram_update, x, beta=a)
    return np.ascontiguousarray(x.T if tall else x)


def adjust_lr(lr: float, adjust_lr_fn: Optional[str], shape: Tuple[int, ...]) -> float:
    """The learning rate scaled for a (A, B) matrix: sqrt(max(1, A/B)) for None or
    'original' (Keller Jordan's), 0.2 sqrt(max(A, B)) for 'match_rms_adamw' (Moonshot's)."""
    rows, cols = shape[:2]
    if adjust_lr_fn is None or adjust_lr_fn == "original":
        ratio = math.sqrt(max(1, rows / cols))
    elif adjust_lr_fn == "match_rms_adamw":
        ratio = 0.2 * math.sqrt(max(rows, cols))
    else:
        ratio = 1.0
    return lr * ratio


def _lerp(start: np.ndarray, end: np.ndarray, weight: float) -> np.ndarray:
    """start.lerp(end, weight) as torch's CPU kernel: one FMA from the nearer end."""
    w = _F32(weight)
    diff = end - start
    if abs(w) < 0.5:
        return _fma(w, diff, start)
    return _fma(w - _F32(1), diff, end)


class Muon(Optimizer):
    """Muon (torch.optim.Muon semantics, numpy implementation; see the module docstring).

    Per step, for each 2-D parameter θ with gradient g: ``B ← μB + (1 − μ)g`` (a lerp),
    ``U = g + μ(B − g)`` (lerp, nesterov) or ``U = B``; ``O = NS(U)`` (Newton-Schulz
    in bfloat16); ``θ ← θ(1 − lr·λ)``; ``θ ← θ − adjusted_lr·O``.

    Args:
        params: 2-D parameters (or groups of them); biases, embeddings and other
            parameters belong to another optimizer such as AdamW.
        lr: default 1e-3 (float or 1-element Tensor). weight_decay λ: default 0.1
            (decoupled). momentum μ: default 0.95. nesterov: default True.
        ns_coefficients: (a, b, c) of the quintic iteration (default (3.4445, -4.7750,
            2.0315)). eps: floor of the norm the update is divided by (default 1e-7).
        ns_steps: iterations, below 100 (default 5). adjust_lr_fn: None or 'original'
            (sqrt(max(1, A/B))), or 'match_rms_adamw' (0.2 sqrt(max(A, B))).

    State per parameter: ``momentum_buffer`` (created at its first step with a
    gradient), as torch's; state_dict / load_state_dict exchange with torch's.
    """

    _scalar_state: Dict[str, float] = {}

    def __init__(self, params: ParamsT, lr: float = 1e-3, weight_decay: float = 0.1,
                 momentum: float = 0.95, nesterov: bool = True,
                 ns_coefficients: Tuple[float, float, float] = (DEFAULT_A, DEFAULT_B, DEFAULT_C),
                 eps: float = EPS, ns_steps: int = DEFAULT_NS_STEPS,
                 adjust_lr_fn: Optional[str] = None) -> None:
        if isinstance(lr, Tensor) and lr.numel() != 1:
            raise ValueError("Tensor lr must be 1-element")
        if not 0.0 <= lr:
            raise ValueError(f"Learning rate should be >= 0 but is: {lr}")
        if not 0.0 <= momentum:
            raise ValueError(f"momentum should be >= 0 but is: {momentum}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"weight decay should be >= 0 but is: {weight_decay}")
        if adjust_lr_fn is not None and adjust_lr_fn not in ("original", "match_rms_adamw"):
            raise ValueError(f"Adjust learning rate function {adjust_lr_fn} is not supported")
        defaults = dict(lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=nesterov,
                        ns_coefficients=ns_coefficients, eps=eps, ns_steps=ns_steps,
                        adjust_lr_fn=adjust_lr_fn)
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                if p.ndim != 2:
                    raise ValueError("Muon only supports 2D parameters whereas we found a "
                                     f"parameter with size: {tuple(p.shape)}")

    def _tensor_state_spec(self, group: Dict[str, Any]) -> List[Tuple[str, float]]:
        return [("momentum_buffer", 0.0)]

    def _step_group(self, index: int, group: Dict[str, Any]) -> None:
        stepping = self._stepping(index, group)
        if stepping is None:
            return
        lay, idxs = stepping
        lr = group["lr"].item() if isinstance(group["lr"], Tensor) else group["lr"]
        for i in idxs:
            p = lay.params[i]
            grad = np.asarray(p.grad._data, dtype=_F32)
            if grad.ndim != 2:
                raise ValueError("Param gradient must be a 2D matrix")
            buf = lay.state_view("momentum_buffer", i)
            self._update_param(p._data, grad, buf, group, lr)
            p._bump_version()

    @staticmethod
    def _update_param(param: np.ndarray, grad: np.ndarray, buf: np.ndarray,
                      group: Dict[str, Any], lr: float) -> None:
        momentum = group["momentum"]
        buf[...] = _lerp(buf, grad, 1 - momentum)
        update = _lerp(grad, buf, momentum) if group["nesterov"] else buf
        update = zeropower_via_newtonschulz(update, group["ns_coefficients"], group["ns_steps"],
                                            group["eps"])
        adjusted_lr = adjust_lr(lr, group["adjust_lr_fn"], param.shape)
        param *= _F32(1 - lr * group["weight_decay"])
        param[...] = _fma(_F32(-adjusted_lr), update, param)
