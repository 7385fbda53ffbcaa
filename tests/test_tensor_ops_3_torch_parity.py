"""The ops of test_tensor_ops_3 against torch itself: result dtypes and shapes, error
types, in-place rules and gradients; values for the deterministic ops (random streams
differ by design, so random ops are compared on everything but their values).
Skipped without torch."""

import numpy as np
import pytest

import pyvision_engine as pve

torch = pytest.importorskip("torch", reason="torch not installed: parity with torch not tested")

rng = np.random.default_rng(303)
nan, inf = float("nan"), float("inf")


def dtype_name(t):
    return str(t.dtype).replace("torch.", "")


def lib_dtype(L, name):
    return {"float32": L.float32, "int64": L.int64, "bool": L.bool_ if L is pve else torch.bool}[name]


def outcome(fn):
    try:
        return fn(), None
    except Exception as e:  # noqa: BLE001  (compared by type below)
        return None, e


def same_error(fn_p, fn_t):
    """Both raise (pve an exception of torch's type) or both succeed."""
    rp, ep = outcome(fn_p)
    rt, et = outcome(fn_t)
    assert (ep is None) == (et is None), f"pve: {ep!r} torch: {et!r}"
    if et is not None:
        assert isinstance(ep, type(et)), f"pve raised {type(ep).__name__}, torch {type(et).__name__}"
    return rp, rt


# ------------------------------------------------------------ random
RANDOM_CALLS = [
    ("normal_", lambda L, t: t.normal_(1.0, 2.0)),
    ("normal_neg", lambda L, t: t.normal_(0, -1)),
    ("uniform_", lambda L, t: t.uniform_(-1, 1)),
    ("uniform_bad", lambda L, t: t.uniform_(2, 1)),
    ("bernoulli_", lambda L, t: t.bernoulli_(0.5)),
    ("bernoulli_bad", lambda L, t: t.bernoulli_(1.5)),
    ("bernoulli_tensor", lambda L, t: t.bernoulli_(L.full((3,), 0.5))),
    ("random_", lambda L, t: t.random_()),
    ("random_to", lambda L, t: t.random_(2)),
    ("random_from_to", lambda L, t: t.random_(0, 2)),
    ("random_bad", lambda L, t: t.random_(5, 2)),
    ("random_big", lambda L, t: t.random_(0, 3)),
    ("exponential_", lambda L, t: t.exponential_(1.5)),
    ("exponential_bad", lambda L, t: t.exponential_(0)),
    ("log_normal_", lambda L, t: t.log_normal_()),
    ("log_normal_bad", lambda L, t: t.log_normal_(1, -1)),
    ("cauchy_", lambda L, t: t.cauchy_()),
    ("cauchy_bad", lambda L, t: t.cauchy_(0, 0)),
    ("geometric_", lambda L, t: t.geometric_(0.5)),
    ("geometric_bad", lambda L, t: t.geometric_(1.0)),
    ("bernoulli", lambda L, t: t.bernoulli(0.3)),
    ("multinomial", lambda L, t: t.multinomial(2)),
]


@pytest.mark.parametrize("dtype", ["float32", "int64", "bool"])
@pytest.mark.parametrize("name,call", RANDOM_CALLS)
def test_random_fills_dtype_errors_and_self(name, call, dtype):
    def run(L):
        t = L.ones(2, 3, dtype=lib_dtype(L, dtype)) if "bernoulli_tensor" not in name else \
            L.ones(3, dtype=lib_dtype(L, dtype))
        if name == "multinomial":
            t = L.ones(2, 3, dtype=lib_dtype(L, dtype))
        v = t._version
        out = call(L, t)
        return t, v, out
    rp, rt = same_error(lambda: run(pve), lambda: run(torch))
    if rt is None:
        return
    tp, vp, outp = rp
    tt, vt, outt = rt
    assert (outp is tp) == (outt is tt)
    assert tp._version - vp == tt._version - vt
    assert dtype_name(outp) == dtype_name(outt) and tuple(outp.shape) == tuple(outt.shape)


