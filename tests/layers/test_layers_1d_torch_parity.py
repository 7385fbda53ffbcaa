"""Live parity with torch for the 1-D layers (skipped without torch): module outputs,
input / weight / bias gradients, pooling indices, state_dict keys and loading, init
statistics, reprs and the exception types of bad input."""

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is the reference for these parity tests")

import pyvision_engine as pve  # noqa: E402

nn, F = pve.nn, pve.nn.functional
TF = torch.nn.functional
rng = np.random.default_rng(21)


def _randn(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def _twin(torch_module, pve_module):
    """pve_module with torch_module's state (a state_dict of numpy arrays)."""
    state = {k: v.detach().numpy() for k, v in torch_module.state_dict().items()}
    pve_module.load_state_dict(state)
    return pve_module


def _params(module):
    return dict(module.named_parameters()) if hasattr(module, "named_parameters") else {}


def _run_both(torch_module, pve_module, x, *args):
    """(output, input grad, {param: grad}) of each module (or function), each called once,
    for the same x and upstream gradient."""
    t = torch.tensor(x, requires_grad=True)
    ty = torch_module(t, *args)
    g = _randn(*ty.shape)
    ty.backward(torch.tensor(g))
    a = pve.tensor(x, requires_grad=True)
    y = pve_module(a, *args)
    y.backward(pve.tensor(g))
    theirs = (ty.detach().numpy(), t.grad.numpy(),
              {k: p.grad.numpy() for k, p in _params(torch_module).items()})
    mine = (y.detach().numpy(), a.grad.numpy(),
            {k: p.grad.numpy() for k, p in _params(pve_module).items()})
    return mine, theirs


def _assert_same(mine, theirs, tol=1e-5):
    (y, gx, gp), (ty, tgx, tgp) = mine, theirs
    np.testing.assert_allclose(y, ty, rtol=tol, atol=tol, err_msg="output")
    np.testing.assert_allclose(gx, tgx, rtol=tol, atol=tol, err_msg="input grad")
    assert sorted(gp) == sorted(tgp)
    for k in gp:
        np.testing.assert_allclose(gp[k], tgp[k], rtol=tol, atol=tol, err_msg=f"{k} grad")


# (in, out, kernel, kwargs, input shape)
CONV_CASES = [
    (4, 6, 3, {}, (2, 4, 11)),
    (4, 6, 3, {"stride": 2, "padding": 2, "dilation": 2, "groups": 2}, (2, 4, 13)),
    (6, 6, 3, {"padding": 1, "groups": 6, "bias": False}, (1, 6, 9)),  # depthwise
    (6, 12, 5, {"stride": 3, "groups": 6}, (2, 6, 17)),  # depthwise, multiplier 2
    (3, 4, 4, {"padding": "same", "dilation": 3}, (2, 3, 10)),
    (3, 4, 3, {"padding": "valid"}, (3, 7)),  # unbatched
    (3, 5, 3, {"padding": 2, "padding_mode": "reflect"}, (2, 3, 9)),
    (3, 5, 4, {"padding": "same", "padding_mode": "replicate"}, (2, 3, 9)),
    (3, 5, 3, {"padding": 3, "stride": 2, "padding_mode": "circular"}, (3, 9)),
]


@pytest.mark.parametrize("cin,cout,k,kw,shape", CONV_CASES)
def test_conv1d_matches_torch(isa, cin, cout, k, kw, shape):
    tm = torch.nn.Conv1d(cin, cout, k, **kw)
    pm = _twin(tm, nn.Conv1d(cin, cout, k, **kw))
    assert repr(pm) == repr(tm)
    assert list(pm.state_dict()) == list(tm.state_dict())
    _assert_same(*_run_both(tm, pm, _randn(*shape)), tol=2e-5)


# (in, out, kernel, kwargs, input shape, output_size)
TRANSPOSE_CASES = [
    (4, 6, 3, {"stride": 2, "padding": 1, "output_padding": 1, "groups": 2}, (2, 4, 7), None),
    (3, 3, 3, {"dilation": 2, "groups": 3}, (1, 3, 9), None),
    (2, 3, 3, {"padding": 1, "output_padding": 1, "dilation": 2}, (2, 2, 5), None),
    (2, 4, 4, {"stride": 3, "padding": 2, "bias": False}, (2, 5), None),  # unbatched
    (2, 4, 3, {"stride": 3}, (2, 2, 6), [19]),
]


@pytest.mark.parametrize("cin,cout,k,kw,shape,size", TRANSPOSE_CASES)
def test_conv_transpose1d_matches_torch(isa, cin, cout, k, kw, shape, size):
    tm = torch.nn.ConvTranspose1d(cin, cout, k, **kw)
    pm = _twin(tm, nn.ConvTranspose1d(cin, cout, k, **kw))
    assert repr(pm) == repr(tm)
    assert list(pm.state_dict()) == list(tm.state_dict())
    args = () if size is None else (size,)
    _assert_same(*_run_both(tm, pm, _randn(*shape), *args), tol=2e-5)


def test_conv1d_init_statistics_match_torch():
    """Both draw U(-b, b), b = 1/sqrt(fan_in), for weight and bias: the same range, and the
    same spread over the weight's thousands of values."""
    torch.manual_seed(0)
    pve.manual_seed(0)
    for make, fan_in in ((lambda m: m.Conv1d(64, 96, 5, groups=4), 16 * 5),
                         (lambda m: m.ConvTranspose1d(64, 96, 5, groups=2), 48 * 5)):
        tm, pm = make(torch.nn), make(nn)
        bound = 1 / np.sqrt(fan_in)
        for name in ("weight", "bias"):
            t = getattr(tm, name).detach().numpy()
            p = getattr(pm, name).detach().numpy()
            assert p.shape == t.shape
            for a in (t, p):
                assert 0.8 * bound < np.abs(a).max() <= bound
        t, p = tm.weight.detach().numpy(), pm.weight.detach().numpy()
        assert abs(p.std() - t.std()) < 0.03 * t.std()


# (L, kernel, stride, padding, dilation, ceil_mode)
MAX_CASES = [
    (11, 3, 2, 1, 1, False), (11, 3, 2, 1, 1, True), (5, 2, 2, 1, 1, True),
    (10, 4, 3, 2, 1, True), (13, 3, 2, 1, 3, True), (9, 2, 1, 0, 2, False),
]


@pytest.mark.parametrize("length,k,s,p,d,ceil", MAX_CASES)
def test_max_pool1d_values_indices_gradients_match_torch(isa, length, k, s, p, d, ceil):
    x = _randn(2, 3, length)
    x[0, 0, 1] = x[0, 0, 2]  # a tie
    x[1, 2, 3] = np.nan
    for shape in (x.shape, x.shape[1:]):
        xs = x.reshape(shape) if len(shape) == 3 else x[0]
        tm = torch.nn.MaxPool1d(k, s, p, d, return_indices=True, ceil_mode=ceil)
        pm = nn.MaxPool1d(k, s, p, d, return_indices=True, ceil_mode=ceil)
        assert repr(pm) == repr(tm)
        ty, ti = tm(torch.tensor(xs))
        y, i = pm(xs)
        np.testing.assert_array_equal(y.numpy(), ty.numpy())
        np.testing.assert_array_equal(i.numpy(), ti.numpy())
    mine, theirs = _run_both(lambda t: TF.max_pool1d(t, k, s, p, d, ceil),
                             lambda t: F.max_pool1d(t, k, s, p, d, ceil), np.nan_to_num(x))
    _assert_same((*mine[:2], {}), (*theirs[:2], {}))


AVG_CASES = [(11, 3, 2, 1, False, True), (11, 3, 2, 1, True, False), (5, 2, 2, 1, True, True),
             (10, 4, 3, 2, True, True), (10, 4, 3, 2, True, False)]


@pytest.mark.parametrize("length,k,s,p,ceil,include", AVG_CASES)
def test_avg_pool1d_matches_torch(isa, length, k, s, p, ceil, include):
    tm, pm = torch.nn.AvgPool1d(k, s, p, ceil, include), nn.AvgPool1d(k, s, p, ceil, include)
    assert repr(pm) == repr(tm)
    for shape in ((2, 3, length), (3, length)):
        mine, theirs = _run_both(tm, pm, _randn(*shape))
        _assert_same((*mine[:2], {}), (*theirs[:2], {}), tol=1e-6)


@pytest.mark.parametrize("length,out", [(10, 3), (10, 4), (7, 1), (5, 7), (6, 6)])
def test_adaptive_pools_1d_match_torch(isa, length, out):
    x = _randn(2, 3, length)
    for tm, pm in ((torch.nn.AdaptiveAvgPool1d(out), nn.AdaptiveAvgPool1d(out)),
                   (torch.nn.AdaptiveMaxPool1d(out), nn.AdaptiveMaxPool1d(out))):
        assert repr(pm) == repr(tm)
        for xs in (x, x[0]):
            mine, theirs = _run_both(tm, pm, xs)
            _assert_same((*mine[:2], {}), (*theirs[:2], {}), tol=1e-6)
    ty, ti = TF.adaptive_max_pool1d_with_indices(torch.tensor(x), out)
    y, i = F.adaptive_max_pool1d_with_indices(x, out)
    np.testing.assert_array_equal(y.numpy(), ty.numpy())
    np.testing.assert_array_equal(i.numpy(), ti.numpy())


def test_instance_norm1d_matches_torch(isa):
    kw = {"affine": True, "track_running_stats": True, "momentum": 0.2}
    tm, pm = torch.nn.InstanceNorm1d(3, **kw), nn.InstanceNorm1d(3, **kw)
    with torch.no_grad():
        tm.weight.uniform_(0.5, 1.5)
        tm.bias.uniform_(-0.5, 0.5)
    _twin(tm, pm)
    assert repr(pm) == repr(tm)
    assert list(pm.state_dict()) == list(tm.state_dict())
    x = _randn(4, 3, 9) * 3 + 1
    _assert_same(*_run_both(tm, pm, x), tol=1e-4)
    for name in ("running_mean", "running_var"):
        np.testing.assert_allclose(getattr(pm, name).numpy(), getattr(tm, name).numpy(),
                                   rtol=1e-5, atol=1e-6)
    tm.eval(), pm.eval()
    _assert_same(*_run_both(tm, pm, x[0]), tol=1e-4)  # unbatched, running statistics
    plain_t, plain_p = torch.nn.InstanceNorm1d(3), nn.InstanceNorm1d(3)
    mine, theirs = _run_both(plain_t, plain_p, x)
    _assert_same(mine, theirs, tol=1e-4)


PAD_LAYERS = [("ZeroPad1d", ()), ("ConstantPad1d", (2.5,)), ("ReflectionPad1d", ()),
              ("ReplicationPad1d", ()), ("CircularPad1d", ())]


@pytest.mark.parametrize("name,extra", PAD_LAYERS)
@pytest.mark.parametrize("padding", [2, (1, 3), (3, 0)])
def test_padding_1d_matches_torch(name, extra, padding):
    tm, pm = getattr(torch.nn, name)(padding, *extra), getattr(nn, name)(padding, *extra)
    assert repr(pm) == repr(tm) and pm.padding == tm.padding
    for shape in ((2, 3, 6), (3, 6)):
        mine, theirs = _run_both(tm, pm, _randn(*shape))
        _assert_same((*mine[:2], {}), (*theirs[:2], {}), tol=0)


def test_dropout1d_eval_p0_and_repr_match_torch():
    x = _randn(2, 3, 5)
    assert repr(nn.Dropout1d(0.3)) == repr(torch.nn.Dropout1d(0.3))
    np.testing.assert_array_equal(nn.Dropout1d(0.3).eval()(x).numpy(), x)
    np.testing.assert_array_equal(F.dropout1d(x[0], 0.0).numpy(), x[0])
    np.testing.assert_array_equal(F.dropout1d(x, 1.0).numpy(),
                                  TF.dropout1d(torch.tensor(x), 1.0).numpy())


def _conv_w():
    return _randn(4, 3, 3)


# (pve call, torch call): the same bad input; pve's error must be an instance of torch's type.
ERROR_PAIRS = [
    (lambda m, f: f.conv1d(m(_randn(1, 3, 2, 10)), m(_conv_w()))),
    (lambda m, f: f.conv1d(m(_randn(10)), m(_conv_w()))),
    (lambda m, f: f.conv1d(m(_randn(2, 2, 10)), m(_conv_w()))),
    (lambda m, f: f.conv1d(m(_randn(2, 3, 2)), m(_conv_w()))),
    (lambda m, f: f.conv1d(m(_randn(2, 3, 9)), m(_conv_w()), stride=2, padding="same")),
    (lambda m, f: f.conv1d(m(_randn(2, 3, 9)), m(_conv_w()), stride=0)),
    (lambda m, f: f.conv1d(m(_randn(2, 3, 9)), m(_conv_w()), padding=-1)),
    (lambda m, f: f.conv1d(m(_randn(2, 3, 9)), m(_conv_w()), padding="foo")),
    (lambda m, f: f.conv1d(m(_randn(2, 3, 9)), m(_conv_w()), stride=(1, 2))),
    (lambda m, f: f.conv1d(m(_randn(2, 3, 9)), m(_randn(4, 1, 3)), groups=2)),
    (lambda m, f: f.conv1d(m(_randn(2, 3, 9)), m(_conv_w()), m(_randn(3)))),
    (lambda m, f: f.conv1d(m(_randn(2, 3, 9)), m(_randn(4, 3)))),
    (lambda m, f: f.conv_transpose1d(m(_randn(1, 3, 2, 5)), m(_conv_w()[:3]))),
    (lambda m, f: f.conv_transpose1d(m(_randn(2, 3, 5)), m(_randn(2, 4, 3)))),
    (lambda m, f: f.conv_transpose1d(m(_randn(2, 3, 5)), m(_conv_w()[:3]), stride=2,
                                     output_padding=2)),
    (lambda m, f: f.conv_transpose1d(m(_randn(2, 3, 5)), m(_conv_w()[:3]), padding="same")),
    (lambda m, f: f.max_pool1d(m(_randn(1, 2, 3, 10)), 2)),
    (lambda m, f: f.max_pool1d(m(_randn(2, 3, 0)), 2)),
    (lambda m, f: f.max_pool1d(m(_randn(2, 3, 9)), 2, padding=2)),
    (lambda m, f: f.max_pool1d(m(_randn(2, 3, 9)), 0)),
    (lambda m, f: f.max_pool1d(m(_randn(2, 3, 9)), 10)),
    (lambda m, f: f.max_pool1d(m(_randn(2, 3, 9)), (2, 2))),
    (lambda m, f: f.max_pool1d_with_indices(m(_randn(1, 2, 3, 10)), 2)),
    (lambda m, f: f.avg_pool1d(m(_randn(1, 2, 3, 10)), 2)),
    (lambda m, f: f.avg_pool1d(m(_randn(2, 3, 9)), 2, padding=2)),
    (lambda m, f: f.avg_pool1d(m(_randn(2, 3, 9)), 10)),
    (lambda m, f: f.adaptive_avg_pool1d(m(_randn(1, 2, 3, 10)), 2)),
    (lambda m, f: f.adaptive_avg_pool1d(m(_randn(2, 3, 9)), -1)),
    (lambda m, f: f.adaptive_avg_pool1d(m(_randn(2, 3, 9)), (2, 2))),
    (lambda m, f: f.adaptive_avg_pool1d(m(_randn(2, 3, 9)), None)),
    (lambda m, f: f.adaptive_max_pool1d(m(_randn(1, 2, 3, 10)), 2)),
    (lambda m, f: f.adaptive_max_pool1d(m(_randn(2, 3, 0)), 2)),
    (lambda m, f: f.dropout1d(m(_randn(1, 2, 3, 10)))),
    (lambda m, f: f.dropout1d(m(_randn(10)), training=False)),
    (lambda m, f: f.dropout1d(m(_randn(2, 3, 4)), p=1.5)),
]
MODULE_ERRORS = [
    (lambda n, m: n.Conv1d(3, 4, 3, stride=2, padding="same")),
    (lambda n, m: n.Conv1d(3, 4, 3, padding_mode="foo")),
    (lambda n, m: n.Conv1d(3, 4, 3, groups=2)),
    (lambda n, m: n.Conv1d(3, 4, 3)(m(_randn(1, 3, 2, 10)))),
    (lambda n, m: n.Conv1d(3, 4, 3, padding=10, padding_mode="reflect")(m(_randn(2, 3, 10)))),
    (lambda n, m: n.ConvTranspose1d(3, 4, 3, padding_mode="reflect")),
    (lambda n, m: n.ConvTranspose1d(3, 4, 3, stride=2)(m(_randn(2, 3, 5)), output_size=[2, 9])),
    (lambda n, m: n.ConvTranspose1d(3, 4, 3, stride=2)(m(_randn(2, 3, 5)), output_size=[20])),
    (lambda n, m: n.ConvTranspose1d(3, 4, 3)(m(_randn(1, 3, 2, 5)))),
    (lambda n, m: n.Dropout1d(p=2)),
    (lambda n, m: n.Dropout1d()(m(_randn(1, 3, 2, 10)))),
    (lambda n, m: n.InstanceNorm1d(3)(m(_randn(1, 3, 2, 10)))),
    (lambda n, m: n.InstanceNorm1d(3, affine=True)(m(_randn(2, 4, 10)))),
    (lambda n, m: n.InstanceNorm1d(3)(m(_randn(2, 3, 1)))),
    (lambda n, m: n.ReflectionPad1d(10)(m(_randn(2, 3, 10)))),
    (lambda n, m: n.ReflectionPad1d(2)(m(_randn(1, 2, 3, 10)))),
    (lambda n, m: n.ReplicationPad1d(2)(m(_randn(10)))),
    (lambda n, m: n.CircularPad1d(2)(m(_randn(1, 2, 3, 10)))),
    (lambda n, m: n.CircularPad1d(4)(m(_randn(2, 3, 3)))),
    (lambda n, m: n.ConstantPad1d((1, 2, 3), 1.0)(m(_randn(2, 3, 4)))),
    (lambda n, m: n.MaxPool1d(2, padding=2)(m(_randn(2, 3, 9)))),
    (lambda n, m: n.AvgPool1d(10)(m(_randn(2, 3, 9)))),
    (lambda n, m: n.AdaptiveMaxPool1d(2)(m(_randn(3, 2, 3, 9)))),
]


def _raised(call):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            call()
    except Exception as e:  # noqa: BLE001 - the type is what is compared
        return e
    return None


def _assert_same_error(pve_call, torch_call):
    theirs = _raised(torch_call)
    assert theirs is not None, "torch accepts this input"
    mine = _raised(pve_call)
    assert mine is not None, f"pve accepts what torch refuses with {theirs!r}"
    assert isinstance(mine, type(theirs)), f"pve {mine!r} vs torch {theirs!r}"


@pytest.mark.parametrize("call", ERROR_PAIRS)
def test_functional_errors_have_torchs_type(call):
    _assert_same_error(lambda: call(pve.tensor, F), lambda: call(torch.tensor, TF))


@pytest.mark.parametrize("call", MODULE_ERRORS)
def test_module_errors_have_torchs_type(call):
    _assert_same_error(lambda: call(nn, pve.tensor), lambda: call(torch.nn, torch.tensor))
