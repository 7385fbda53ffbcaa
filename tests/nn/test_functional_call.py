"""pve.func.functional_call and pve.nn.utils.stateless.functional_call: outputs and
gradients against plain-numpy references, the module's own tensors restored (also after
errors), buffers updated in forward, tied weights, strict keys, a tuple of dicts, and torch
parity (torch.func.functional_call on the same modules; skipped without torch)."""

import warnings

import numpy as np
import pytest

import pyvision_engine as pve
from pyvision_engine import nn
from pyvision_engine.func import functional_call
from pyvision_engine.nn.utils import stateless

rng = np.random.default_rng(5)


def _torch():
    return pytest.importorskip("torch", reason="torch parity tests need torch")


def f32(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def _own_tensors(module):
    return {n: t for n, t in list(module.named_parameters()) + list(module.named_buffers())}


def _assert_restored(module, before):
    after = _own_tensors(module)
    assert after.keys() == before.keys()
    assert all(after[n] is before[n] for n in before)


# ------------------------------------------------------------------ against numpy
def test_linear_with_given_parameters_against_numpy():
    m = nn.Linear(3, 2)
    before = _own_tensors(m)
    w, b, x, up = f32(2, 3), f32(2), f32(4, 3), f32(4, 2)
    tw, tb = pve.tensor(w, requires_grad=True), pve.tensor(b, requires_grad=True)
    out = functional_call(m, {"weight": tw, "bias": tb}, pve.tensor(x))
    np.testing.assert_allclose(out.detach().numpy(), x @ w.T + b, rtol=1e-6, atol=1e-6)
    _assert_restored(m, before)
    (out * pve.tensor(up)).sum().backward()
    np.testing.assert_allclose(tw.grad.numpy(), up.T @ x, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(tb.grad.numpy(), up.sum(0), rtol=1e-6, atol=1e-6)
    assert m.weight.grad is None and m.bias.grad is None


def test_names_not_given_keep_the_modules_tensors():
    m = nn.Linear(3, 2)
    b, x = f32(2), f32(4, 3)
    tb = pve.tensor(b, requires_grad=True)
    out = functional_call(m, {"bias": tb}, (pve.tensor(x),))
    np.testing.assert_allclose(out.detach().numpy(), x @ m.weight.detach().numpy().T + b,
                               rtol=1e-6, atol=1e-6)
    out.sum().backward()
    np.testing.assert_allclose(m.weight.grad.numpy(), np.ones((4, 2)).T @ x, rtol=1e-6)
    np.testing.assert_allclose(tb.grad.numpy(), [4.0, 4.0])
    assert m.bias.grad is None
    nobias = functional_call(m, {"bias": None}, pve.tensor(x))  # (a None value is allowed)
    np.testing.assert_allclose(nobias.detach().numpy(), x @ m.weight.detach().numpy().T,
                               rtol=1e-6, atol=1e-6)
    assert m.bias is not None


def test_nested_names_and_buffers_updated_in_forward():
    """Dotted names reach submodules; a buffer BatchNorm updates in training is the given
    one (the module's own stays as it was)."""
    m = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4, momentum=0.5))
    own_mean = m[1].running_mean.numpy().copy()
    mean, var, count = pve.zeros(4), pve.ones(4), pve.tensor(0)
    given = {"1.running_mean": mean, "1.running_var": var, "1.num_batches_tracked": count}
    x = f32(6, 3)
    functional_call(m, given, pve.tensor(x))
    h = x @ m[0].weight.detach().numpy().T + m[0].bias.detach().numpy()
    np.testing.assert_allclose(given["1.running_mean"].numpy(), 0.5 * h.mean(0), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(given["1.running_var"].numpy(), 0.5 + 0.5 * h.var(0, ddof=1),
                               rtol=1e-5, atol=1e-6)
    assert int(given["1.num_batches_tracked"].item()) == 1
    np.testing.assert_array_equal(m[1].running_mean.numpy(), own_mean)
    assert int(m[1].num_batches_tracked.item()) == 0


class _Counter(nn.Module):
    """forward replaces its buffer (an assignment, not an in-place update)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("count", pve.zeros(()))

    def forward(self, x):
        self.count = self.count + 1
        return x * self.count


def test_a_tensor_replaced_in_forward_is_written_back_to_the_dict():
    m = _Counter()
    given = {"count": pve.tensor(4.0)}
    out = functional_call(m, given, pve.tensor([1.0, 2.0]))
    np.testing.assert_array_equal(out.numpy(), [5.0, 10.0])
    assert given["count"].item() == 5.0 and m.count.item() == 0.0


class _Scaled(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(np.ones(3, np.float32))

    def forward(self, x, y=None, scale=1.0):
        return (x * self.weight + (0.0 if y is None else y)) * scale


def test_args_and_kwargs():
    m = _Scaled()
    w = pve.tensor([1.0, 2.0, 3.0])
    x, y = pve.tensor([1.0, 1.0, 1.0]), pve.tensor([0.0, 1.0, 2.0])
    np.testing.assert_array_equal(functional_call(m, {"weight": w}, x).numpy(), [1, 2, 3])
    np.testing.assert_array_equal(functional_call(m, {"weight": w}, (x, y)).numpy(), [1, 3, 5])
    got = functional_call(m, {"weight": w}, (x,), {"y": y, "scale": 2.0})
    np.testing.assert_array_equal(got.numpy(), [2, 6, 10])
    assert functional_call(m, {}, args=None, kwargs={"x": x}).shape == (3,)


def test_a_tuple_or_list_of_dicts():
    m = nn.Linear(2, 2)
    w, b, x = pve.tensor(f32(2, 2)), pve.tensor(f32(2)), pve.tensor(f32(3, 2))
    one = functional_call(m, {"weight": w, "bias": b}, x)
    for dicts in (({"weight": w}, {"bias": b}), [{"weight": w}, {"bias": b}]):
        np.testing.assert_array_equal(functional_call(m, dicts, x).numpy(), one.numpy())
    with pytest.raises(ValueError, match=r"\['weight'\] appeared in multiple dictionaries; "
                                         "behavior of functional call is ambiguous"):
        functional_call(m, ({"weight": w}, {"weight": w, "bias": b}), x)
    with pytest.raises(ValueError, match="Expected all elements of parameter_and_buffer_dicts "
                                         "to be dictionaries"):
        functional_call(m, ({"weight": w}, [("bias", b)]), x)
    with pytest.raises(ValueError, match="Expected parameter_and_buffer_dicts to be a dict, or "
                                         "a list/tuple of dicts, but got <class 'int'>"):
        functional_call(m, 3, x)


class _Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(2, 2, bias=False)
        self.b = nn.Linear(2, 2, bias=False)
        self.b.weight = self.a.weight

    def forward(self, x):
        return self.b(self.a(x))


def test_tied_weights():
    m = _Tied()
    own = m.a.weight.detach().numpy()
    w, x = f32(2, 2), f32(3, 2)
    tied = functional_call(m, {"a.weight": pve.tensor(w)}, pve.tensor(x))
    np.testing.assert_allclose(tied.numpy(), x @ w.T @ w.T, rtol=1e-5, atol=1e-6)
    untied = functional_call(m, {"a.weight": pve.tensor(w)}, pve.tensor(x), tie_weights=False)
    np.testing.assert_allclose(untied.detach().numpy(), x @ w.T @ own.T, rtol=1e-5,
                               atol=1e-6)
    same = pve.tensor(w)
    functional_call(m, {"a.weight": same, "b.weight": same}, pve.tensor(x))
    with pytest.raises(ValueError, match=r"functional_call got multiple values for keys "
                                         r"\['a.weight', 'b.weight'\], which are tied. "
                                         "Consider using tie_weights=False"):
        functional_call(m, {"a.weight": pve.tensor(w), "b.weight": pve.tensor(w)},
                        pve.tensor(x))
    both = functional_call(m, {"a.weight": pve.tensor(w), "b.weight": pve.zeros(2, 2)},
                           pve.tensor(x), tie_weights=False)
    np.testing.assert_array_equal(both.numpy(), np.zeros((3, 2)))
    assert m.b.weight is m.a.weight


def test_strict_keys():
    m = nn.Linear(2, 2)
    x = pve.tensor(f32(1, 2))
    with pytest.raises(RuntimeError, match="Error\\(s\\) in reparametrizing for Linear:\n\t"
                                           "Unexpected key\\(s\\): 'foo'.\n\t"
                                           "Missing key\\(s\\): 'bias'."):
        functional_call(m, {"weight": pve.zeros(2, 2), "foo": pve.zeros(1)}, x, strict=True)
    out = functional_call(m, {"weight": pve.zeros(2, 2), "bias": pve.ones(2)}, x, strict=True)
    np.testing.assert_array_equal(out.numpy(), [[1.0, 1.0]])
    # not strict: an unknown name is set for the call only
    functional_call(m, {"foo": pve.zeros(1)}, x)
    assert not hasattr(m, "foo")


class _Failing(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 2)
        self.extra = pve.ones(2)  # a plain tensor attribute, not registered

    def forward(self, x):
        assert self.extra is not None
        raise RuntimeError("forward failed")


def test_the_modules_tensors_come_back_after_errors():
    m = _Failing()
    before, extra = _own_tensors(m), m.extra
    with pytest.raises(RuntimeError, match="forward failed"):
        functional_call(m, {"lin.weight": pve.zeros(2, 2), "extra": pve.zeros(2)},
                        pve.ones(1, 2))
    _assert_restored(m, before)
    assert m.extra is extra
    # a bad value midway: the names swapped before it go back
    with pytest.raises(TypeError, match="'lin.bias' must be a Tensor or None, got list"):
        functional_call(m, {"lin.weight": pve.zeros(2, 2), "lin.bias": [1.0, 2.0]},
                        pve.ones(1, 2))
    _assert_restored(m, before)
    with pytest.raises(AttributeError, match="_Failing has no attribute `nothere`"):
        functional_call(m, {"lin.weight": pve.zeros(2, 2), "nothere.weight": pve.zeros(1)},
                        pve.ones(1, 2))
    _assert_restored(m, before)
    with pytest.raises(TypeError, match="submodule `lin.weight`: a Parameter is not an "
                                        "instance of nn.Module"):
        functional_call(m, {"lin.weight.x": pve.zeros(1)}, pve.ones(1, 2))
    with pytest.raises(TypeError, match="module must be an nn.Module"):
        functional_call(lambda x: x, {}, pve.ones(1))
    _assert_restored(m, before)


def test_stateless_functional_call_is_deprecated():
    m = nn.Linear(2, 2)
    x = pve.tensor(f32(3, 2))
    given = {"weight": pve.tensor(f32(2, 2)), "bias": pve.zeros(2)}
    with pytest.warns(FutureWarning, match="pve.func.functional_call"):
        old = stateless.functional_call(m, given, x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        new = pve.func.functional_call(m, given, x)
    np.testing.assert_array_equal(old.numpy(), new.numpy())


# ------------------------------------------------------------------ torch parity
def _small_cnn(lib):
    return lib.nn.Sequential(lib.nn.Conv2d(2, 3, 3, padding=1), lib.nn.BatchNorm2d(3),
                             lib.nn.ReLU(), lib.nn.Flatten(), lib.nn.Linear(3 * 4 * 4, 5))


def test_cnn_torch_parity():
    """Outputs, the given tensors' gradients and the updated buffers as torch.func's."""
    torch = _torch()
    m, tm = _small_cnn(pve), _small_cnn(torch)
    names = [n for n, _ in tm.named_parameters()] + [n for n, _ in tm.named_buffers()]
    values = {n: (f32(*t.shape) if t.dtype == torch.float32 else t.numpy().copy())
              for n, t in list(tm.named_parameters()) + list(tm.named_buffers())}
    values["1.running_var"] = np.abs(values["1.running_var"]) + 0.5
    mine = {n: pve.tensor(v, requires_grad=n in dict(tm.named_parameters())) for n, v in
            values.items()}
    theirs = {n: torch.tensor(v, requires_grad=n in dict(tm.named_parameters())) for n, v in
              values.items()}
    params = ({n: mine[n] for n in names[:6]}, {n: mine[n] for n in names[6:]})
    tparams = ({n: theirs[n] for n in names[:6]}, {n: theirs[n] for n in names[6:]})
    x, up = f32(2, 2, 4, 4), f32(2, 5)
    out = functional_call(m, params, pve.tensor(x))
    tout = torch.func.functional_call(tm, tparams, torch.tensor(x))
    np.testing.assert_allclose(out.detach().numpy(), tout.detach().numpy(), rtol=1e-5,
                               atol=1e-5)
    (out * pve.tensor(up)).sum().backward()
    (tout * torch.tensor(up)).sum().backward()
    for n in names:
        if theirs[n].requires_grad:
            np.testing.assert_allclose(mine[n].grad.numpy(), theirs[n].grad.numpy(),
                                       rtol=1e-4, atol=1e-5, err_msg=n)
        else:
            np.testing.assert_allclose(mine[n].numpy(), theirs[n].numpy(), rtol=1e-5,
                                       atol=1e-6, err_msg=n)
    assert all(p.grad is None for p in m.parameters())


def test_tied_and_strict_torch_parity():
    torch = _torch()

    class TorchTied(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Linear(2, 2, bias=False)
            self.b = torch.nn.Linear(2, 2, bias=False)
            self.b.weight = self.a.weight

        def forward(self, x):
            return self.b(self.a(x))

    m, tm = _Tied(), TorchTied()
    m.a.weight.data = pve.tensor(tm.a.weight.detach().numpy())
    m.b.weight = m.a.weight
    w, x = f32(2, 2), f32(3, 2)
    for tie in (True, False):
        got = functional_call(m, {"b.weight": pve.tensor(w)}, pve.tensor(x), tie_weights=tie)
        want = torch.func.functional_call(tm, {"b.weight": torch.tensor(w)}, torch.tensor(x),
                                          tie_weights=tie)
        np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(), rtol=1e-6,
                                   atol=1e-6)
    for given in ({"a.weight": 1, "b.weight": 2}, {"weight": 1}):
        with pytest.raises(Exception) as theirs:
            torch.func.functional_call(tm, {k: torch.zeros(2, 2) * v for k, v in given.items()},
                                       torch.tensor(x), strict=True)
        with pytest.raises(type(theirs.value)) as ours:
            functional_call(m, {k: pve.zeros(2, 2) * v for k, v in given.items()},
                            pve.tensor(x), strict=True)
        assert str(ours.value) == str(theirs.value).replace("TorchTied", "_Tied")


def test_packed_lstm_torch_parity():
    """functional_call of an LSTM on a packed batch, with new weights for one layer."""
    torch = _torch()
    from torch.nn.utils import rnn as trnn
    tm = torch.nn.LSTM(3, 4, num_layers=2)
    m = nn.LSTM(3, 4, num_layers=2)
    m.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    names = ["weight_ih_l1", "weight_hh_l1", "bias_hh_l1"]
    values = {n: f32(*getattr(tm, n).shape) for n in names}
    mine = {n: pve.tensor(v, requires_grad=True) for n, v in values.items()}
    theirs = {n: torch.tensor(v, requires_grad=True) for n, v in values.items()}
    x, lengths = f32(5, 3, 3), [2, 5, 3]
    out, (h, c) = functional_call(
        m, mine, (pve.nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False),))
    tout, (th, tc) = torch.func.functional_call(
        tm, theirs, (trnn.pack_padded_sequence(torch.tensor(x), lengths, enforce_sorted=False),))
    for a, b in ((out.data, tout.data), (h, th), (c, tc)):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-5,
                                   atol=1e-6)
    (out.data.sum() + h.sum() + c.sum()).backward()
    (tout.data.sum() + th.sum() + tc.sum()).backward()
    for n in names:
        np.testing.assert_allclose(mine[n].grad.numpy(), theirs[n].grad.numpy(), rtol=1e-4,
                                   atol=1e-5, err_msg=n)
    assert m.weight_ih_l1.grad is None and m.weight_ih_l0.grad is not None
