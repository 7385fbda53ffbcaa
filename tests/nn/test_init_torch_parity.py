"""nn.init against live torch (skipped without it): the same signatures, the same
statistics on a large tensor (mean, std, bounds; not torch's random stream), the
same deterministic fills (eye_, dirac_) and the same error types and warnings."""

import inspect
import math
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import pyvision_engine as pve  # noqa: E402

I, TI = pve.nn.init, torch.nn.init
SHAPE = (256, 128, 3, 3)  # fan_in 1152, fan_out 2304


@pytest.fixture(autouse=True)
def _seeded():
    """Both engines' generators seeded per test: the statistics compared below are
    then the same samples on every run, whatever ran before (unseeded, one case
    failed in one of seven whole-directory runs)."""
    pve.manual_seed(0)
    torch.manual_seed(0)


@pytest.mark.parametrize("name", I.__all__)
def test_signature_matches_torch(name):
    ours = inspect.signature(getattr(I, name)).parameters
    theirs = inspect.signature(getattr(TI, name)).parameters
    assert [(p.name, p.default) for p in ours.values()] == \
        [(p.name, p.default) for p in theirs.values()]


def _pair(name, **kwargs):
    ours, theirs = pve.zeros(*SHAPE), torch.zeros(SHAPE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # trunc_normal_'s far-tail warning
        getattr(I, name)(ours, **kwargs)
        getattr(TI, name)(theirs, **kwargs)
    return ours.numpy().astype(np.float64), theirs.numpy().astype(np.float64)


@pytest.mark.parametrize("name,kwargs", [
    ("uniform_", dict(a=-2.0, b=3.0)), ("normal_", dict(mean=1.0, std=2.0)),
    ("xavier_uniform_", dict(gain=2.0)), ("xavier_normal_", {}),
    ("kaiming_uniform_", {}), ("kaiming_normal_", {}),
    ("kaiming_uniform_", dict(a=0.2)), ("kaiming_normal_", dict(a=math.sqrt(5))),
    ("kaiming_uniform_", dict(mode="fan_out", nonlinearity="relu")),
    ("kaiming_normal_", dict(mode="FAN_OUT", nonlinearity="tanh")),  # mode is lower-cased
    ("trunc_normal_", {}), ("trunc_normal_", dict(mean=1.0, std=0.5, a=0.0, b=1.5)),
    ("trunc_normal_", dict(a=2.5, b=4.0)),  # a tail: torch's uniform-proposal branch
    ("orthogonal_", dict(gain=2.0)), ("sparse_", dict(sparsity=0.25, std=0.5)),
])
def test_statistics_match_torch(name, kwargs):
    if name == "sparse_":
        ours, theirs = pve.zeros(512, 300), torch.zeros(512, 300)
        I.sparse_(ours, **kwargs)
        TI.sparse_(theirs, **kwargs)
        ours, theirs = ours.numpy(), theirs.numpy()
        np.testing.assert_array_equal((ours == 0).sum(0), (theirs == 0).sum(0))
    else:
        ours, theirs = _pair(name, **kwargs)
    std = theirs.std()
    assert abs(ours.mean() - theirs.mean()) < 0.01 * std + 1e-12
    assert abs(ours.std() / std - 1) < 0.01
    if name.endswith("uniform_") or name == "trunc_normal_":  # bounded: the same bounds
        np.testing.assert_allclose([ours.min(), ours.max()], [theirs.min(), theirs.max()],
                                   atol=0.002 * std)


def test_orthogonal_rows_or_columns_are_orthonormal():
    for shape in [(5, 3), (3, 5), (4, 4), (3, 2, 2)]:
        w = I.orthogonal_(pve.zeros(*shape), gain=1.5).numpy().reshape(shape[0], -1)
        gram = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
        np.testing.assert_allclose(gram, 2.25 * np.eye(len(gram)), atol=1e-5)


@pytest.mark.parametrize("shape,groups", [((4, 2, 3), 1), ((6, 2, 3, 3), 2), ((2, 4, 3, 3), 1),
                                          ((6, 4, 3, 3, 2), 3)])
def test_dirac_matches_torch(shape, groups):
    ours, theirs = pve.zeros(*shape), torch.zeros(shape)
    I.dirac_(ours, groups)
    TI.dirac_(theirs, groups)
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


@pytest.mark.parametrize("shape", [(3, 5), (5, 3), (4, 4)])
def test_eye_constant_ones_zeros_match_torch(shape):
    for name, args in [("eye_", ()), ("constant_", (0.3,)), ("ones_", ()), ("zeros_", ())]:
        ours, theirs = pve.ones(*shape) * 7, torch.ones(shape) * 7
        getattr(I, name)(ours, *args)
        getattr(TI, name)(theirs, *args)
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


@pytest.mark.parametrize("args", [("linear",), ("conv2d",), ("sigmoid",), ("tanh",), ("relu",),
                                  ("selu",), ("leaky_relu",), ("leaky_relu", 0.2),
                                  ("leaky_relu", 1)])
def test_calculate_gain_matches_torch(args):
    assert I.calculate_gain(*args) == TI.calculate_gain(*args)


CALLS = [
    lambda m, z: m.calculate_gain("swish"),
    lambda m, z: m.calculate_gain("leaky_relu", "0.2"),
    lambda m, z: m.calculate_gain("leaky_relu", True),
    lambda m, z: m._calculate_fan_in_and_fan_out(z(3)),
    lambda m, z: m.kaiming_uniform_(z(3)),
    lambda m, z: m.xavier_normal_(z(3)),
    lambda m, z: m.kaiming_normal_(z(3, 3), mode="fan_avg"),
    lambda m, z: m.eye_(z(3, 3, 3)),
    lambda m, z: m.dirac_(z(3, 3)),
    lambda m, z: m.dirac_(z(3, 3, 3), groups=2),
    lambda m, z: m.orthogonal_(z(3)),
    lambda m, z: m.sparse_(z(3), 0.1),
    lambda m, z: m.uniform_(z(3), 1.0, 0.0),
    lambda m, z: m.normal_(z(3), 0.0, -1.0),
]


@pytest.mark.parametrize("call", CALLS)
def test_errors_match_torch(call):
    with pytest.raises(Exception) as theirs:
        call(TI, torch.zeros)
    with pytest.raises(type(theirs.value), match=str(theirs.value)[:25].replace("[", r"\[")):
        call(I, pve.zeros)


@pytest.mark.parametrize("name", ["kaiming_uniform_", "kaiming_normal_"])
def test_kaiming_on_a_zero_element_tensor_warns_and_returns(name):
    t = pve.zeros(0, 3)
    with pytest.warns(UserWarning, match="zero-element"):
        assert getattr(I, name)(t) is t
    with pytest.warns(UserWarning, match="zero-element"):
        getattr(TI, name)(torch.zeros(0, 3))


def test_generator_argument_gives_reproducible_draws():
    draws = [I.kaiming_uniform_(pve.zeros(8, 4), generator=np.random.default_rng(5)).numpy()
             for _ in range(2)]
    np.testing.assert_array_equal(draws[0], draws[1])
    with pytest.raises(TypeError):
        I.normal_(pve.zeros(2), generator=5)
