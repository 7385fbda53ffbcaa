"""Plain-numpy reference implementations of the optimizer update rules.

Written from the formulas (shared/research/optim_spec.md, i.e. torch 2.13's
single-tensor path), one float32 operation at a time with NO fused
multiply-add (except fma32 where the kernels fuse on every build), so each line
is one correctly rounded float32 operation. The
engine's scalar kernels perform the same operations in the same order and
must match bit for bit; its AVX2/AVX-512 kernels contract a·b + c into an FMA
(as torch's vectorized CPU kernels do), which changes the last bit of some
intermediate results, so they are compared with a tolerance.

Each class keeps its own per-parameter state; ``step(params, grads)`` updates
the float32 arrays in ``params`` in place and skips entries whose grad is None.
"""

from __future__ import annotations

import math
from typing import Dict, List, Optional

import numpy as np

f32 = np.float32


def fma32(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """float32 a·b + c with one rounding (a fused multiply-add), for the one place the
    kernels fuse on every build (centered RMSprop's s − ḡ²). a·b is exact in float64;
    the float64 sum is rounded to odd (its inexact results get an odd last bit), which
    makes the final rounding to float32 correct, with no double-rounding error."""
    a64, b64, c64 = (np.asarray(v, np.float64) for v in (a, b, c))
    prod = a64 * b64
    total = prod + c64
    with np.errstate(invalid="ignore"):  # (inf totals: no error term, masked below)
        # the sum's rounding error (Knuth's TwoSum: exact for finite values)
        back = total - prod
        err = (prod - (total - back)) + (c64 - back)
    bits = total.view(np.int64)
    inexact = np.isfinite(total) & (err != 0) & (bits % 2 == 0)
    toward = np.where((err > 0) == (total > 0), 1, -1)  # away from or toward zero
    odd = np.where(inexact, bits + toward, bits).view(np.float64)
    return odd.astype(np.float32)


def lerp(m: np.ndarray, g: np.ndarray, weight: float) -> np.ndarray:
    """torch's lerp: m + w(g − m) for |w| < 0.5, else g + (w − 1)(g − m); w as float32."""
    w = f32(weight)
    if abs(w) < f32(0.5):
        return m + w * (g - m)
    return g + (w - f32(1.0)) * (g - m)


class _Rule:
    def __init__(self, **hp) -> None:
        self.hp = hp
        self.state: Dict[int, Dict[str, np.ndarray]] = {}

    def step(self, params: List[np.ndarray], grads: List[Optional[np.ndarray]]) -> None:
        for i, (p, g) in enumerate(zip(params, grads)):
            if g is None:
                continue
            st = self.state.setdefault(i, {})
            g = g.astype(f32)
            if self.hp.get("maximize", False):
                g = -g
            p[...] = self.update(p.astype(f32), g, st)

    def l2_or_decoupled(self, p, g, lr, wd, decoupled):
        if wd != 0:
            if decoupled:
                p = p * f32(1 - lr * wd)
            else:
                g = g + f32(wd) * p
        return p, g

    def next_step(self, st) -> float:
        st["step"] = st.get("step", f32(0)) + f32(1)  # a float32 counter, as torch
        return float(st["step"])


class SGD(_Rule):
    def update(self, p, g, st):
        lr, mu = self.hp["lr"], self.hp.get("momentum", 0)
        damp, wd = self.hp.get("dampening", 0), self.hp.get("weight_decay", 0)
        if wd != 0:
            g = g + f32(wd) * p
        if mu != 0:
            if "momentum_buffer" not in st:
                b = g.copy()  # first step: no dampening
            else:
                b = st["momentum_buffer"] * f32(mu) + f32(1 - damp) * g
            st["momentum_buffer"] = b
            g = g + f32(mu) * b if self.hp.get("nesterov", False) else b
        return p + f32(-lr) * g


class Adam(_Rule):
    """Adam; AdamW is Adam(decoupled_weight_decay=True, weight_decay=1e-2)."""

    def update(self, p, g, st):
        lr, (b1, b2), eps = self.hp["lr"], self.hp.get("betas", (0.9, 0.999)), self.hp.get("eps", 1e-8)
        t = self.next_step(st)
        p, g = self.l2_or_decoupled(p, g, lr, self.hp.get("weight_decay", 0),
                                    self.hp.get("decoupled_weight_decay", False))
        m = lerp(st.get("exp_avg", np.zeros_like(p)), g, 1 - b1)
        v = st.get("exp_avg_sq", np.zeros_like(p)) * f32(b2) + (f32(1 - b2) * g) * g
        st["exp_avg"], st["exp_avg_sq"] = m, v
        if self.hp.get("amsgrad", False):
            v = np.maximum(st.get("max_exp_avg_sq", np.zeros_like(p)), v)  # of uncorrected v
            st["max_exp_avg_sq"] = v
        bc1, bc2 = 1 - b1 ** t, 1 - b2 ** t
        denom = np.sqrt(v) / f32(bc2 ** 0.5) + f32(eps)  # eps after the bias correction
        return p + (f32(-(lr / bc1)) * m) / denom


class Adamax(_Rule):
    def update(self, p, g, st):
        lr, (b1, b2), eps = self.hp.get("lr", 2e-3), self.hp.get("betas", (0.9, 0.999)), self.hp.get("eps", 1e-8)
        t = self.next_step(st)
        wd = self.hp.get("weight_decay", 0)
        if wd != 0:
            g = g + f32(wd) * p
        m = lerp(st.get("exp_avg", np.zeros_like(p)), g, 1 - b1)
        u = np.maximum(st.get("exp_inf", np.zeros_like(p)) * f32(b2), np.abs(g) + f32(eps))
        st["exp_avg"], st["exp_inf"] = m, u
        clr = lr / (1 - b1 ** t)
        return p + (f32(-clr) * m) / u


class NAdam(_Rule):
    def update(self, p, g, st):
        lr, (b1, b2) = self.hp.get("lr", 2e-3), self.hp.get("betas", (0.9, 0.999))
        eps, psi = self.hp.get("eps", 1e-8), self.hp.get("momentum_decay", 4e-3)
        t = self.next_step(st)
        bc2 = 1 - b2 ** t
        p, g = self.l2_or_decoupled(p, g, lr, self.hp.get("weight_decay", 0),
                                    self.hp.get("decoupled_weight_decay", False))
        mu = b1 * (1.0 - 0.5 * 0.96 ** (t * psi))
        mu_next = b1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * psi))
        st["mu_product"] = f32(st.get("mu_product", f32(1.0)) * f32(mu))  # float32 product
        prod = float(st["mu_product"])
        m = lerp(st.get("exp_avg", np.zeros_like(p)), g, 1 - b1)
        v = st.get("exp_avg_sq", np.zeros_like(p)) * f32(b2) + (f32(1 - b2) * g) * g
        st["exp_avg"], st["exp_avg_sq"] = m, v
        denom = np.sqrt(v / f32(bc2)) + f32(eps)
        p = p + (f32(-lr * (1.0 - mu) / (1.0 - prod)) * g) / denom
        return p + (f32((-lr * mu_next) / (1.0 - prod * mu_next)) * m) / denom


