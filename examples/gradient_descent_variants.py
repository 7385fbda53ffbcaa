"""Batch, mini-batch and stochastic gradient descent are one optimizer (SGD)
with three batch sizes.

A linear regression y = X·w* + b* + noise (1024 samples, 8 features) is fitted
three times with pve.optim.SGD from the same start:
  * batch GD:       one step per epoch on all 1024 samples (lr 0.1)
  * mini-batch GD:  32 steps per epoch on batches of 32 (lr 0.05)
  * stochastic GD:  1024 steps per epoch on single samples (lr 0.01)
and the full-data mean squared error is printed after each epoch.

    PYTHONPATH=. python examples/gradient_descent_variants.py
"""

from __future__ import annotations

import numpy as np

import pyvision_engine as pve

N, D, EPOCHS = 1024, 8, 8


def make_data(seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, D)).astype(np.float32)
    w_true = rng.standard_normal((D, 1)).astype(np.float32)
    y = (x @ w_true + 0.5 + 0.1 * rng.standard_normal((N, 1))).astype(np.float32)
    return x, y


def mse(model: pve.nn.Module, x: np.ndarray, y: np.ndarray) -> pve.Tensor:
    diff = model(pve.from_numpy(x)) - pve.from_numpy(y)
    return (diff * diff).mean()


def train(batch_size: int, lr: float, x: np.ndarray, y: np.ndarray) -> list:
    pve.manual_seed(0)  # the same initial weights for every variant
    model = pve.nn.Linear(D, 1)
    opt = pve.optim.SGD(model.parameters(), lr=lr)
    rng = np.random.default_rng(1)
    losses = []
    for _ in range(EPOCHS):
        order = rng.permutation(N)  # reshuffle each epoch
        for start in range(0, N, batch_size):
            idx = order[start:start + batch_size]
            opt.zero_grad()
            mse(model, x[idx], y[idx]).backward()
            opt.step()
        with pve.no_grad():
            losses.append(float(mse(model, x, y).item()))
    return losses


def main() -> None:
    x, y = make_data()
    variants = [("batch GD (B=1024)", N, 0.1), ("mini-batch GD (B=32)", 32, 0.05),
                ("stochastic GD (B=1)", 1, 0.01)]
    results = {name: train(b, lr, x, y) for name, b, lr in variants}
    print("full-data MSE after each epoch")
    print("epoch  " + "  ".join(f"{name:>22}" for name in results))
    for e in range(EPOCHS):
        print(f"{e + 1:5d}  " + "  ".join(f"{results[n][e]:22.5f}" for n in results))


if __name__ == "__main__":
    main()
