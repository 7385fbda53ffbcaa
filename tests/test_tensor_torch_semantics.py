"""Tensor creation, attributes, arithmetic, reductions, shape ops and indexing against
torch itself: the same values and dtypes, and the same exception types (with the words
that say what was expected), for the cases an audit found different. Skipped without
torch."""

import warnings

import numpy as np
import pytest

import pyvision_engine as pve

torch = pytest.importorskip("torch", reason="torch not installed: tensor semantics not compared")

X = np.random.default_rng(5).standard_normal((3, 4, 5)).astype(np.float32)


def _run(lib, fn):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return fn(lib), None
        except Exception as e:  # noqa: BLE001  (the exception is what is compared)
            return None, e


def _as_numpy(value):
    if isinstance(value, (pve.Tensor, torch.Tensor)):
        return value.detach().numpy() if isinstance(value, torch.Tensor) else value.numpy()
    return np.asarray(value)


def _dtype_name(value):
    if isinstance(value, torch.Tensor):
        return str(value.dtype).replace("torch.", "")
    if isinstance(value, pve.Tensor):
        return str(value.dtype)
    return type(value).__name__


# (name, fn(lib), fragment of the message both raise)
ERRORS = [
    ("item_of_two", lambda L: L.tensor([1.0, 2.0]).item(), "2 elements cannot be converted"),
    ("item_of_empty", lambda L: L.tensor([]).item(), "0 elements cannot be converted"),
    ("float_of_two", lambda L: float(L.tensor([1.0, 2.0])), "only one element tensors"),
    ("bool_of_empty", lambda L: bool(L.tensor([])), "with no values is ambiguous"),
    ("iter_0d", lambda L: list(L.tensor(1.0)), "iteration over a 0-d tensor"),
    ("size_dim_out_of_range", lambda L: L.ones(2, 3).size(2), "out of range"),
    ("tensor_of_none", lambda L: L.tensor(None), "Could not infer dtype of NoneType"),
    ("tensor_int_overflow", lambda L: L.tensor(2 ** 63), "Overflow"),
    ("tensor_list_overflow", lambda L: L.tensor([1, 2 ** 70]), "Overflow"),
    ("tensor_of_2el_tensors", lambda L: L.tensor([L.ones(2), L.ones(2)]), "only one element tensors"),
    ("zeros_negative", lambda L: L.zeros(-1), "must be non-negative"),
    ("ones_negative", lambda L: L.ones(2, -1), "negative dimension -1"),
    ("arange_zero_step", lambda L: L.arange(0, 5, 0), "step must be nonzero"),
    ("grad_not_a_tensor", lambda L: setattr(L.ones(2, requires_grad=True), "grad", np.ones(2, np.float32)),
     "expected to be a Tensor or None"),
    ("grad_wrong_dtype", lambda L: setattr(L.ones(2, requires_grad=True), "grad", L.ones(2, dtype=L.int64)),
     "dtype"),
    ("grad_wrong_shape", lambda L: setattr(L.ones(2, requires_grad=True), "grad", L.ones(3)),
     "attempting to assign a gradient of size"),
    ("requires_grad_false_on_non_leaf",
     lambda L: setattr(L.ones(2, requires_grad=True) * 2, "requires_grad", False),
     "only change requires_grad flags of leaf variables"),
    ("int_requires_grad", lambda L: L.tensor([1, 2]).requires_grad_(), "can require gradients"),
    ("broadcast_add", lambda L: L.ones(2, 3) + L.ones(2), "size of tensor a (3) must match the size of tensor b (2)"),
    ("broadcast_lt", lambda L: L.ones(2) < L.ones(3), "must match the size of tensor b"),
    ("bool_negation", lambda L: -L.tensor([True]), "Negation, the `-` operator, on a bool tensor"),
    ("bool_subtraction", lambda L: L.tensor([True]) - L.tensor([False]), "with two bool tensors"),
    ("int_negative_power", lambda L: L.tensor([2, 3]) ** -1, "negative integer powers"),
    ("int_floordiv_zero", lambda L: L.tensor([5, 6]) // 0, "ZeroDivisionError"),
    ("floordiv_backward", lambda L: (L.ones(2, requires_grad=True) // 2).sum().backward(), "floor_divide"),
    ("inplace_float_into_int", lambda L: L.tensor([1, 2]).add_(1.5), "can't be cast to the desired output type"),
    ("inplace_div_int", lambda L: L.tensor([1, 2]).div_(2), "can't be cast to the desired output type"),
    ("iadd_float_into_int", lambda L: L.tensor([1, 2]).__iadd__(1.5), "can't be cast"),
    ("inplace_int_into_bool", lambda L: L.tensor([True]).add_(1), "can't be cast"),
    ("inplace_clamp_float_into_int", lambda L: L.tensor([1, 5]).clamp_(min=1.5), "can't be cast"),
    ("inplace_grows", lambda L: L.ones(2, 3).add_(L.ones(4, 2, 3)), "doesn't match the broadcast shape"),
    ("inplace_leaf_before_shape", lambda L: L.ones(2, requires_grad=True).add_(L.ones(3)),
     "leaf Variable that requires grad"),
    ("inplace_int_float_alpha", lambda L: L.tensor([1]).add_(1, alpha=0.5), "argument alpha"),
    ("bitwise_on_float", lambda L: L.ones(2) & 1, "bitwise_and_cpu"),
    ("invert_float", lambda L: ~L.ones(2), "only implemented on integer and Boolean"),
    ("float_minus_bool", lambda L: L.ones(2) - True, "with a bool tensor is not supported"),
    ("inplace_mismatch", lambda L: L.ones(2, 3).mul_(L.ones(2)), "must match the size of tensor b"),
    ("copy_mismatch", lambda L: L.ones(2, 3).copy_(L.ones(2)), "must match the size of tensor b"),
    ("fill_with_1d", lambda L: L.ones(2).fill_(L.tensor([3.0])), "0-dimension value tensor"),
    ("clamp_without_bounds", lambda L: L.ones(2).clamp(), "At least one of 'min' or 'max'"),
    ("matmul_inner_mismatch", lambda L: L.ones(2, 3) @ L.ones(2, 3), "cannot be multiplied (2x3 and 2x3)"),
    ("matmul_vectors_mismatch", lambda L: L.ones(3) @ L.ones(2), "inconsistent tensor size"),
    ("matmul_0d", lambda L: L.tensor(2.0) @ L.ones(3), "at least 1D"),
    ("matmul_dtypes", lambda L: L.ones(2, 2, dtype=L.int64) @ L.ones(2, 2), "same dtype"),
    ("mm_vector", lambda L: L.ones(3).mm(L.ones(3, 2)), "must be a matrix"),
    ("bmm_batches", lambda L: L.ones(2, 2, 3).bmm(L.ones(3, 3, 2)), "Expected size for first two dimensions"),
    ("sum_repeated_dim", lambda L: L.ones(2, 3).sum((0, 0)), "dim 0 appears multiple times"),
    ("argmax_empty", lambda L: L.zeros(0).argmax(), "Expected reduction dim to be specified"),
    ("reshape_size", lambda L: L.ones(2, 3).reshape(4, -1), "shape '[4, -1]' is invalid for input of size 6"),
    ("reshape_two_unknown", lambda L: L.ones(2, 3).reshape(-1, -1), "only one dimension can be inferred"),
    ("reshape_negative", lambda L: L.ones(2, 3).reshape(-2, 3), "invalid shape dimension -2"),
    ("reshape_ambiguous", lambda L: L.zeros(0, 3).reshape(-1, 0), "ambiguous"),
    ("reshape_no_shape", lambda L: L.ones(2).reshape(), "missing 1 required positional argument"),
    ("view_size", lambda L: L.ones(2, 3).view(5), "invalid for input of size 6"),
    ("flatten_order", lambda L: L.ones(2, 3, 4).flatten(2, 1), "start_dim cannot come after end_dim"),
    ("permute_length", lambda L: L.ones(2, 3, 4).permute(0, 1), "does not match the length"),
    ("permute_repeat", lambda L: L.ones(2, 3, 4).permute(0, 1, 1), "duplicate dims"),
    ("t_of_3d", lambda L: L.ones(2, 3, 4).t(), "t() expects a tensor with <= 2 dimensions"),
    ("expand_size", lambda L: L.ones(2, 3).expand(4, 3), "must match the existing size (2)"),
    ("expand_leading", lambda L: L.ones(3).expand(-1, 3), "isn't allowed in a leading, non-existing dimension"),
    ("split_sections", lambda L: L.ones(2, 3).split([1, 1], dim=1), "sum exactly to 3"),
    ("split_negative", lambda L: L.ones(2, 3).split(-1), "split_size be non-negative"),
    ("chunk_zero", lambda L: L.ones(2, 3).chunk(0), "greater than 0"),
    ("topk_k", lambda L: L.ones(2, 3).topk(4), "selected index k out of range"),
    ("stack_sizes", lambda L: L.stack([L.ones(2), L.ones(3)]), "stack expects each tensor to be equal size"),
    ("stack_empty", lambda L: L.stack([]), "non-empty TensorList"),
    ("repeat_dims", lambda L: L.ones(2, 3).repeat(2), "can not be smaller than number of dimensions"),
    ("masked_fill_mask", lambda L: L.ones(2).masked_fill(L.ones(2), 0.0), "only supports boolean masks"),
    ("where_condition", lambda L: L.where(L.ones(2), L.ones(2), L.ones(2)), "condition to be a boolean tensor"),
    ("randn_int", lambda L: L.randn(2, dtype=L.int64), "not implemented for 'Long'"),
    ("index_negative_step", lambda L: L.ones(4)[::-1], "step must be greater than zero"),
    ("setitem_mismatch", lambda L: L.ones(3, 4).__setitem__(0, L.ones(3)), "must match the existing size (3)"),
    ("index_float_tensor", lambda L: [1, 2][L.tensor(1.0)], "converted to an index"),
]


@pytest.mark.parametrize("name,fn,words", ERRORS, ids=[e[0] for e in ERRORS])
def test_errors_match_torch(name, fn, words):
    _, pve_error = _run(pve, fn)
    _, torch_error = _run(torch, fn)
    assert torch_error is not None, "torch raised nothing: the case is wrong"
    assert pve_error is not None, f"torch raised {torch_error!r}, pve raised nothing"
    assert type(pve_error) is type(torch_error), (pve_error, torch_error)
    assert words in str(pve_error) and words in str(torch_error), (str(pve_error), str(torch_error))


I = np.array([[1, -2, 3], [4, 5, -6]])

# (name, fn(lib)) whose results must agree in value, shape and dtype
VALUES = [
    ("bool_plus_int", lambda L: L.tensor([True, False]) + 1),
    ("bool_times_float", lambda L: L.tensor([True, False]) * 1.5),
    ("int_plus_bool_scalar", lambda L: L.tensor([1, 2]) + True),
    ("int_pow_int", lambda L: L.tensor(I) ** 2),
    ("int_pow_float", lambda L: L.tensor(I) ** 0.5),
    ("int_pow_int_tensor", lambda L: L.tensor(I) ** L.tensor(2)),
    ("int_pow_negative_int_tensor", lambda L: L.tensor([1, 2, -1, -1]) ** L.tensor([-1, -1, -2, -3])),
    ("int_rpow", lambda L: 2 ** L.tensor(I)),
    ("float_rpow_int", lambda L: 2.0 ** L.tensor(I)),
    ("int_floordiv", lambda L: L.tensor(I) // 2),
    ("int_rfloordiv", lambda L: 7 // L.tensor([2, -2, 3])),
    ("float_floordiv", lambda L: L.tensor(X[0]) // 0.5),
    ("float_floordiv_zero", lambda L: L.tensor([5.0, -6.0]) // 0.0),
    ("int_mod", lambda L: L.tensor(I) % 4),
    ("int_rmod", lambda L: 7 % L.tensor([2, -2, 3])),
    ("float_mod", lambda L: L.tensor(X[0]) % 0.5),
    ("float_mod_negative", lambda L: L.tensor(X[0]) % -0.75),
    ("float_mod_zero", lambda L: L.tensor([5.0, -6.0]) % 0.0),
    ("bitwise_and_bool", lambda L: (L.tensor(X[0]) > 0) & (L.tensor(X[1]) < 0.5)),
    ("bitwise_or_bool", lambda L: (L.tensor(X[0]) > 0) | (L.tensor(X[1]) < 0.5)),
    ("bitwise_xor_int", lambda L: L.tensor(I) ^ 5),
    ("invert_bool", lambda L: ~(L.tensor(X[0]) > 0)),
    ("invert_int", lambda L: ~L.tensor(I)),
    ("eq_none", lambda L: L.ones(2) == None),  # noqa: E711  (the operator is the case)
    ("ne_none", lambda L: L.ones(2) != None),  # noqa: E711
    ("full_int", lambda L: L.full((2,), 3)),
    ("full_bool", lambda L: L.full((2,), True)),
    ("full_float", lambda L: L.full((2,), 3.0)),
    ("clamp_int_by_float", lambda L: L.tensor([1, 5, 9]).clamp(2.5, 6)),
    ("clamp_int_by_int", lambda L: L.tensor([1, 5, 9]).clamp(2, 6)),
    ("sigmoid_int", lambda L: L.tensor([0, 1]).sigmoid()),
    ("tanh_int", lambda L: L.tensor([0, 1]).tanh()),
    ("relu_int", lambda L: L.tensor([-1, 2]).relu()),
    ("exp_bool", lambda L: L.tensor([True, False]).exp()),
    ("sqrt_bool", lambda L: L.tensor([True]).sqrt()),
    ("log_int", lambda L: L.tensor([1, 2]).log()),
    ("mean_of_empty_dim", lambda L: L.zeros(0, 3).mean(0)),
    ("argmax_empty_other_dim", lambda L: L.zeros(0, 3).argmax(1)),
    ("argmin_empty_other_dim_keep", lambda L: L.zeros(0, 3).argmin(1, keepdim=True)),
    ("squeeze_tuple", lambda L: L.ones(1, 3, 1).squeeze((0, 2))),
    ("squeeze_tuple_partial", lambda L: L.ones(1, 3, 1).squeeze((0, 1))),
    ("squeeze_fn_tuple", lambda L: L.squeeze(L.ones(1, 3, 1, 2), (-2, 0))),
    ("index_list_of_lists", lambda L: L.tensor(X)[[[0, 1], [2, 2]]]),
    ("index_list_with_slice", lambda L: L.tensor(X)[[0, slice(1, 3)]]),
    ("tensor_of_one_element_tensors", lambda L: L.tensor([L.tensor([1.0]), L.tensor([2.0])])),
    ("tensor_of_nested_scalars", lambda L: L.tensor([[L.tensor(1.0)], [L.tensor(2)]])),
    ("norm_p0", lambda L: L.tensor([[1.0, 0.0], [3.0, 5.0]]).norm(p=0)),
    ("norm_minus_inf", lambda L: L.tensor([[1.0, -0.5], [3.0, 5.0]]).norm(p=-float("inf"))),
    ("split_zero_of_empty", lambda L: [t.shape for t in L.zeros(0, 2).split(0)]),
    ("randint_high_size", lambda L: tuple(L.randint(5, (3,)).shape)),
]


@pytest.mark.parametrize("name,fn", VALUES, ids=[v[0] for v in VALUES])
def test_values_and_dtypes_match_torch(name, fn):
    got, pve_error = _run(pve, fn)
    want, torch_error = _run(torch, fn)
    assert torch_error is None, f"torch raised {torch_error!r}: the case is wrong"
    assert pve_error is None, f"pve raised {pve_error!r}"
    if isinstance(want, (list, tuple)):
        assert [tuple(s) for s in got] == [tuple(s) for s in want] if isinstance(want, list) else tuple(got) == tuple(want)
        return
    assert _dtype_name(got) == _dtype_name(want)
    np.testing.assert_allclose(_as_numpy(got), _as_numpy(want), rtol=1e-6, atol=1e-7)
    assert np.shape(_as_numpy(got)) == np.shape(_as_numpy(want))


def test_remainder_gradients_match_torch():
    a = np.array([5.0, -7.0, 3.5, 2.25], np.float32)
    b = np.array([2.0, 2.0, -1.5, 0.5], np.float32)
    p = [pve.tensor(v, requires_grad=True) for v in (a, b)]
    t = [torch.tensor(v, requires_grad=True) for v in (a, b)]
    up = np.array([1.0, -2.0, 0.5, 3.0], np.float32)
    (p[0] % p[1]).backward(pve.tensor(up))
    (t[0] % t[1]).backward(torch.from_numpy(up))
    for x, y in zip(p, t):
        np.testing.assert_allclose(x.grad.numpy(), y.grad.numpy())


def test_full_max_with_nan_sends_the_gradient_to_the_nans_like_torch():
    a = np.array([[1.0, np.nan, 3.0], [np.nan, 2.0, np.nan]], np.float32)
    p, t = pve.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    for f in (lambda x: x.max(), lambda x: x.min()):
        p.grad, t.grad = None, None
        f(p).backward()
        f(t).backward()
        np.testing.assert_array_equal(p.grad.numpy(), t.grad.numpy())


def test_list_holding_sequences_indexes_as_a_tuple_with_torchs_warning():
    p, t = pve.tensor(X, requires_grad=True), torch.tensor(X, requires_grad=True)
    with pytest.warns(UserWarning, match="non-tuple sequence"):
        out_p = p[[[0, 1], [2, 2]]]
    with pytest.warns(UserWarning):
        out_t = t[[[0, 1], [2, 2]]]
    up = np.arange(out_t.numel(), dtype=np.float32).reshape(tuple(out_t.shape))
    out_p.backward(pve.tensor(up))
    out_t.backward(torch.from_numpy(up))
    np.testing.assert_array_equal(p.grad.numpy(), t.grad.numpy())


def test_non_leaf_grad_read_warns_like_torch():
    x = pve.ones(2, requires_grad=True)
    y = x * 2
    y.sum().backward()
    with pytest.warns(UserWarning, match="not a leaf Tensor"):
        assert y.grad is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert x.grad is not None  # a leaf: no warning
        z = x * 3
        z.retain_grad()
        z.sum().backward()
        np.testing.assert_array_equal(z.grad.numpy(), np.ones(2, np.float32))


def test_grad_assignment_accepts_a_matching_tensor_and_none():
    x = pve.ones(2, 3, requires_grad=True)
    g = pve.full((2, 3), 2.0)
    x.grad = g
    assert x.grad is g
    x.grad = None
    assert x.grad is None


def test_requires_grad_true_on_non_leaf_and_false_on_leaf_are_allowed():
    x = pve.ones(2, requires_grad=True)
    y = x * 2
    y.requires_grad_(True)  # (already true: torch allows it)
    x.requires_grad = False
    assert not (x * 2).requires_grad


_RNG = np.random.default_rng(0)
PRINTED = [
    np.array([1.0, 2.0], np.float32), np.array(1.5, np.float32), np.array([1, 2]),
    np.array([True, False]), np.zeros(0, np.float32), np.zeros((0, 3), np.float32),
    _RNG.standard_normal((3, 4)).astype(np.float32),
    (_RNG.standard_normal((2, 3, 4)) * 1000).astype(np.float32),
    np.array([1e-5, 1.0], np.float32), np.array([1e9, 1.0], np.float32),
    np.array([np.nan, np.inf, -np.inf, 1.0], np.float32), np.array([0.0, 0.0], np.float32),
    _RNG.standard_normal(2000).astype(np.float32), _RNG.standard_normal((40, 40)).astype(np.float32),
    np.arange(100, dtype=np.float32), np.arange(30).reshape(2, 3, 5),
    _RNG.integers(-1000, 1000, (3, 50)), _RNG.standard_normal((7, 200)).astype(np.float32),
]


@pytest.mark.parametrize("i", range(len(PRINTED)))
def test_repr_prints_as_torch(i):
    a = PRINTED[i]
    assert repr(pve.tensor(a)) == repr(torch.tensor(a))
    assert str(pve.tensor(a)) == str(torch.tensor(a))


def test_repr_of_tensors_that_require_grad_prints_as_torch():
    a = np.arange(30, dtype=np.float32) + 0.5
    assert repr(pve.tensor(a, requires_grad=True)) == repr(torch.tensor(a, requires_grad=True))
    got = repr(pve.tensor(a[:2], requires_grad=True) * 2)
    assert got.startswith("tensor([1., 3.], grad_fn=<") and got.endswith(">)")


def test_dlpack_refuses_tensors_that_require_grad_like_torch():
    for lib in (pve, torch):
        x = lib.ones(3, requires_grad=True)
        with pytest.raises(BufferError, match="require gradient"):
            x.__dlpack__()
        y = torch.from_dlpack(x.detach())  # the detached tensor shares the memory
        x.detach()[0] = 5.0
        assert y[0].item() == 5.0
    assert pve.from_dlpack(torch.ones(3, requires_grad=True).detach()).shape == (3,)
    with pytest.raises(BufferError):
        pve.from_dlpack(torch.ones(3, requires_grad=True))


def test_manual_seed_takes_torchs_64_bit_seeds():
    for seed in (-1, -2 ** 63, 2 ** 64 - 1, 0, 3.7):
        pve.manual_seed(seed)
        torch.manual_seed(seed)
        assert pve.initial_seed() == torch.initial_seed()
    pve.manual_seed(-1)
    a = pve.randn(4)
    pve.manual_seed(2 ** 64 - 1)  # the same seed
    np.testing.assert_array_equal(a.numpy(), pve.randn(4).numpy())
    for seed in (2 ** 64, -2 ** 63 - 1):
        with pytest.raises(ValueError, match="Overflow"):
            torch.manual_seed(seed)
        with pytest.raises(ValueError, match="Overflow"):
            pve.manual_seed(seed)
    pve.manual_seed(0)
    torch.manual_seed(0)
