"""Plain-numpy float64 activation and softmax references (the textbook formulas)."""

from __future__ import annotations

import math

import numpy as np

_erf = np.vectorize(math.erf, otypes=[np.float64])


def relu(x):
    return np.where(x > 0, x, 0.0) + 0 * x  # 0 * x keeps NaN


def relu6(x):
    return np.minimum(np.maximum(x, 0.0), 6.0)


def leaky_relu(x, slope=0.01):
    return np.where(x > 0, x, slope * x)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def tanh(x):
    return np.tanh(x)


def gelu(x):
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def silu(x):
    return x * sigmoid(x)


def hardswish(x):
    return x * np.minimum(np.maximum(x + 3.0, 0.0), 6.0) / 6.0


def hardsigmoid(x):
    return np.minimum(np.maximum(x + 3.0, 0.0), 6.0) / 6.0


def prelu(x, w):
    shape = [1] * x.ndim
    if w.size > 1:
        shape[1 if x.ndim >= 2 else 0] = w.size
    return np.where(x > 0, x, w.reshape(shape) * x)


def softmax(x, dim):
    e = np.exp(x - x.max(axis=dim, keepdims=True))
    return e / e.sum(axis=dim, keepdims=True)


def log_softmax(x, dim):
    m = x.max(axis=dim, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=dim, keepdims=True))


ELEMENTWISE = {
    "relu": relu, "relu6": relu6, "leaky_relu": leaky_relu, "sigmoid": sigmoid, "tanh": tanh,
    "gelu": gelu, "gelu_tanh": gelu_tanh, "silu": silu, "hardswish": hardswish,
    "hardsigmoid": hardsigmoid,
}
