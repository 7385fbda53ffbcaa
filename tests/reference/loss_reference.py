"""Plain-numpy float64 loss references, written from the definitions in torch's docs."""

from __future__ import annotations

import numpy as np

from reference.activation_reference import log_softmax


def _reduce(loss, reduction, denom=None):
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / (denom if denom is not None else loss.size)


def cross_entropy(x, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """x (N, C) logits; target (N,) int class indices or (N, C) probabilities."""
    c = x.shape[1]
    logp = log_softmax(x, 1)
    w = np.ones(c) if weight is None else weight
    eps = label_smoothing
    if target.dtype.kind == "f":
        t = target * (1 - eps) + eps / c
        loss = -(w * t * logp).sum(axis=1)
        return _reduce(loss, reduction, denom=x.shape[0])
    valid = target != ignore_index
    safe = np.where(valid, target, 0)
    wy = w[safe] * valid
    nll = -wy * logp[np.arange(len(target)), safe]
    smooth = -(w * logp).sum(axis=1) * valid
    loss = (1 - eps) * nll + eps / c * smooth
    return _reduce(loss, reduction, denom=wy.sum())


def nll_loss(logp, target, weight=None, ignore_index=-100, reduction="mean"):
    c = logp.shape[1]
    w = np.ones(c) if weight is None else weight
    valid = target != ignore_index
    safe = np.where(valid, target, 0)
    wy = w[safe] * valid
    loss = -wy * logp[np.arange(len(target)), safe]
    return _reduce(loss, reduction, denom=wy.sum())


def mse_loss(x, t, reduction="mean"):
    return _reduce((x - t) ** 2, reduction)


def l1_loss(x, t, reduction="mean"):
    return _reduce(np.abs(x - t), reduction)


def smooth_l1_loss(x, t, reduction="mean", beta=1.0):
    d = np.abs(x - t)
    loss = d if beta == 0 else np.where(d < beta, 0.5 * d * d / beta, d - 0.5 * beta)
    return _reduce(loss, reduction)


def bce_with_logits(x, t, weight=None, pos_weight=None, reduction="mean"):
    sig = 1.0 / (1.0 + np.exp(-x))
    pw = 1.0 if pos_weight is None else pos_weight
    loss = -(pw * t * np.log(sig) + (1 - t) * np.log(1 - sig))
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)
