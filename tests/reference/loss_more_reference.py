"""Plain-numpy float64 references for the margin, embedding and likelihood losses,
written from the formulas in torch's docs (per-sample loops where the docs loop)."""

from __future__ import annotations

import math

import numpy as np


def reduce(loss, reduction):
    loss = np.asarray(loss, dtype=np.float64)
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.mean()


def multilabel_soft_margin(x, y, weight=None, reduction="mean"):
    log_sig = lambda z: -np.log1p(np.exp(-z))  # noqa: E731
    loss = -(y * log_sig(x) + (1 - y) * log_sig(-x))
    if weight is not None:
        loss = loss * weight
    return reduce(loss.mean(axis=-1), reduction)


def multilabel_margin(x, y, reduction="mean"):
    x2, y2 = np.atleast_2d(x), np.atleast_2d(y)
    out = []
    for row, targets in zip(x2, y2):
        listed = []
        for j in targets:
            if j < 0:
                break
            listed.append(j)
        total = sum(max(0.0, 1 - (row[j] - row[i])) for j in listed
                    for i in range(len(row)) if i not in listed)
        out.append(total / len(row))
    out = np.array(out)
    return reduce(out if x.ndim == 2 else out[0], reduction)


def multi_margin(x, y, p=1, margin=1.0, weight=None, reduction="mean"):
    x2, y2 = np.atleast_2d(x), np.atleast_1d(y)
    out = []
    for row, t in zip(x2, y2):
        w = 1.0 if weight is None else weight[t]
        out.append(sum(w * max(0.0, margin - row[t] + row[i]) ** p
                       for i in range(len(row)) if i != t) / len(row))
    return reduce(np.array(out), reduction)


def soft_margin(x, y, reduction="mean"):
    return reduce(np.log1p(np.exp(-y * x)), reduction)


def margin_ranking(x1, x2, y, margin=0.0, reduction="mean"):
    return reduce(np.maximum(0.0, -y * (x1 - x2) + margin), reduction)


def hinge_embedding(x, y, margin=1.0, reduction="mean"):
    return reduce(np.where(y == 1, x, np.maximum(0.0, margin - x)), reduction)


def cosine_embedding(x1, x2, y, margin=0.0, reduction="mean"):
    dot = (x1 * x2).sum(-1)
    cos = dot / np.sqrt(((x1 * x1).sum(-1) + 1e-12) * ((x2 * x2).sum(-1) + 1e-12))
    return reduce(np.where(y == 1, 1 - cos, np.maximum(0.0, cos - margin)), reduction)


def _pdist(a, b, p, eps):
    return (np.abs(a - b + eps) ** p).sum(-1) ** (1 / p)


def triplet_margin(a, pos, neg, margin=1.0, p=2.0, eps=1e-6, swap=False, reduction="mean"):
    d_pos, d_neg = _pdist(a, pos, p, eps), _pdist(a, neg, p, eps)
    if swap:
        d_neg = np.minimum(d_neg, _pdist(pos, neg, p, eps))
    return reduce(np.maximum(0.0, margin + d_pos - d_neg), reduction)


def poisson_nll(x, t, log_input=True, full=False, eps=1e-8, reduction="mean"):
    loss = np.exp(x) - t * x if log_input else x - t * np.log(x + eps)
    if full:
        safe = np.where(t > 1, t, 2.0)
        loss = loss + np.where(t > 1, safe * np.log(safe) - safe
                               + 0.5 * np.log(2 * math.pi * safe), 0.0)
    return reduce(loss, reduction)


def gaussian_nll(x, t, var, full=False, eps=1e-6, reduction="mean"):
    var = np.maximum(var, eps)
    loss = 0.5 * (np.log(var) + (x - t) ** 2 / var)
    if full:
        loss = loss + 0.5 * math.log(2 * math.pi)
    return reduce(loss, reduction)
