"""The ops of test_tensor_ops_more against torch itself: values, dtypes, shapes, gradients
(ties, zeros and NaN included), error types and in-place rules. Skipped without torch."""

import math

import numpy as np
import pytest

import pyvision_engine as pve

torch = pytest.importorskip("torch", reason="torch not installed: parity with torch not tested")

rng = np.random.default_rng(77)
nan, inf = float("nan"), float("inf")


def to_lib(L, value):
    """A numpy array / number as L's tensor (float64 arrays become float32)."""
    if isinstance(value, np.ndarray):
        if value.dtype == np.float64:
            value = value.astype(np.float32)
        return L.tensor(value) if L is pve else torch.from_numpy(value.copy())
    return value


def dtype_name(t):
    return str(t.dtype).replace("torch.", "")


def assert_same(p, t, rtol=1e-5, atol=1e-6, what=""):
    if isinstance(t, (tuple, list)):
        assert isinstance(p, (tuple, list)) and len(p) == len(t), what
        for a, b in zip(p, t):
            assert_same(a, b, rtol, atol, what)
        return
    if isinstance(t, bool):
        assert p is t or p == t, what
        return
    assert tuple(p.shape) == tuple(t.shape), f"{what}: shape {tuple(p.shape)} != {tuple(t.shape)}"
    assert dtype_name(p) == dtype_name(t), f"{what}: dtype {p.dtype} != {t.dtype}"
    np.testing.assert_allclose(p.detach().numpy(), t.detach().numpy(), rtol=rtol, atol=atol,
                               err_msg=what)


def run_both(fn, arrays, grad=True, rtol=1e-5, atol=1e-6):
    """fn(L, *tensors) for L = pve and torch: outputs, then gradients of sum(out * w)."""
    ps = [pve.tensor(a.astype(np.float32), requires_grad=grad) for a in arrays]
    ts = [torch.tensor(a.astype(np.float32), requires_grad=grad) for a in arrays]
    out_p, out_t = fn(pve, *ps), fn(torch, *ts)
    assert_same(out_p, out_t, rtol, atol, "value")
    if not grad or not out_t.requires_grad:
        return
    w = rng.standard_normal(tuple(out_t.shape)).astype(np.float32)
    (out_p * pve.tensor(w)).sum().backward()
    (out_t * torch.from_numpy(w)).sum().backward()
    for i, (p, t) in enumerate(zip(ps, ts)):
        assert (p.grad is None) == (t.grad is None), f"grad {i} defined"
        if t.grad is not None:
            np.testing.assert_allclose(p.grad.numpy(), t.grad.numpy(), rtol=rtol, atol=atol,
                                       err_msg=f"grad {i}")


def R(*shape):
    return rng.standard_normal(shape)


def P(*shape):
    return np.abs(rng.standard_normal(shape)) + 0.5