class RAdam(_Rule):
    def update(self, p, g, st):
        lr, (b1, b2), eps = self.hp.get("lr", 1e-3), self.hp.get("betas", (0.9, 0.999)), self.hp.get("eps", 1e-8)
        t = self.next_step(st)
        p, g = self.l2_or_decoupled(p, g, lr, self.hp.get("weight_decay", 0),
                                    self.hp.get("decoupled_weight_decay", False))
        m = lerp(st.get("exp_avg", np.zeros_like(p)), g, 1 - b1)
        v = st.get("exp_avg_sq", np.zeros_like(p)) * f32(b2) + (f32(1 - b2) * g) * g
        st["exp_avg"], st["exp_avg_sq"] = m, v
        bc1, bc2 = 1 - b1 ** t, 1 - b2 ** t
        rho_inf = 2 / (1 - b2) - 1
        rho_t = rho_inf - 2 * t * b2 ** t / bc2
        update = (m / f32(bc1)) * f32(lr)
        if rho_t > 5.0:
            rect = math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
            update = (update * (f32(bc2 ** 0.5) / (np.sqrt(v) + f32(eps)))) * f32(rect)
        return p - update


class RMSprop(_Rule):
    def update(self, p, g, st):
        lr, alpha, eps = self.hp.get("lr", 1e-2), self.hp.get("alpha", 0.99), self.hp.get("eps", 1e-8)
        mu, wd = self.hp.get("momentum", 0), self.hp.get("weight_decay", 0)
        self.next_step(st)
        if wd != 0:
            g = g + f32(wd) * p
        s = st.get("square_avg", np.zeros_like(p)) * f32(alpha) + (f32(1 - alpha) * g) * g
        st["square_avg"] = s
        if self.hp.get("centered", False):
            ga = lerp(st.get("grad_avg", np.zeros_like(p)), g, 1 - alpha)
            st["grad_avg"] = ga
            avg = np.sqrt(fma32(-ga, ga, s))  # (fused on every build: see the kernel)
        else:
            avg = np.sqrt(s)
        avg = avg + f32(eps)  # eps outside the sqrt
        if mu > 0:
            b = st.get("momentum_buffer", np.zeros_like(p)) * f32(mu) + g / avg
            st["momentum_buffer"] = b
            return p + f32(-lr) * b
        return p + (f32(-lr) * g) / avg


