"""Kernels never read outside their input arrays, at every ISA level.

Each input is placed so that it ends (or starts) exactly at a page the process
may not touch (mmap + mprotect(PROT_NONE)): a read one float too far faults at
once instead of silently reading a neighbour's memory. The ordinary heap hides
such reads until an array happens to end at the top of a thread's heap (the
scalar 1x1 convolution once read a row past its input that way: GCC 12's
vectorizer loaded the next row's pixels, unused, and a session run from a
worker thread crashed). The cases run in a subprocess, so a fault fails the
test naming the case that was running instead of killing pytest.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from pyvision_engine import _C

pytestmark = pytest.mark.kernels

if not sys.platform.startswith("linux"):
    pytest.skip("guard pages use Linux's mprotect", allow_module_level=True)

ISAS = [os.environ["PVE_ISA"]] if os.environ.get("PVE_ISA") else _C.supported_isas()

CASES = textwrap.dedent(r'''
    import ctypes, mmap, sys
    import numpy as np
    import pyvision_engine as pve
    from pyvision_engine import backends
    from pyvision_engine.nn import functional as F

    libc = ctypes.CDLL(None)
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    PAGE = mmap.PAGESIZE
    SIDE = sys.argv[1]          # the guarded side: "end" or "start"
    KEEP = []                   # the mappings outlive their arrays

    def guarded(shape, seed=0):
        """A float32 array touching a PROT_NONE page at its end (or start)."""
        count = int(np.prod(shape))
        data_pages = (count * 4 + PAGE - 1) // PAGE
        buf = mmap.mmap(-1, (data_pages + 1) * PAGE)
        base = ctypes.addressof(ctypes.c_char.from_buffer(buf))
        if SIDE == "end":
            guard, offset = base + data_pages * PAGE, data_pages * PAGE - count * 4
        else:
            guard, offset = base, PAGE
        assert libc.mprotect(guard, PAGE, 0) == 0
        KEEP.append(buf)
        a = np.frombuffer(buf, np.float32, count, offset).reshape(shape)
        a[...] = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
        return a

    def case(name):
        print("case", name, flush=True)

    def leaf(a):
        """A tensor on a (guarded) array's memory, recording gradients."""
        t = pve.from_numpy(a)
        t.requires_grad = True
        return t

    # ---- convolution: every algorithm family, forward and both gradients
    conv_shapes = [  # (N, C, H, W, K, kernel, stride, padding, groups)
        (2, 32, 32, 32, 8, 1, 1, 0, 1), (1, 24, 7, 9, 40, 1, 1, 0, 1), (2, 16, 15, 13, 12, 1, 2, 0, 1),
        (2, 8, 13, 11, 8, 3, 1, 1, 1), (1, 16, 10, 10, 16, 3, 1, 1, 1), (1, 12, 9, 7, 20, 3, 2, 1, 1),
        (1, 3, 23, 21, 8, 7, 2, 3, 1), (2, 16, 11, 9, 16, 3, 1, 1, 16), (1, 24, 14, 13, 24, 5, 2, 2, 24),
        (1, 8, 9, 9, 8, 3, 1, 0, 2)]
    for algorithm in backends.conv.ALGORITHMS:
        for (n, c, h, w, k, r, s, p, g) in conv_shapes:
            case(f"conv2d {algorithm} {(n, c, h, w, k, r, s, p, g)}")
            x, wt = guarded((n, c, h, w), 1), guarded((k, c // g, r, r), 2)
            b = guarded((k,), 3)
            with backends.conv.force_algorithm(algorithm):
                y = F.conv2d(leaf(x), leaf(wt), pve.from_numpy(b), s, p, 1, g)
                y.backward(pve.from_numpy(guarded(tuple(y.shape), 4)))
                conv = pve.nn.Conv2d(c, k, r, s, p, groups=g).eval()
                conv.weight.data = pve.from_numpy(wt)
                with pve.no_grad():  # eval: packed weights, fused epilogue
                    conv(x)
                    conv(x)

    # ---- pooling, activations, normalization, losses, linear
    x = guarded((2, 5, 13, 11), 5)
    for name, fn in [
        ("max_pool2d", lambda t: F.max_pool2d(t, 3, 2, 1, ceil_mode=True)),
        ("avg_pool2d", lambda t: F.avg_pool2d(t, 3, 2, 1, ceil_mode=True, count_include_pad=False)),
        ("adaptive_avg_pool2d", lambda t: F.adaptive_avg_pool2d(t, (4, 3))),
        ("adaptive_max_pool2d", lambda t: F.adaptive_max_pool2d(t, (4, 3))),
        ("global average pool", lambda t: F.adaptive_avg_pool2d(t, 1)),
        ("relu", F.relu), ("sigmoid", F.sigmoid), ("gelu", F.gelu), ("hardswish", F.hardswish),
        ("silu", F.silu), ("softmax", lambda t: F.softmax(t, 1)),
        ("batch_norm", lambda t: F.batch_norm(t, None, None, training=True)),
        ("layer_norm", lambda t: F.layer_norm(t, (13, 11))),
        ("group_norm", lambda t: F.group_norm(t, 5)),
    ]:
        case(name)
        out = fn(leaf(x))
        out.backward(pve.from_numpy(guarded(tuple(out.shape), 6)))
        with pve.no_grad():
            fn(pve.from_numpy(x))
    case("cross_entropy")
    logits = leaf(guarded((37, 1000), 7))
    F.cross_entropy(logits, pve.tensor(np.arange(37) % 1000)).backward()
    case("linear")
    F.linear(leaf(guarded((7, 33), 8)), leaf(guarded((19, 33), 9)),
             pve.from_numpy(guarded((19,), 10))).sum().backward()

    # ---- MobileNetV2 blocks: the channel-blocked eval sequence
    case("mobilenet_v2 blocked eval")
    net = pve.models.mobilenet_v2(num_classes=10).eval()
    with pve.no_grad():
        net(guarded((1, 3, 64, 48), 11))
    print("all cases ran", flush=True)
''')


@pytest.mark.parametrize("side", ["end", "start"])
@pytest.mark.parametrize("isa", ISAS)
def test_kernels_stay_inside_their_inputs(isa, side, tmp_path):
    script = tmp_path / "bounds_cases.py"
    script.write_text(CASES)
    env = dict(os.environ, PVE_ISA=isa, OMP_NUM_THREADS="2")
    run = subprocess.run([sys.executable, str(script), side], env=env, capture_output=True,
                         text=True, timeout=600)
    ran = [line for line in run.stdout.splitlines() if line.startswith("case ")]
    assert run.returncode == 0 and "all cases ran" in run.stdout, (
        f"PVE_ISA={isa}, guard at the {side}: exit status {run.returncode} during "
        f"{ran[-1] if ran else 'start-up'}\n{run.stderr[-3000:]}")