IDX = np.array([[0, 2, 2], [1, 0, 1]])
CASES = [
    ("sign_floor_ceil", lambda L, a: L.sign(a) * a + L.floor(a) + a.ceil(), [R(3, 4)]),
    ("round", lambda L, a: L.round(a * 10) + a.round(decimals=2) + L.round(a, decimals=-1), [R(6)]),
    ("reciprocal_rsqrt", lambda L, a: L.reciprocal(a) + a.rsqrt(), [P(3, 4)]),
    ("square_erf", lambda L, a: L.square(a) + L.erf(a) * a.erf(), [R(3, 4)]),
    ("sin_cos", lambda L, a: L.sin(a) * a.cos(), [R(5)]),
    ("pow_tensor", lambda L, a, b: L.pow(a, b) + a.pow(2.5), [P(3, 1), R(4)]),
    ("pow_number_base", lambda L, a: L.pow(2.0, a), [R(4)]),
    ("maximum_minimum", lambda L, a, b: L.maximum(a, b) - a.minimum(b), [R(2, 3), R(3)]),
    ("clamp_min_max", lambda L, a: L.clamp_min(a, -0.2) + a.clamp_max(0.3), [R(3, 4)]),
    ("clamp_tensor_bounds", lambda L, a, lo, hi: L.clamp(a, lo, hi), [R(3, 4), R(4) - 1, R(3, 1) + 1]),
    ("clamp_min_tensor", lambda L, a, lo: L.clamp_min(a, lo), [R(3, 4), R(4)]),
    ("where", lambda L, a, b: L.where(a > b, a, b * 2) + a.where(b > 0, 0.5), [R(3, 4), R(4)]),
    ("lerp", lambda L, a, b, w: L.lerp(a, b, w) + a.lerp(b, 0.7), [R(2, 3), R(3), R(2, 1)]),
    ("prod", lambda L, a: L.prod(a) + a.prod(1).sum() + a.prod(0, keepdim=True).sum(), [R(3, 4)]),
    ("cumsum", lambda L, a: L.cumsum(a, 1) * a.cumsum(-2), [R(3, 4)]),
    ("amax_amin", lambda L, a: L.amax(a, (0, 2)) + a.amin(1).sum() + L.amax(a), [R(2, 3, 4)]),
    ("logsumexp", lambda L, a: L.logsumexp(a * 20, 1) + a.logsumexp((0, 1), keepdim=True), [R(3, 4)]),
    ("var_std", lambda L, a: L.var(a, 1) + L.std(a, 1, correction=0) + L.var(a, False)
     + a.std(dim=(0, 1), keepdim=True).sum(), [R(3, 4)]),
    ("norms", lambda L, a: L.norm(a) + L.norm(a, 1, 1).sum() + a.norm(float("inf"), 0).sum()
     + a.norm(3, dim=(0, 1)) + a.norm(0.5) + L.norm(a, -float("inf")), [R(3, 4)]),
    ("gather", lambda L, a: L.gather(a, 1, to_lib(L, IDX)) + a.gather(0, to_lib(L, IDX % 2)), [R(3, 4)]),
    ("scatter_src", lambda L, a, s: L.scatter(a, 1, to_lib(L, IDX[:, :2] + 1), s), [R(2, 4), R(2, 2)]),
    ("scatter_value", lambda L, a: a.scatter(0, to_lib(L, np.array([[1, 0, 1]])), 2.5), [R(2, 3)]),
    ("index_select", lambda L, a: L.index_select(a, 1, to_lib(L, np.array([3, 0, 3]))), [R(2, 4)]),
    ("masked_fill", lambda L, a, v: L.masked_fill(a, a > 0, v[0]) * a.masked_fill(a < 0, 1.5),
     [R(3, 4), R(1)]),
    ("flip_roll", lambda L, a: L.flip(a, (0, 2)) + a.roll((1, -1), (0, 1)) + L.roll(a, 3), [R(2, 3, 4)]),
    ("tril_triu", lambda L, a: L.tril(a, -1) + a.triu(2), [R(2, 3, 4)]),
    ("diag", lambda L, a, v: L.diag(a, 1).sum() + a.diag(-1).sum() + L.diag(v, -2), [R(3, 4), R(2)]),
    ("unbind_stack", lambda L, a: L.stack(L.unbind(a, 1)[::-1]) * a.unbind()[0].sum(), [R(3, 4)]),
    ("outer_dot", lambda L, a, b: L.outer(a, b) * L.dot(a, a) + a.outer(b).mT, [R(4), R(4)]),
    ("mT", lambda L, a: a.mT * 2, [R(2, 3, 4)]),
    ("sort_argsort", lambda L, a: L.sort(a, 1, descending=True).values
     + a.argsort(dim=0, stable=True).float(), [R(3, 4)]),
]


@pytest.mark.parametrize("name,fn,arrays", CASES, ids=[c[0] for c in CASES])
def test_values_and_gradients_match_torch(name, fn, arrays):
    run_both(fn, arrays)