class Adagrad(_Rule):
    def update(self, p, g, st):
        lr, lr_decay, eps = self.hp.get("lr", 1e-2), self.hp.get("lr_decay", 0), self.hp.get("eps", 1e-10)
        wd = self.hp.get("weight_decay", 0)
        t = self.next_step(st)
        if wd != 0:
            g = g + f32(wd) * p
        clr = lr / (1 + (t - 1) * lr_decay)
        init = self.hp.get("initial_accumulator_value", 0)
        G = st.get("sum", np.full_like(p, f32(init))) + g * g
        st["sum"] = G
        return p + (f32(-clr) * g) / (np.sqrt(G) + f32(eps))


class Adadelta(_Rule):
    def update(self, p, g, st):
        lr, rho, eps = self.hp.get("lr", 1.0), self.hp.get("rho", 0.9), self.hp.get("eps", 1e-6)
        wd = self.hp.get("weight_decay", 0)
        self.next_step(st)
        if wd != 0:
            g = g + f32(wd) * p
        s = st.get("square_avg", np.zeros_like(p)) * f32(rho) + (f32(1 - rho) * g) * g
        a = st.get("acc_delta", np.zeros_like(p))
        delta = np.sqrt(a + f32(eps)) / np.sqrt(s + f32(eps)) * g  # eps inside both sqrts
        st["square_avg"] = s
        st["acc_delta"] = a * f32(rho) + (f32(1 - rho) * delta) * delta
        return p + f32(-lr) * delta


def torch_sign(x: np.ndarray) -> np.ndarray:
    """torch.sign on float32: (x > 0) − (x < 0), so 0 for ±0 and for NaN."""
    return (x > 0).astype(f32) - (x < 0).astype(f32)


class Rprop(_Rule):
    def update(self, p, g, st):
        lr = self.hp.get("lr", 1e-2)
        etaminus, etaplus = self.hp.get("etas", (0.5, 1.2))
        lo, hi = self.hp.get("step_sizes", (1e-6, 50))
        self.next_step(st)
        prev = st.get("prev", np.zeros_like(p))
        step_size = st.get("step_size", np.full_like(p, f32(lr)))
        with np.errstate(invalid="ignore", over="ignore"):
            s = torch_sign(g * prev)  # the sign of the float32 product (an underflow counts as 0)
        factor = np.where(s > 0, f32(etaplus), np.where(s < 0, f32(etaminus), f32(1)))
        with np.errstate(invalid="ignore"):
            step_size = np.minimum(np.maximum(step_size * factor, f32(lo)), f32(hi))
        g = np.where(factor == f32(etaminus), f32(0), g)  # where the step shrank
        st["prev"], st["step_size"] = g, step_size
        return p + (-torch_sign(g)) * step_size


