"""Edge cases against live torch (skipped without it), at every ISA level: kinks and
NaN in activation gradients, nearest-interpolation index rules, fully ignored NLL
targets, error types, reprs."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import pyvision_engine as pve  # noqa: E402

TF = torch.nn.functional
F = pve.nn.functional


def _grads(pve_fn, torch_fn, x):
    p = pve.tensor(x, requires_grad=True)
    t = torch.tensor(x, requires_grad=True)
    yp, yt = pve_fn(p), torch_fn(t)
    g = np.linspace(-1, 1, yt.numel(), dtype=np.float32).reshape(tuple(yt.shape))
    yp.backward(pve.tensor(g))
    yt.backward(torch.tensor(g))
    return yp.detach().numpy(), yt.detach().numpy(), p.grad.numpy(), t.grad.numpy()


@pytest.mark.parametrize("name", ["relu", "relu6", "hardswish", "hardsigmoid", "leaky_relu"])
def test_activation_kinks_and_nan_match_torch(isa, name):
    kinks = [-3.0, 3.0, 0.0, 6.0, -6.0, 2.9999998, 3.0000002, -3.0000002, -2.9999998,
             6.0000005, 5.9999995, np.inf, -np.inf, np.nan, 1e30, -1e30]
    # 64 copies: torch's vectorized kernels (its scalar tail treats NaN differently)
    x = np.array(kinks * 64, np.float32)
    yp, yt, gp, gt = _grads(getattr(F, name), getattr(TF, name), x)
    np.testing.assert_array_equal(yp, yt)
    np.testing.assert_array_equal(gp, gt)


@pytest.mark.parametrize("scale", [2.3, 2.1, 1.2, 1.9, 0.5, 3.0, (2.2, 1.1)])
def test_nearest_interpolate_index_rules_match_torch(scale):
    # out == in copies and out == 2 * in repeats, whatever the scale_factor
    x = np.random.default_rng(0).standard_normal((2, 3, 3, 5)).astype(np.float32)
    yp, yt, gp, gt = _grads(lambda t: F.interpolate(t, scale_factor=scale),
                            lambda t: TF.interpolate(t, scale_factor=scale), x)
    np.testing.assert_array_equal(yp, yt)
    np.testing.assert_allclose(gp, gt, rtol=1e-6, atol=1e-6)  # sums of the same terms


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("shape", [(3, 4), (4,), (2, 4, 3)])
def test_nll_loss_with_every_target_ignored_matches_torch(reduction, shape):
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    target = np.full(shape[:1] + shape[2:] if len(shape) > 1 else (), 1, np.int64)
    yp, yt, gp, gt = _grads(
        lambda t: F.nll_loss(t, target, ignore_index=1, reduction=reduction),
        lambda t: TF.nll_loss(t, torch.tensor(target), ignore_index=1, reduction=reduction), x)
    np.testing.assert_array_equal(yp, yt)
    np.testing.assert_array_equal(gp, gt)


@pytest.mark.parametrize("fn", ["cross_entropy", "nll_loss"])
@pytest.mark.parametrize("bad", [4, -1])
def test_out_of_range_targets_raise_torch_error_type(fn, bad):
    x = np.zeros((3, 4), np.float32)
    target = np.array([0, 1, bad])
    with pytest.raises(IndexError):
        getattr(TF, fn)(torch.tensor(x), torch.tensor(target))
    with pytest.raises(IndexError, match=fn):  # also a ValueError (the contract's type)
        getattr(F, fn)(x, target)


def test_prelu_one_dim_input_matches_torch():
    x = np.array([-1.0, 2.0, -3.0], np.float32)
    with pytest.raises(RuntimeError):
        TF.prelu(torch.tensor(x), torch.full((3,), 0.5))
    with pytest.raises(ValueError):
        F.prelu(x, np.full(3, 0.5, np.float32))


@pytest.mark.parametrize("make", [
    lambda nn: nn.BatchNorm2d(3), lambda nn: nn.BatchNorm1d(3, affine=False),
    lambda nn: nn.BatchNorm2d(3, momentum=None, track_running_stats=False),
    lambda nn: nn.BatchNorm2d(3, bias=False), lambda nn: nn.GroupNorm(2, 4),
    lambda nn: nn.GroupNorm(2, 4, affine=False), lambda nn: nn.GroupNorm(2, 4, bias=False),
    lambda nn: nn.LayerNorm((3, 5)), lambda nn: nn.LayerNorm(5, elementwise_affine=False),
    lambda nn: nn.LayerNorm(5, bias=False),
])
def test_normalization_reprs_match_torch(make):
    assert repr(make(pve.nn)) == repr(make(torch.nn))


@pytest.mark.parametrize("divisor", [-1, -3, 5])
def test_avg_pool_divisor_override_any_sign_matches_torch(isa, divisor):
    x = np.random.default_rng(2).standard_normal((2, 3, 7, 6)).astype(np.float32)
    yp, yt, gp, gt = _grads(lambda t: F.avg_pool2d(t, 3, 2, 1, True, False, divisor),
                            lambda t: TF.avg_pool2d(t, 3, 2, 1, True, False, divisor), x)
    np.testing.assert_allclose(yp, yt, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(gp, gt, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("args,kwargs", [
    ((3, 4, (2, 3), 2, "valid"), dict(bias=False, padding_mode="reflect")),
    ((3, 4, 3, 1, "same"), dict(dilation=2)), ((3, 6, 1), dict(groups=3)),
])
def test_conv_repr_matches_torch(args, kwargs):
    assert repr(pve.nn.Conv2d(*args, **kwargs)) == repr(torch.nn.Conv2d(*args, **kwargs))


@pytest.mark.parametrize("kw", [dict(stride=(1, 1, 1)), dict(dilation=(1, 2, 1)),
                                dict(padding=(1, 1, 1))])
def test_conv_wrong_length_pairs_are_value_errors(kw):
    x, w = np.zeros((1, 2, 5, 5), np.float32), np.zeros((2, 2, 3, 3), np.float32)
    with pytest.raises(RuntimeError):
        TF.conv2d(torch.tensor(x), torch.tensor(w), **kw)
    with pytest.raises(ValueError, match="conv2d"):
        F.conv2d(x, w, **kw)


def _interp_configs(count, seed):
    """Seeded interpolate configurations (mode, shape, kwargs): 3-D and 4-D input, sizes
    and scale factors (with recompute_scale_factor), align_corners."""
    rng = np.random.default_rng(seed)
    for _ in range(count):
        nd = int(rng.integers(1, 3))
        mode = str(rng.choice(["nearest", "nearest-exact", "linear" if nd == 1 else "bilinear"]))
        shape = (int(rng.integers(1, 3)), int(rng.integers(1, 4))) + tuple(
            int(v) for v in rng.integers(1, 10, nd))
        kw = {}
        if mode in ("linear", "bilinear") and rng.random() < 0.5:
            kw["align_corners"] = bool(rng.random() < 0.5)
        if rng.random() < 0.5:
            kw["size"] = tuple(int(v) for v in rng.integers(1, 21, nd))
        else:
            kw["scale_factor"] = tuple(float(rng.choice([0.5, 0.7, 1.2, 1.5, 2.0, 2.3, 3.0]))
                                       for _ in range(nd))
            if rng.random() < 0.3:
                kw["recompute_scale_factor"] = True
            if min(int(n * f) for n, f in zip(shape[2:], kw["scale_factor"])) < 1:
                continue  # (an empty output is an error in both)
        yield mode, shape, kw


@pytest.mark.parametrize("mode,shape,kw", list(_interp_configs(60, 3)))
@pytest.mark.parametrize("special", [None, np.nan, np.inf])
def test_interpolate_matches_torch_including_non_finite_values(mode, shape, kw, special):
    # Each output reads only its own source pixels: a NaN / Inf (in the input or the
    # upstream gradient) reaches exactly the outputs torch lets it reach.
    rng = np.random.default_rng(abs(hash((mode, shape, str(kw)))) % 2**32)
    x = rng.standard_normal(shape).astype(np.float32)
    if special is not None:
        x.flat[rng.integers(x.size)] = special
    p, t = pve.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    yp, yt = F.interpolate(p, mode=mode, **kw), TF.interpolate(t, mode=mode, **kw)
    a, b = yp.detach().numpy(), yt.detach().numpy()
    assert a.shape == b.shape
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    fin = np.isfinite(b)
    if mode.startswith("nearest"):
        np.testing.assert_array_equal(a, b)
    else:
        np.testing.assert_allclose(a[fin], b[fin], rtol=1e-5, atol=1e-6)
    g = rng.standard_normal(b.shape).astype(np.float32)
    if special is not None:
        g.flat[rng.integers(g.size)] = special
    yp.backward(pve.tensor(g))
    yt.backward(torch.tensor(g))
    gp, gt = p.grad.numpy(), t.grad.numpy()
    np.testing.assert_array_equal(np.isnan(gp), np.isnan(gt))
    fin = np.isfinite(gt)
    np.testing.assert_allclose(gp[fin], gt[fin], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["nearest", "nearest-exact"])
@pytest.mark.parametrize("n,kw", [(3, {"scale_factor": 1.2}), (3, {"scale_factor": 2.3}),
                                  (4, {"size": 82}), (5, {"scale_factor": 2.1})])
def test_interpolate_1d_nearest_index_rules_match_torch(mode, n, kw):
    # torch's 1-D forward and backward kernels use different index rules here; both mirrored
    x = np.arange(n, dtype=np.float32).reshape(1, 1, n)
    yp, yt, gp, gt = _grads(lambda t: F.interpolate(t, mode=mode, **kw),
                            lambda t: TF.interpolate(t, mode=mode, **kw), x)
    np.testing.assert_array_equal(yp, yt)
    np.testing.assert_allclose(gp, gt, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("mode", ["reflect", "replicate"])
@pytest.mark.parametrize("shape,pads", [((2, 3, 4), (-1, 1, 2, -1)), ((2, 3, 4), (0, 0, -3, 0)),
                                        ((1, 2, 3, 4, 5), (-2, 1, 1, -2, 2, -1)),
                                        ((3, 6), (-3, 2))])
def test_pad_negative_amounts_match_torch(mode, shape, pads):
    x = np.random.default_rng(4).standard_normal(shape).astype(np.float32)
    yp, yt, gp, gt = _grads(lambda t: F.pad(t, pads, mode=mode),
                            lambda t: TF.pad(t, pads, mode=mode), x)
    np.testing.assert_array_equal(yp, yt)
    if yt.size:  # (torch leaves the gradient of an empty result uninitialised)
        np.testing.assert_allclose(gp, gt, rtol=1e-6, atol=1e-6)


def test_zeropad2d_upsample_unflatten_and_activation_reprs_match_torch():
    for make in (lambda nn: nn.ZeroPad2d((1, 2)), lambda nn: nn.ZeroPad2d(3),
                 lambda nn: nn.Upsample(scale_factor=(2, 3)), lambda nn: nn.Upsample(size=4),
                 lambda nn: nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True),
                 lambda nn: nn.Unflatten(1, (2, -1)), lambda nn: nn.Hardswish(inplace=True),
                 lambda nn: nn.Hardsigmoid(True), lambda nn: nn.SiLU(inplace=True)):
        assert repr(make(pve.nn)) == repr(make(torch.nn))
    x = np.random.default_rng(5).standard_normal((2, 3, 4, 5)).astype(np.float32)
    np.testing.assert_array_equal(pve.nn.ZeroPad2d((1, 2))(x).numpy(),
                                  torch.nn.ZeroPad2d((1, 2))(torch.tensor(x)).numpy())
    np.testing.assert_array_equal(pve.nn.Unflatten(1, (3, 1))(x).numpy(),
                                  torch.nn.Unflatten(1, (3, 1))(torch.tensor(x)).numpy())


@pytest.mark.parametrize("output_size", [0, (0, 2), (None, 0)])
@pytest.mark.parametrize("fn", ["adaptive_avg_pool2d", "adaptive_max_pool2d"])
def test_adaptive_pool_to_zero_matches_torch(fn, output_size):
    x = np.ones((2, 3, 4, 5), np.float32)
    p, t = pve.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    yp, yt = getattr(F, fn)(p, output_size), getattr(TF, fn)(t, output_size)
    assert yp.shape == tuple(yt.shape)
    with pytest.raises(RuntimeError, match="non-zero size"):
        yt.sum().backward()
    with pytest.raises(RuntimeError, match="non-zero size"):  # (also a ValueError)
        yp.sum().backward()


@pytest.mark.parametrize("fn,kw", [
    ("binary_cross_entropy_with_logits", {"weight": (5, 4, 3)}),
    ("binary_cross_entropy_with_logits", {"pos_weight": (1, 4, 3)}),
    ("binary_cross_entropy", {"weight": (5, 4, 3)}),
])
def test_binary_loss_weights_that_enlarge_the_input_raise_as_torch(fn, kw):
    x = np.random.default_rng(6).uniform(0.1, 0.9, (4, 3)).astype(np.float32)
    (arg, shape), = kw.items()
    w = np.ones(shape, np.float32)
    with pytest.raises(RuntimeError, match="broadcast shape"):
        getattr(TF, fn)(torch.tensor(x), torch.tensor(x), **{arg: torch.tensor(w)})
    with pytest.raises(RuntimeError, match="must broadcast to the input shape"):
        getattr(F, fn)(x, x, **{arg: w})
    wp, wt = pve.tensor(np.ones(3, np.float32), requires_grad=True), torch.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="not differentiable with respect to argument"):
        getattr(TF, fn)(torch.tensor(x), torch.tensor(x), **{arg: wt})
    with pytest.raises(RuntimeError, match="not differentiable with respect to argument"):
        getattr(F, fn)(x, x, **{arg: wp})


@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides")  # (kl_div's, as torch's)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name,kw", [("l1_loss", {}), ("smooth_l1_loss", {"beta": 0.0}),
                                     ("smooth_l1_loss", {}), ("huber_loss", {}),
                                     ("mse_loss", {}), ("kl_div", {}),
                                     ("kl_div", {"log_target": True})])
def test_loss_gradients_at_nan_and_inf_match_torch(name, kw, reduction):
    specials = [np.nan, np.inf, -np.inf, 0.0, 1.0, -2.0, 0.5]
    x = np.repeat(np.array(specials, np.float32), len(specials))
    t = np.tile(np.array(specials, np.float32), len(specials))
    ps = [pve.tensor(a, requires_grad=True) for a in (x, t)]
    qs = [torch.tensor(a, requires_grad=True) for a in (x, t)]
    yp = getattr(F, name)(*ps, reduction=reduction, **kw)
    yt = getattr(TF, name)(*qs, reduction=reduction, **kw)
    np.testing.assert_allclose(yp.detach().numpy(), yt.detach().numpy(), rtol=1e-5)
    g = np.ones(tuple(yt.shape), np.float32)
    yp.backward(pve.tensor(g))
    yt.backward(torch.tensor(g))
    for a, b in zip(ps, qs):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-5)


def test_bce_target_gradient_and_range_match_torch():
    x = np.array([0.0, 1.0, 0.5, 0.25, 1e-30], np.float32)
    t = np.full(5, 0.3, np.float32)
    ps, qs = pve.tensor(t, requires_grad=True), torch.tensor(t, requires_grad=True)
    F.binary_cross_entropy(x, ps, reduction="sum").backward()
    TF.binary_cross_entropy(torch.tensor(x), qs, reduction="sum").backward()
    np.testing.assert_allclose(ps.grad.numpy(), qs.grad.numpy(), rtol=1e-5)
    bad = np.array([0.3, 1.5, 0.3, 0.3, 0.3], np.float32)
    with pytest.raises(RuntimeError, match="target should be between 0 and 1"):
        TF.binary_cross_entropy(torch.tensor(x), torch.tensor(bad))
    with pytest.raises(RuntimeError, match="target should be between 0 and 1"):
        F.binary_cross_entropy(x, bad)


def test_batch_norm_plain_state_dict_without_num_batches_tracked_loads_as_torch():
    sd = {k: v.numpy() for k, v in torch.nn.BatchNorm2d(3).state_dict().items()
          if k != "num_batches_tracked"}
    torch.nn.BatchNorm2d(3).load_state_dict({k: torch.tensor(v) for k, v in sd.items()})
    pve.nn.BatchNorm2d(3).load_state_dict(sd)
    full = torch.nn.BatchNorm2d(3).state_dict()  # (version 2 metadata: the key is needed)
    del full["num_batches_tracked"]
    with pytest.raises(RuntimeError, match="num_batches_tracked"):
        torch.nn.BatchNorm2d(3).load_state_dict(full)
    with pytest.raises(RuntimeError, match="num_batches_tracked"):
        pve.nn.BatchNorm2d(3).load_state_dict(full)


@pytest.mark.parametrize("make", [
    lambda nn, **k: nn.Linear(3, 4, **k), lambda nn, **k: nn.BatchNorm1d(3, **k),
    lambda nn, **k: nn.BatchNorm2d(3, **k), lambda nn, **k: nn.LayerNorm(3, **k),
    lambda nn, **k: nn.GroupNorm(1, 3, **k), lambda nn, **k: nn.PReLU(3, **k),
])
def test_layers_take_torch_device_and_dtype(make):
    for kw in ({"device": "cpu"}, {"device": torch.device("cpu")}, {"dtype": torch.float32},
               {"device": "cpu", "dtype": torch.float32}):
        make(torch.nn, **kw)
        assert make(pve.nn, **kw).weight.dtype == np.float32
    with pytest.raises(TypeError, match="only dtype float32"):
        make(pve.nn, dtype=torch.float64)