TIES = [
    ("amax_ties_nan", lambda L, a: L.amax(a, 1), [[1, 3, 3], [nan, 1, 1]]),
    ("amax_all_ties", lambda L, a: a.amax(), [[1, 3, 3], [3, 1, 1]]),
    ("amin_nan_col", lambda L, a: L.amin(a, 0), [[1, nan, 2], [1, 2, 2]]),
    ("max_dim_index", lambda L, a: L.max(a, 0).values, [1, 3, 3]),
    ("maximum_ties_nan", lambda L, a: L.maximum(a, L.flip(a, (0,))), [1, nan, 2, 2, nan, 1]),
    ("minimum_ties_nan", lambda L, a: L.minimum(a, a * 0 + 2), [1, nan, 2, 3]),
    ("clamp_boundary", lambda L, a: L.clamp(a, 1, 2), [0, 1, 1.5, 2, 3, nan]),
    ("clamp_min_boundary", lambda L, a: a.clamp_min(1.0), [0, 1, 2]),
    ("sign_nan", lambda L, a: L.sign(a) + a, [nan, -0.0, 0.0, 2, -3]),
    ("round_half_even", lambda L, a: L.round(a) + L.round(a, decimals=1), [0.5, 1.5, 2.5, -0.5, 0.25, 0.35]),
    ("floor_ceil_zero_grad", lambda L, a: L.floor(a) + L.ceil(a), [0.5, -1.5, 2.0]),
    ("norm2_zero", lambda L, a: L.norm(a), [0, 0, 0]),
    ("norm3_zero", lambda L, a: L.norm(a, 3), [0, 0]),
    ("norm_inf_ties", lambda L, a: L.norm(a, float("inf")), [1, -3, 3]),
    ("norm_ninf_ties", lambda L, a: L.norm(a, -float("inf")), [1, -1, -2]),
    ("norm1_zero", lambda L, a: L.norm(a, 1), [1, 0, -3]),
    ("norm_half_zero", lambda L, a: L.norm(a, 0.5), [1, 0, 4]),
    ("std_constant", lambda L, a: L.std(a), [1, 1, 1]),
    ("std_dim_constant", lambda L, a: L.std(a, 1), [[1, 1], [1, 2]]),
    ("var_one_element", lambda L, a: L.var(a), [2.0]),
    ("prod_one_zero", lambda L, a: L.prod(a), [2, 0, 3]),
    ("prod_two_zeros", lambda L, a: L.prod(a), [2, 0, 0]),
    ("prod_dim_zeros", lambda L, a: L.prod(a, 1), [[2, 0, 3], [1, 2, 3], [0, 0, 1]]),
    ("logsumexp_inf", lambda L, a: L.logsumexp(a, 0), [inf, 1]),
    ("logsumexp_neg_inf", lambda L, a: L.logsumexp(a, 0), [-inf, -inf]),
    ("reciprocal_zero", lambda L, a: L.reciprocal(a), [0, 4]),
    ("rsqrt_zero", lambda L, a: L.rsqrt(a), [0, 4]),
    ("pow_zero_exponents", lambda L, a: L.pow(a, 0.0) + L.pow(a, 0.5), [0, 4]),
    ("pow_tensor_zero_base", lambda L, a: L.pow(a * 0, a - 1), [0, 0.5, 1, 2]),
    ("gather_repeats", lambda L, a: L.gather(a, 0, to_lib(L, np.array([0, 0, 2]))), [1, 3, 3]),
    ("index_select_repeats", lambda L, a: L.index_select(a, 0, to_lib(L, np.array([2, 2]))), [1, 3, 3]),
    ("sort_ties_stable", lambda L, a: L.sort(a, stable=True).values * L.arange(6).float(),
     [1, 1, 0, 1, 0, 1]),
    ("sort_ties_small_default", lambda L, a: L.sort(a, descending=True).values * L.arange(6).float(),
     [1, 1, 0, 1, 0, 1]),
    ("sort_nan_descending", lambda L, a: L.sort(a, descending=True, stable=True).values,
     [3, nan, 1, 3]),
]