class ASGD(_Rule):
    """eta and mu are float32 scalars; each step uses the values the previous one stored."""

    def update(self, p, g, st):
        lr, lambd = self.hp.get("lr", 1e-2), self.hp.get("lambd", 1e-4)
        alpha, t0, wd = self.hp.get("alpha", 0.75), self.hp.get("t0", 1e6), self.hp.get("weight_decay", 0)
        t = self.next_step(st)
        eta, mu = float(st.get("eta", f32(lr))), float(st.get("mu", f32(1)))
        if wd != 0:
            g = g + f32(wd) * p
        p = p * f32(1 - lambd * eta)
        p = p + f32(-eta) * g
        ax = st.get("ax", np.zeros_like(p))
        with np.errstate(invalid="ignore", over="ignore"):
            st["ax"] = ax + (p - ax) * f32(mu) if mu != 1 else p.copy()
        st["eta"] = f32(lr / ((1 + lambd * lr * t) ** alpha))
        st["mu"] = f32(1 / max(1, t - t0))
        return p


class Adafactor(_Rule):
    """torch's _single_tensor_adafactor. Norms and means in float64, rounded to
    float32 once (torch reduces in float32: its results may differ in the last bit)."""

    def update(self, p, g, st):
        lr, beta2_decay = self.hp.get("lr", 1e-2), self.hp.get("beta2_decay", -0.8)
        eps1, eps2 = self.hp.get("eps", (None, 1e-3))
        eps1 = float(np.finfo(f32).eps) if eps1 is None else eps1
        d, wd = self.hp.get("d", 1.0), self.hp.get("weight_decay", 0.0)
        t = self.next_step(st)

        def norm(x, **kw):
            return f32(np.sqrt((x.astype(np.float64) ** 2).sum(**kw)))

        def lerp_fma(m, target, w):  # torch's lerp, one rounding (FMA)
            w = f32(w)
            diff = np.float64(1) * (target - m)
            if abs(w) < 0.5:
                return (m + np.float64(w) * diff).astype(f32)
            return (target + np.float64(w - f32(1)) * diff).astype(f32)

        w = t ** beta2_decay
        rho = min(lr, 1 / t ** 0.5)
        alpha = max(eps2, float(norm(p)) / p.size ** 0.5) * rho
        if wd != 0:
            p = p * f32(1 - lr * wd)
        if g.ndim > 1:
            row = norm(g, axis=-1, keepdims=True)
            row = row * row / f32(g.shape[-1])
            col = norm(g, axis=-2, keepdims=True)
            col = col * col / f32(g.shape[-2])
            st["row_var"] = lerp_fma(st.get("row_var", np.zeros_like(row)), row, w)
            st["col_var"] = lerp_fma(st.get("col_var", np.zeros_like(col)), col, w)
            mean = st["row_var"].astype(np.float64).mean(axis=-2, keepdims=True).astype(f32)
            var = st["row_var"] * st["col_var"] / np.maximum(mean, f32(eps1))
        else:
            st["variance"] = lerp_fma(st.get("variance", np.zeros_like(p)), g * g, w)
            var = st["variance"]
        u = f32(1) / np.sqrt(np.maximum(var, f32(eps1 * eps1))) * g
        denom = max(1.0, float(norm(u)) / (u.size ** 0.5 * d))
        return (p + np.float64(f32(-alpha / denom)) * u.astype(np.float64)).astype(f32)


RULES = {"SGD": SGD, "Adam": Adam, "Adamax": Adamax, "NAdam": NAdam, "RAdam": RAdam,
         "RMSprop": RMSprop, "Adagrad": Adagrad, "Adadelta": Adadelta, "Rprop": Rprop,
         "ASGD": ASGD, "Adafactor": Adafactor}


def make(name: str, **hp) -> _Rule:
    """A reference optimizer for a pve/torch optimizer name (AdamW -> decoupled Adam)."""
    if name == "AdamW":
        hp.setdefault("weight_decay", 1e-2)
        hp["decoupled_weight_decay"] = True
        name = "Adam"
    return RULES[name](**hp)


class Lookahead:
    """Slow weights start at the initial params; every k steps φ += α(θ − φ), θ = φ."""

    def __init__(self, inner: _Rule, params: List[np.ndarray], k: int = 5, alpha: float = 0.5):
        self.inner, self.k, self.alpha = inner, k, alpha
        self.slow = [p.astype(f32).copy() for p in params]
        self.count = 0

    def step(self, params, grads) -> None:
        self.inner.step(params, grads)
        self.count += 1
        if self.count >= self.k:
            self.count = 0
            for p, s in zip(params, self.slow):
                s[...] = s + f32(self.alpha) * (p - s)
                p[...] = s
