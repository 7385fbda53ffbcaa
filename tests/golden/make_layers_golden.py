"""Writes tests/golden/layers_golden.npz from torch (run with torch 2.x installed):

    python tests/golden/make_layers_golden.py

The cases live in tests/layers/layer_cases.py; tests/layers/test_layers_golden.py
replays them through pve without torch.
"""

import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "layers"))

import layer_cases  # noqa: E402


def tensor(a, requires_grad):
    t = torch.from_numpy(np.array(a))
    return t.requires_grad_(True) if requires_grad and t.dtype.is_floating_point else t


def main() -> None:
    torch.manual_seed(0)
    flat = layer_cases.run_all(torch, torch.nn.functional, tensor)
    for momentum in (0.1, None):
        rm, rv, n = layer_cases.batchnorm_running_stats(
            torch, lambda m: torch.nn.BatchNorm2d(3, momentum=m), tensor, momentum=momentum)
        flat[f"bn_running_{momentum}/mean"], flat[f"bn_running_{momentum}/var"] = rm, rv
        flat[f"bn_running_{momentum}/count"] = np.array(n)
    flat["meta/torch_version"] = np.array(torch.__version__)
    np.savez_compressed(os.path.join(HERE, "layers_golden.npz"), **flat)
    print(f"wrote {len(flat)} arrays with torch {torch.__version__}")


if __name__ == "__main__":
    main()