@pytest.mark.parametrize("name,fn,values", TIES, ids=[t[0] for t in TIES])
def test_conventions_at_ties_zeros_and_nan_match_torch(name, fn, values):
    run_both(fn, [np.asarray(values, np.float64)], rtol=1e-6, atol=1e-7)


def test_sort_orders_of_ties_match_torch():
    values = rng.integers(0, 3, size=(4, 40)).astype(np.float32)
    values[0, ::7] = np.nan
    for kwargs in ({"stable": True}, {"stable": True, "descending": True}):
        for dim in (0, 1):
            p = pve.sort(pve.tensor(values), dim=dim, **kwargs)
            t = torch.sort(torch.from_numpy(values), dim=dim, **kwargs)
            np.testing.assert_array_equal(p.indices.numpy(), t.indices.numpy())
            np.testing.assert_array_equal(
                pve.argsort(pve.tensor(values), dim=dim, **kwargs).numpy(),
                torch.argsort(torch.from_numpy(values), dim=dim, **kwargs).numpy())
    # torch's default (stable=False) is stable on short rows, and equals its stable order there
    small = np.array([1, 0, 1, 0, 1, 0, 1, 1], np.float32)
    for desc in (False, True):
        np.testing.assert_array_equal(pve.argsort(pve.tensor(small), descending=desc).numpy(),
                                      torch.argsort(torch.from_numpy(small), descending=desc).numpy())
    flags = np.array([True, False, True, False])
    np.testing.assert_array_equal(pve.sort(pve.tensor(flags), descending=True).indices.numpy(),
                                  torch.sort(torch.from_numpy(flags), descending=True).indices.numpy())


# dtype results for int64, bool and float32 inputs (or the same error type)
DTYPE_OPS = [
    ("sign", lambda L, x: L.sign(x)), ("floor", lambda L, x: L.floor(x)),
    ("ceil", lambda L, x: x.ceil()), ("round", lambda L, x: L.round(x)),
    ("round_decimals", lambda L, x: L.round(x, decimals=1)),
    ("reciprocal", lambda L, x: L.reciprocal(x)), ("rsqrt", lambda L, x: L.rsqrt(x.abs() + 1)),
    ("square", lambda L, x: L.square(x)), ("erf", lambda L, x: L.erf(x)),
    ("sin", lambda L, x: L.sin(x)), ("cos", lambda L, x: x.cos()),
    ("maximum_self", lambda L, x: L.maximum(x, x)), ("minimum_long", lambda L, x: L.minimum(x, L.tensor([1, 0, 2]))),
    ("clamp_min_int", lambda L, x: L.clamp_min(x, 1)), ("clamp_max_float", lambda L, x: x.clamp_max(0.5)),
    ("where_zero", lambda L, x: L.where(x > 0, x, 0)), ("where_half", lambda L, x: L.where(x > 0, x, 0.5)),
    ("prod", lambda L, x: L.prod(x)), ("prod_dim", lambda L, x: x.prod(0, keepdim=True)),
    ("cumsum", lambda L, x: L.cumsum(x, 0)), ("amax", lambda L, x: L.amax(x)),
    ("amin_dim", lambda L, x: x.amin(0)), ("logsumexp", lambda L, x: L.logsumexp(x, 0)),
    ("var", lambda L, x: L.var(x)), ("norm", lambda L, x: L.norm(x)),
    ("gather", lambda L, x: L.gather(x, 0, L.tensor([2, 0]))),
    ("index_select", lambda L, x: L.index_select(x, 0, L.tensor([1, 1]))),
    ("scatter_value", lambda L, x: x.scatter(0, L.tensor([1]), 7)),
    ("masked_fill", lambda L, x: x.masked_fill(L.tensor([True, False, True]), 2.5)),
    ("flip", lambda L, x: L.flip(x, (0,))), ("roll", lambda L, x: L.roll(x, 1)),
    ("diag", lambda L, x: L.diag(x)), ("tril", lambda L, x: L.tril(L.outer(x, x))),
    ("outer", lambda L, x: L.outer(x, x)), ("dot", lambda L, x: L.dot(x, x)),
    ("nonzero", lambda L, x: L.nonzero(x)), ("nonzero_tuple", lambda L, x: L.nonzero(x, as_tuple=True)),
    ("argwhere", lambda L, x: L.argwhere(x)), ("argsort", lambda L, x: L.argsort(x, stable=True)),
    ("sort_desc", lambda L, x: L.sort(x, descending=True, stable=True)),
    ("isinf", lambda L, x: L.isinf(x)), ("isnan", lambda L, x: x.isnan()),
    ("isclose", lambda L, x: L.isclose(x, x)), ("equal", lambda L, x: L.equal(x, x)),
    ("unbind", lambda L, x: L.unbind(x)), ("lerp", lambda L, x: L.lerp(x, x, 0.5)),
    ("full_like", lambda L, x: L.full_like(x, 3)), ("full_like_float", lambda L, x: L.full_like(x, 2.5)),
    ("new_full", lambda L, x: x.new_full((2,), 1.5)), ("new_tensor", lambda L, x: x.new_tensor([1.5, 0])),
    ("new_zeros", lambda L, x: x.new_zeros(2, 1)), ("new_ones", lambda L, x: x.new_ones((1, 2))),
    ("abs_", lambda L, x: x.clone().abs_()), ("relu_", lambda L, x: x.clone().relu_()),
    ("sqrt_", lambda L, x: x.clone().sqrt_()), ("exp_", lambda L, x: x.clone().exp_()),
    ("sigmoid_", lambda L, x: x.clone().sigmoid_()), ("tanh_", lambda L, x: x.clone().tanh_()),
]
INPUTS = {"float32": np.array([1.5, -2.0, 0.0], np.float32), "int64": np.array([3, -2, 0]),
          "bool": np.array([True, False, True])}


