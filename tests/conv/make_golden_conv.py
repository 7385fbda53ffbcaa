"""Regenerates tests/golden/conv2d.npz with torch (run by hand: python tests/conv/make_golden_conv.py)."""

import os

import numpy as np
import torch

from golden_conv_cases import CASES  # noqa: E402  (run from tests/conv)


def main() -> None:
    out = {}
    rng = np.random.default_rng(1234)
    for i, (xs, ws, stride, padding, dilation, groups, bias) in enumerate(CASES):
        x = torch.tensor(rng.standard_normal(xs).astype(np.float32), requires_grad=True)
        w = torch.tensor(rng.standard_normal(ws).astype(np.float32), requires_grad=True)
        b = torch.tensor(rng.standard_normal(ws[0]).astype(np.float32), requires_grad=True) if bias else None
        y = torch.nn.functional.conv2d(x, w, b, stride, padding, dilation, groups)
        gy = torch.tensor(rng.standard_normal(tuple(y.shape)).astype(np.float32))
        y.backward(gy)
        out[f"{i}_x"], out[f"{i}_w"], out[f"{i}_gy"] = x.detach().numpy(), w.detach().numpy(), gy.numpy()
        out[f"{i}_y"], out[f"{i}_gx"], out[f"{i}_gw"] = y.detach().numpy(), x.grad.numpy(), w.grad.numpy()
        if bias:
            out[f"{i}_b"], out[f"{i}_gb"] = b.detach().numpy(), b.grad.numpy()
    path = os.path.join(os.path.dirname(__file__), "..", "golden", "conv2d.npz")
    np.savez_compressed(path, **out)


if __name__ == "__main__":
    main()