def test_random_value_ranges_match_torch_for_exact_ranges():
    for dt in ("float32", "int64", "bool"):
        p = pve.zeros(2000, dtype=lib_dtype(pve, dt)).random_(0, 2).numpy()
        t = torch.zeros(2000, dtype=lib_dtype(torch, dt)).random_(0, 2).numpy()
        assert set(np.unique(p).tolist()) == set(np.unique(t).tolist())


def test_inplace_random_in_graph_and_on_leaf_as_torch():
    for L in (pve, torch):
        x = L.ones(3, requires_grad=True)
        with pytest.raises(RuntimeError):
            x.normal_()
    xs = [L.ones(3, requires_grad=True) for L in (pve, torch)]
    for x in xs:
        y = x * 2
        y.exponential_()
        (y * 3).sum().backward()
    np.testing.assert_array_equal(xs[0].grad.numpy(), xs[1].grad.numpy())


NORMAL_CALLS = [
    lambda L: L.normal(L.zeros(2, 1), L.ones(3)),
    lambda L: L.normal(L.zeros(2, 3), 2.0),
    lambda L: L.normal(1.0, L.ones(4)),
    lambda L: L.normal(1.0, 2.0, size=(2, 2)),
    lambda L: L.normal(1.0, 2.0),
    lambda L: L.normal(1.0, -2.0, size=(2,)),
    lambda L: L.normal(L.zeros(2), -1.0),
    lambda L: L.normal(L.zeros(2), -L.ones(2)),
    lambda L: L.normal(L.zeros(2, dtype=L.int64), 1.0),
    lambda L: L.bernoulli(L.full((2, 3), 0.5)),
    lambda L: L.bernoulli(L.tensor([2.0])),
    lambda L: L.bernoulli(L.ones(2, dtype=L.int64)),
    lambda L: L.multinomial(L.tensor([0.2, 0.8]), 3),
    lambda L: L.multinomial(L.tensor([0.2, 0.8]), 3, True),
    lambda L: L.multinomial(L.ones(4, 3), 2),
    lambda L: L.multinomial(L.tensor([0.0, 0.0]), 1),
    lambda L: L.multinomial(L.tensor([nan, 1.0]), 1),
    lambda L: L.multinomial(L.tensor([inf, 1.0]), 1),
    lambda L: L.multinomial(L.ones(2, 2, 2), 1),
    lambda L: L.multinomial(L.ones(3), 0),
    lambda L: L.multinomial(L.tensor([1, 2]), 1),
    lambda L: L.rand_like(L.zeros(2, 3)),
    lambda L: L.randn_like(L.zeros(2, 3)),
    lambda L: L.rand_like(L.zeros(2, dtype=L.int64)),
    lambda L: L.randn_like(L.zeros(2, dtype=L.int64)),
    lambda L: L.randint_like(L.zeros(2, 3), 5),
    lambda L: L.randint_like(L.zeros(2, dtype=L.int64), 2, 5),
    lambda L: L.randint_like(L.zeros(2), 5, 2),
]


@pytest.mark.parametrize("i", range(len(NORMAL_CALLS)))
def test_sampling_functions_shapes_dtypes_and_errors(i):
    call = NORMAL_CALLS[i]
    rp, rt = same_error(lambda: call(pve), lambda: call(torch))
    if rt is not None:
        assert dtype_name(rp) == dtype_name(rt) and tuple(rp.shape) == tuple(rt.shape)


def test_normal_gradient_is_zero_as_torch():
    grads = []
    for L in (pve, torch):
        m, s = L.zeros(2, 1, requires_grad=True), L.ones(3, requires_grad=True)
        out = L.normal(m, s)
        assert out.requires_grad
        out.sum().backward()
        grads.append((m.grad.numpy(), s.grad.numpy()))
    for a, b in zip(*grads):
        np.testing.assert_array_equal(a, b)