@pytest.mark.parametrize("kind", list(INPUTS))
@pytest.mark.parametrize("name,fn", DTYPE_OPS, ids=[d[0] for d in DTYPE_OPS])
def test_dtypes_and_error_types_match_torch(name, fn, kind):
    results = []
    for L in (pve, torch):
        try:
            results.append(("ok", fn(L, to_lib(L, INPUTS[kind]))))
        except Exception as e:  # noqa: BLE001  (the error type is what is compared)
            results.append(("error", e))
    (kp, p), (kt, t) = results
    if kt == "error":
        assert kp == "error", f"torch raised {type(t).__name__}: {t}; pve returned {p}"
        assert isinstance(p, type(t)), f"pve raised {type(p).__name__}, torch {type(t).__name__}"
        return
    assert kp == "ok", f"pve raised {type(p).__name__}: {p}"
    assert_same(p, t, what=name)


ERRORS = [
    lambda L: L.gather(L.ones(2, 3), 1, L.tensor([[3]])),
    lambda L: L.gather(L.ones(2, 3), 1, L.tensor([[-1]])),
    lambda L: L.gather(L.ones(2, 3), 1, L.tensor([0])),
    lambda L: L.gather(L.ones(2, 3), 1, L.tensor([[0.0]])),
    lambda L: L.gather(L.ones(2, 3), 1, L.tensor([[0], [1], [0]])),
    lambda L: L.gather(L.ones(2, 3), 2, L.tensor([[0]])),
    lambda L: L.ones(2, 3).scatter(1, L.tensor([[3]]), 1.0),
    lambda L: L.ones(2, 3).scatter(1, L.tensor([[0, 1]]), L.zeros(1, 1)),
    lambda L: L.ones(2, 3).scatter(1, L.tensor([[0]]), L.zeros(1, 1, dtype=L.long)),
    lambda L: L.ones(2, 3).scatter(1, L.tensor([0]), 1.0),
    lambda L: L.index_select(L.ones(2, 3), 0, L.tensor([2])),
    lambda L: L.index_select(L.ones(2, 3), 0, L.tensor([-1])),
    lambda L: L.index_select(L.ones(2, 3), 0, L.tensor([[0]])),
    lambda L: L.index_select(L.ones(2, 3), 0, L.tensor([0.0])),
    lambda L: L.maximum(L.ones(2), 1.0),
    lambda L: L.maximum(L.ones(2), L.ones(3)),
    lambda L: L.flip(L.ones(2, 3), (0, 0)),
    lambda L: L.flip(L.ones(2, 3), 0),
    lambda L: L.roll(L.ones(2, 3), (1, 2), (0,)),
    lambda L: L.tril(L.ones(3)),
    lambda L: L.triu(L.ones(3), 1),
    lambda L: L.diag(L.ones(2, 2, 2)),
    lambda L: L.dot(L.ones(2), L.ones(3)),
    lambda L: L.dot(L.ones(2, 1), L.ones(3)),
    lambda L: L.dot(L.ones(2), L.ones(2, dtype=L.long)),
    lambda L: L.outer(L.ones(2, 1), L.ones(3)),
    lambda L: L.lerp(L.ones(2, dtype=L.long), L.ones(2, dtype=L.long), 0.5),
    lambda L: L.lerp(L.ones(2), L.ones(2, dtype=L.long), 0.5),
    lambda L: L.ones(2).masked_fill(L.tensor([True, False]), L.ones(2)),
    lambda L: L.ones(2).masked_fill(L.ones(2), 0.5),
    lambda L: L.ones(2).masked_fill_(L.tensor([[True], [False]]), 0.5),
    lambda L: L.var(L.tensor([1, 2])),
    lambda L: L.norm(L.tensor([1, 2])),
    lambda L: L.norm(L.ones(2, 2, 2), "fro", (0, 1, 2)),
    lambda L: L.norm(L.ones(2), "abc"),
    lambda L: L.amax(L.ones(0, 3), 0),
    lambda L: L.amax(L.ones(0)),
    lambda L: L.amax(L.ones(2, 3), (0, 0)),
    lambda L: L.amax(L.ones(2, 3), 2),
    lambda L: L.prod(L.ones(2, 3), (0, 1)),
    lambda L: L.cumsum(L.ones(2), 1),
    lambda L: L.logsumexp(L.ones(2), 1),
    lambda L: L.round(L.tensor([1, 2]), decimals=1),
    lambda L: L.eye(-1),
    lambda L: L.eye(2, -1),
    lambda L: L.linspace(0, 1, -1),
    lambda L: L.randperm(-1),
    lambda L: L.isclose(L.ones(2), L.ones(2, dtype=L.long)),
    lambda L: L.where(L.tensor([1, 0]), 1.0, 0.0),
    lambda L: L.ones(2).mT,
    lambda L: L.ones(3, 1, 2).unsqueeze_(5),
    lambda L: L.ones(2).unbind(1),
    lambda L: L.tensor([1, 4]).sqrt_(),
    lambda L: L.tensor([1, 4]).sigmoid_(),
    lambda L: L.ones(2, requires_grad=True).exp_(),
    lambda L: L.ones(2, 1, requires_grad=True).squeeze_(),
    lambda L: L.ones(2, requires_grad=True).masked_fill_(L.tensor([True, False]), 0.0),
]


