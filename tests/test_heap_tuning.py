"""The heap setting made at import (csrc/core/memory.h): freed activations stay in the
heap, so training steps after the first do not page-fault; PVE_MALLOC_TUNING=0 opts out."""

from __future__ import annotations

import platform

import pytest

from subprocess_env import run_python

# A few training steps of a CNN whose activations (16 MB each) are far above
# glibc's default mmap threshold, then the minor page faults per later step.
STEPS = """
import resource, numpy as np, pyvision_engine as pve
pve.set_num_threads(1)
model = pve.nn.Sequential(pve.nn.Conv2d(3, 32, 3, padding=1), pve.nn.BatchNorm2d(32),
                          pve.nn.ReLU(), pve.nn.AdaptiveAvgPool2d(1), pve.nn.Flatten(),
                          pve.nn.Linear(32, 10))
opt = pve.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
x = pve.tensor(np.random.default_rng(0).standard_normal((32, 3, 64, 64)).astype(np.float32))
y = pve.tensor(np.arange(32) % 10)
def step():
    opt.zero_grad()
    pve.nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
for _ in range(2):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(4):
    step()
print(pve.info()["heap"], (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 4)
"""

glibc_only = pytest.mark.skipif(platform.libc_ver()[0] != "glibc",
                                reason="the heap setting is glibc's mallopt; this C library "
                                       "keeps its defaults")


@glibc_only
def test_training_steps_do_not_page_fault_after_the_first():
    tuned = run_python(["-c", STEPS])
    assert tuned.returncode == 0, tuned.stderr
    state, faults = tuned.stdout.rsplit(maxsplit=1)
    default = run_python(["-c", STEPS], PVE_MALLOC_TUNING="0")
    assert default.returncode == 0, default.stderr
    default_state, default_faults = default.stdout.rsplit(maxsplit=1)
    assert state == "tuned" and default_state == "default (PVE_MALLOC_TUNING=0)"
    # Each step frees and re-allocates several 16 MB arrays (4,096 pages each):
    # thousands of faults by default, next to none once they stay in the heap.
    assert float(default_faults) > 1000
    assert float(faults) < 0.05 * float(default_faults)
