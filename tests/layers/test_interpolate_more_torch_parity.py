"""interpolate 'bicubic', 'area' and antialias=True against torch.nn.functional.interpolate:
values and gradients (float32 pve vs float64 torch) over modes x align_corners x sizes up
and down x antialias x scale_factor rules, and the error types of invalid arguments."""

import numpy as np
import pytest

import pyvision_engine as pve

torch = pytest.importorskip("torch", reason="torch parity needs torch")
F = pve.nn.functional
rng = np.random.default_rng(29)


def compare_with_torch(torch, name, inputs, kwargs, rng):
    """pve vs torch, both in float32 (the source positions and cubic weights are float32
    in both, so a float64 torch differs from either by their rounding): values, then the
    input gradient under a random upstream gradient."""
    (x,) = inputs
    xt = torch.tensor(x, requires_grad=True)
    xp = pve.tensor(x, requires_grad=True)
    out_t = getattr(torch.nn.functional, name)(xt, **kwargs)
    out_p = getattr(F, name)(xp, **kwargs)
    assert tuple(out_p.shape) == tuple(out_t.shape)
    np.testing.assert_allclose(out_p.detach().numpy(), out_t.detach().numpy(), rtol=1e-5,
                               atol=1e-5)
    g = rng.standard_normal(tuple(out_t.shape)).astype(np.float32)
    out_t.backward(torch.tensor(g))
    out_p.backward(pve.tensor(g))
    np.testing.assert_allclose(xp.grad.numpy(), xt.grad.numpy(), rtol=1e-5, atol=1e-5)

SIZES = [((5, 7), (11, 3)), ((8, 8), (3, 5)), ((4, 4), (4, 4)), ((1, 6), (3, 1)),
         ((17, 9), (4, 20)), ((30, 31), (7, 6)), ((3, 2), (12, 9))]


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
@pytest.mark.parametrize("antialias", [False, True])
@pytest.mark.parametrize("align", [False, True])
@pytest.mark.parametrize("hw,out", SIZES)
def test_sizes_like_torch(mode, antialias, align, hw, out):
    x = rng.standard_normal((2, 3) + hw).astype(np.float32)
    compare_with_torch(torch, "interpolate", [x], dict(size=out, mode=mode, align_corners=align,
                                                       antialias=antialias), rng=rng)


@pytest.mark.parametrize("mode,antialias", [("bilinear", False), ("bilinear", True),
                                            ("bicubic", False), ("bicubic", True),
                                            ("area", False)])
@pytest.mark.parametrize("factor", [0.3, 0.5, 0.7, 1.5, 2.0, 2.7, (0.6, 1.8)])
@pytest.mark.parametrize("recompute", [None, True])
def test_scale_factor_like_torch(mode, antialias, factor, recompute):
    x = rng.standard_normal((1, 2, 9, 10)).astype(np.float32)
    compare_with_torch(torch, "interpolate", [x], dict(scale_factor=factor, mode=mode,
                                                       antialias=antialias,
                                                       recompute_scale_factor=recompute), rng=rng)


@pytest.mark.parametrize("shape,size", [((2, 3, 7), 3), ((2, 3, 7), 10), ((2, 1, 5), 5),
                                        ((1, 2, 8, 9), (4, 3)), ((1, 2, 5, 6), (7, 2)),
                                        ((2, 2, 6, 6), 1)])
def test_area_like_torch(shape, size):
    x = rng.standard_normal(shape).astype(np.float32)
    compare_with_torch(torch, "interpolate", [x], dict(size=size, mode="area"), rng=rng)


def test_upsample_layer_like_torch():
    x = rng.standard_normal((1, 2, 4, 5)).astype(np.float32)
    for kw in (dict(scale_factor=2, mode="bicubic"), dict(size=(7, 3), mode="bicubic",
                                                          align_corners=True),
               dict(size=(2, 3), mode="area")):
        got = pve.nn.Upsample(**kw)(pve.tensor(x)).numpy()
        want = torch.nn.Upsample(**kw)(torch.tensor(x)).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=str(kw))


def test_nan_reaches_the_same_outputs_as_torch():
    x = rng.standard_normal((1, 1, 9, 8)).astype(np.float32)
    x[0, 0, 4, 3] = np.nan
    for kw in (dict(size=(4, 5), mode="bicubic"), dict(size=(3, 3), mode="bilinear",
                                                       antialias=True),
               dict(size=(3, 2), mode="bicubic", antialias=True), dict(size=(3, 3), mode="area")):
        got = F.interpolate(pve.tensor(x), **kw).numpy()
        want = torch.nn.functional.interpolate(torch.tensor(x), **kw).numpy()
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=str(kw))


@pytest.mark.parametrize("args", [
    dict(shape=(1, 1, 4), size=2, mode="bicubic"),
    dict(shape=(1, 1, 4, 4), size=2, mode="area", align_corners=True),
    dict(shape=(1, 1, 4, 4), size=2, mode="nearest", antialias=True),
    dict(shape=(1, 1, 4), size=2, mode="area", antialias=True),
    dict(shape=(1, 1, 4), size=2, mode="linear", antialias=True),
])
def test_error_types_like_torch(args):
    args = dict(args)
    x = np.zeros(args.pop("shape"), np.float32)
    with pytest.raises(Exception) as theirs:
        torch.nn.functional.interpolate(torch.tensor(x), **args)
    with pytest.raises(type(theirs.value)):
        F.interpolate(pve.tensor(x), **args)