@pytest.mark.parametrize("i", range(len(ERRORS)))
def test_error_types_match_torch(i):
    fn = ERRORS[i]
    with pytest.raises(Exception) as torch_error:
        fn(torch)
    with pytest.raises(Exception) as pve_error:
        fn(pve)
    assert isinstance(pve_error.value, torch_error.type), (
        f"pve raised {pve_error.type.__name__}: {pve_error.value}; torch "
        f"{torch_error.type.__name__}: {torch_error.value}")


INPLACE = [
    ("exp_", lambda L, a, b: (a * b).exp_()),
    ("sqrt_", lambda L, a, b: (a * a + b * b).sqrt_()),
    ("abs_", lambda L, a, b: (a - b).abs_() * a),
    ("relu_", lambda L, a, b: (a * b).relu_()),
    ("sigmoid_", lambda L, a, b: (a + b).sigmoid_()),
    ("tanh_", lambda L, a, b: (a * 2).tanh_() * b),
    ("clamp_tensor_bounds_", lambda L, a, b: (a * 3).clamp_(b - 1, b + 1)),
    ("masked_fill_tensor_", lambda L, a, b: (a * 2).masked_fill_(a > 0, b[0, 1])),
    ("scatter_", lambda L, a, b: (a * 1).scatter_(1, to_lib(L, np.array([[2, 0], [1, 0]])), b[:, :2])),
    ("squeeze_unsqueeze_", lambda L, a, b: (a * b).unsqueeze_(0).squeeze_(0) * a),
    ("exp_then_read", lambda L, a, b: (a * b).exp_() * a),
]


@pytest.mark.parametrize("name,fn", INPLACE, ids=[c[0] for c in INPLACE])
def test_inplace_values_and_gradients_match_torch(name, fn):
    run_both(fn, [R(2, 3), R(2, 3)])


def test_writes_after_inplace_ops_are_version_errors_as_in_torch():
    for L in (pve, torch):
        a = L.tensor([0.5, 1.0], requires_grad=True)
        for write in (lambda y: y.mul_(2.0), lambda y: y.add_(a)):
            y = a * 2
            y.exp_()
            write(y)
            with pytest.raises(RuntimeError, match="modified by an inplace operation"):
                y.sum().backward()
        b = (a * 1).unsqueeze(1)
        z = b * b
        b.squeeze_()
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            z.sum().backward()


def test_factories_and_metadata_match_torch():
    for fn in (lambda L: L.linspace(-3, 7.3, 11), lambda L: L.linspace(0, 1, 1),
               lambda L: L.linspace(2, -1, 7), lambda L: L.linspace(0, 10, 5, dtype=L.long),
               lambda L: L.eye(3), lambda L: L.eye(2, 4, dtype=L.long),
               lambda L: L.full_like(L.ones(2, dtype=L.long), 3.5),
               lambda L: L.full_like(L.ones(2), 3, dtype=L.long)):
        assert_same(fn(pve), fn(torch), rtol=1e-6, atol=1e-6)
    assert pve.empty_like(pve.ones(2, 3, dtype=pve.int64)).dtype == pve.int64
    for shape in ((2, 3, 4), (3,), (), (2, 0, 3), (4, 1, 2)):
        p, t = pve.zeros(shape), torch.zeros(shape)
        assert p.stride() == t.stride() and p.nbytes == t.nbytes
        assert p.itemsize == t.itemsize and p.element_size() == t.element_size()
    assert pve.ones(2, dtype=pve.int64).element_size() == torch.ones(2, dtype=torch.long).element_size()
    t = torch.tensor([1.7, -1.7])
    np.testing.assert_array_equal(pve.tensor([1.7, -1.7]).int().numpy(), t.int().numpy())
    assert math.isclose(pve.randperm(6).sum().item(), torch.randperm(6).sum().item())


ZERO_DIM = [
    lambda L, x: L.sort(x).values, lambda L, x: L.topk(x, 1).values, lambda L, x: L.amax(x, 0),
    lambda L, x: L.logsumexp(x, 0), lambda L, x: L.cumsum(x, 0), lambda L, x: L.prod(x, 0),
    lambda L, x: L.flip(x, (0,)), lambda L, x: L.norm(x, dim=0), lambda L, x: L.roll(x, 1),
    lambda L, x: L.gather(x, 0, to_lib(L, np.array(0))),
    lambda L, x: L.index_select(x, 0, to_lib(L, np.array([0]))),
    lambda L, x: L.var(x, correction=0), lambda L, x: L.amin(x, ()),
]


@pytest.mark.parametrize("i", range(len(ZERO_DIM)))
def test_zero_dim_inputs_match_torch(i):
    run_both(ZERO_DIM[i], [np.array(2.5)])
    assert pve.argsort(pve.tensor(2.5)).shape == () and pve.nonzero(pve.tensor(2.5)).shape == (1, 0)
