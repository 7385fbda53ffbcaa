"""pve.models against the real torchvision models (not the hand-written twins of
pyvision_engine/benchmarks/torch_models.py): constructor signatures, state_dict layout,
initialization statistics, weights moving both ways with strict=True, eval and train
outputs, gradients and running statistics, at every SIMD level (the ``isa`` fixture).

Every test here skips, saying why, when torch or torchvision is missing or cannot be
imported (a torchvision wheel built for another torch or for CUDA fails to load its C
extension with a RuntimeError, not an ImportError). The core evidence needs neither:
tests/models/test_models.py checks torchvision's layout from a golden list and the
arguments from torchvision's documented rules.

References are torchvision in float64 (the same weights), so a deviation is pve's own.
Gradients of ReLU networks trained from a random init are ill-conditioned: float32
rounding (~1e-7 relative) flips ReLUs whose input is near zero and moves some weight
gradients of ResNet-18 at 224x224 by several percent, in torch's own float32 as well
(measured: 1e-7 relative noise added to a float64 run's convolutions moves them by 2-10%).
The gradient test therefore uses an input where torch float32, and pve with every ISA and
convolution algorithm, stay in the linear regime (measured: all within 4e-5 of float64).
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import pyvision_engine as pve
from pyvision_engine import _C, models, nn
from pyvision_engine.backends.conv import force_algorithm

TORCHVISION_MODELS = ["resnet18", "resnet34", "resnet50", "mobilenet_v2", "resnet101",
                      "resnext50_32x4d", "wide_resnet50_2", "mobilenet_v3_large",
                      "mobilenet_v3_small"]
# (the largest builders: their layout and keywords only, not a float64 forward in torch)
LARGE_TORCHVISION_MODELS = ["resnet152", "resnext101_32x8d", "resnext101_64x4d",
                            "wide_resnet101_2"]


def _tv():
    torch = pytest.importorskip("torch", reason="torch not installed: parity with torchvision "
                                                "not tested")
    try:
        import torchvision.models as tvm
    except Exception as exc:  # noqa: BLE001 (ImportError, or a C extension that fails to load)
        pytest.skip(f"torchvision cannot be imported ({type(exc).__name__}: {exc}): parity with "
                    "the real torchvision models not tested")
    return torch, tvm


def _randomize(torch, model, rng):
    """BatchNorm statistics and affine parameters away from 1/0, so they matter."""
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.from_numpy(rng.normal(0.0, 0.2, c)))
            m.running_var.copy_(torch.from_numpy(rng.uniform(0.5, 2.0, c)))
            with torch.no_grad():
                m.weight.copy_(torch.from_numpy(rng.uniform(0.5, 1.5, c)))
                m.bias.copy_(torch.from_numpy(rng.normal(0.0, 0.2, c)))
    return model


def _numpy_state(model):
    return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


def _close(got, want, rel, what):
    """max |got - want| <= rel * max |want| (float64 want)."""
    err = np.abs(np.asarray(got, np.float64) - want).max()
    assert err <= rel * np.abs(want).max(), f"{what}: max deviation {err:.3g}, " \
        f"{err / np.abs(want).max():.3g} of the largest value (allowed {rel})"


# --------------------------------------------------------------------------- signatures
@pytest.mark.parametrize("name", TORCHVISION_MODELS + LARGE_TORCHVISION_MODELS)
def test_builder_accepts_torchvision_keywords(name):
    _, tvm = _tv()
    tv_params = inspect.signature(getattr(tvm, name)).parameters
    mine = inspect.signature(getattr(models, name)).parameters
    for p in ("weights", "progress"):
        assert p in mine and mine[p].kind == inspect.Parameter.KEYWORD_ONLY
        assert mine[p].default == tv_params[p].default


@pytest.mark.parametrize("cls", ["ResNet", "MobileNetV2", "MobileNetV3"])
def test_constructor_arguments_and_defaults_match(cls):
    _, tvm = _tv()
    theirs = list(inspect.signature(getattr(tvm, cls).__init__).parameters.values())
    mine = list(inspect.signature(getattr(models, cls).__init__).parameters.values())
    assert [(p.name, p.default) for p in mine] == [(p.name, p.default) for p in theirs]


# --------------------------------------------------------------------------- layout and init
VARIANTS = [
    ("resnet18", {}, "resnet18", {}),
    ("resnet34", {}, "resnet34", {}),
    ("resnet50", {}, "resnet50", {}),
    ("mobilenet_v2", {}, "mobilenet_v2", {}),
    ("resnet18", {"num_classes": 10, "zero_init_residual": True}, "resnet18",
     {"num_classes": 10, "zero_init_residual": True}),
    ("resnet50", {"groups": 32, "width_per_group": 4}, "resnext50_32x4d", {}),
    ("resnet50", {"width_per_group": 128}, "wide_resnet50_2", {}),
    ("resnet50", {"replace_stride_with_dilation": [False, True, True]}, "resnet50",
     {"replace_stride_with_dilation": [False, True, True]}),
    ("mobilenet_v2", {"width_mult": 0.35}, "mobilenet_v2", {"width_mult": 0.35}),
    ("mobilenet_v2", {"width_mult": 1.4, "dropout": 0.5}, "mobilenet_v2",
     {"width_mult": 1.4, "dropout": 0.5}),
    ("mobilenet_v2", {"width_mult": 0.75, "round_nearest": 1}, "mobilenet_v2",
     {"width_mult": 0.75, "round_nearest": 1}),
] + [(name, {}, name, {}) for name in TORCHVISION_MODELS[4:] + LARGE_TORCHVISION_MODELS] + [
    ("mobilenet_v3_large", {"width_mult": 0.75, "reduced_tail": True, "num_classes": 10},
     "mobilenet_v3_large", {"width_mult": 0.75, "reduced_tail": True, "num_classes": 10}),
    ("mobilenet_v3_small", {"dilated": True, "dropout": 0.1}, "mobilenet_v3_small",
     {"dilated": True, "dropout": 0.1}),
]
VARIANT_IDS = [f"{t}-{'-'.join(f'{k}={v}' for k, v in tk.items())}".rstrip("-") for _, _, t, tk in VARIANTS]


@pytest.mark.parametrize("mine_name, mine_kw, tv_name, tv_kw", VARIANTS, ids=VARIANT_IDS)
def test_state_dict_layout_matches_torchvision(mine_name, mine_kw, tv_name, tv_kw):
    torch, tvm = _tv()
    theirs = getattr(tvm, tv_name)(**tv_kw).state_dict()
    mine = getattr(models, mine_name)(**mine_kw).state_dict()
    assert list(mine) == list(theirs)  # same keys in the same order
    for k, v in theirs.items():
        assert tuple(mine[k].shape) == tuple(v.shape), k
        assert np.dtype(mine[k].dtype) == np.dtype(str(v.dtype).replace("torch.", "")), k


_INIT_CASES = [i for i, (name, kw, _, _) in enumerate(VARIANTS)
               if i < 5 or i == 8 or (name in ("resnext50_32x4d", "mobilenet_v3_small") and not kw)]


@pytest.mark.parametrize("mine_name, mine_kw, tv_name, tv_kw", [VARIANTS[i] for i in _INIT_CASES],
                         ids=[VARIANT_IDS[i] for i in _INIT_CASES])
def test_initialization_matches_torchvision_statistically(mine_name, mine_kw, tv_name, tv_kw):
    """Per tensor: constants equal; random ones with the same mean, std, tails (kurtosis
    tells kaiming_normal_ from kaiming_uniform_) within 6 sampling standard errors."""
    torch, tvm = _tv()
    torch.manual_seed(0)
    pve.manual_seed(0)
    theirs = _numpy_state(getattr(tvm, tv_name)(**tv_kw))
    mine = {k: v.numpy() for k, v in getattr(models, mine_name)(**mine_kw).state_dict().items()}
    for k, b in theirs.items():
        a = np.asarray(mine[k], np.float64)
        b = np.asarray(b, np.float64)
        if b.size == 1 or np.all(b == b.flat[0]):
            np.testing.assert_array_equal(a, b, err_msg=k)
            continue
        n, sb = b.size, b.std()
        assert abs(a.std() / sb - 1) < 6 / np.sqrt(2 * n), (k, a.std(), sb)
        assert abs(a.mean() - b.mean()) < 6 * sb * np.sqrt(2 / n), (k, a.mean(), b.mean())
        kurt = lambda v: ((v - v.mean()) ** 4).mean() / v.std() ** 4  # noqa: E731
        assert abs(kurt(a) - kurt(b)) < max(0.3, 24 / np.sqrt(n)), (k, kurt(a), kurt(b))


# --------------------------------------------------------------------------- weights, outputs
EVAL_CASES = [("resnet18", {}, (2, 3, 97, 71)), ("resnet34", {}, (1, 3, 64, 64)),
              ("resnet50", {}, (2, 3, 65, 47)), ("mobilenet_v2", {}, (2, 3, 97, 71)),
              ("resnet50", {"replace_stride_with_dilation": [False, True, True]}, (1, 3, 64, 64)),
              ("resnet50", {"groups": 32, "width_per_group": 4}, (1, 3, 64, 64)),
              ("mobilenet_v2", {"width_mult": 0.5}, (1, 3, 64, 64)),
              ("resnext50_32x4d", {}, (1, 3, 64, 64)), ("wide_resnet50_2", {}, (1, 3, 48, 48)),
              ("resnet101", {}, (1, 3, 64, 64)), ("mobilenet_v3_large", {}, (2, 3, 97, 71)),
              ("mobilenet_v3_small", {}, (2, 3, 64, 64)),
              ("mobilenet_v3_small", {"reduced_tail": True, "dilated": True}, (1, 3, 64, 64))]


@pytest.mark.parametrize("name, kw, shape", EVAL_CASES,
                         ids=[f"{n}-{'-'.join(map(str, s[2:]))}{'-' + str(k) if k else ''}"
                              for n, k, s in EVAL_CASES])
def test_torchvision_weights_load_strict_and_eval_outputs_match(name, kw, shape, isa):
    torch, tvm = _tv()
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    theirs = _randomize(torch, getattr(tvm, name)(**kw), rng).eval()
    mine = getattr(models, name)(**kw)
    assert str(mine.load_state_dict(_numpy_state(theirs), strict=True)) == "<All keys matched successfully>"
    mine.eval()
    x = rng.standard_normal(shape).astype(np.float32)
    with torch.no_grad():
        want = theirs.double()(torch.from_numpy(x).double()).numpy()
    with pve.no_grad():  # the folded / fused inference paths
        _close(mine(x).numpy(), want, 1e-5, "eval, no_grad")
    _close(mine(x).detach().numpy(), want, 1e-5, "eval, grad enabled")  # layers as written


@pytest.mark.parametrize("name", TORCHVISION_MODELS)
def test_pve_weights_load_strict_into_torchvision(name, isa):
    torch, tvm = _tv()
    pve.manual_seed(0)
    mine = getattr(models, name)()
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 64, 64)).astype(np.float32)
    mine.train()
    with pve.no_grad():
        mine(x)  # running statistics and num_batches_tracked move
    mine.eval()
    theirs = getattr(tvm, name)()
    state = {k: torch.from_numpy(np.array(v.numpy())) for k, v in mine.state_dict().items()}
    assert str(theirs.load_state_dict(state, strict=True)) == "<All keys matched successfully>"
    tracked = [v for k, v in theirs.state_dict().items() if k.endswith("num_batches_tracked")]
    assert tracked and all(t.dtype == torch.int64 and int(t) == 1 for t in tracked)
    with torch.no_grad():
        want = theirs.double().eval()(torch.from_numpy(x).double()).numpy()
    with pve.no_grad():
        _close(mine(x).numpy(), want, 1e-5, "pve weights in torchvision")


@pytest.mark.parametrize("algorithm", [None, "im2col"], ids=["default-conv", "im2col"])
def test_train_step_matches_torchvision(algorithm, isa):
    """Train-mode outputs (batch statistics), loss, every parameter's gradient, the
    running statistics, and the parameters after one SGD step with momentum."""
    torch, tvm = _tv()
    torch.manual_seed(1)
    rng = np.random.default_rng(1)
    theirs = _randomize(torch, tvm.resnet18(), rng)
    state = _numpy_state(theirs)
    theirs = theirs.double().train()
    mine = models.resnet18()
    mine.load_state_dict(state, strict=True)
    mine.train()
    x = rng.standard_normal((2, 3, 65, 47)).astype(np.float32)
    y = rng.integers(0, 1000, 2)
    out = theirs(torch.from_numpy(x).double())
    loss = torch.nn.functional.cross_entropy(out, torch.from_numpy(y))
    loss.backward()
    torch.optim.SGD(theirs.parameters(), lr=0.01, momentum=0.9).step()
    with force_algorithm(algorithm):
        my_out = mine(x)
        my_loss = nn.CrossEntropyLoss()(my_out, pve.tensor(y))
        my_loss.backward()
    pve.optim.SGD(mine.parameters(), lr=0.01, momentum=0.9).step()
    _close(my_out.detach().numpy(), out.detach().numpy(), 1e-4, "train-mode output")
    assert abs(my_loss.item() - loss.item()) <= 1e-5 * abs(loss.item())
    grads = dict(theirs.named_parameters())
    scale = max(float(p.grad.abs().max()) for p in grads.values())
    for k, p in mine.named_parameters():
        want = grads[k].grad.numpy()
        err = np.abs(p.grad.numpy() - want).max()
        # (a gradient that is ~0 exactly, e.g. far below the largest, is judged on that one's scale)
        assert err <= 2e-4 * max(np.abs(want).max(), 1e-3 * scale), (k, err, np.abs(want).max())
    after = theirs.state_dict()
    for k, v in mine.state_dict().items():
        want = after[k].numpy()
        if k.endswith("num_batches_tracked"):
            assert int(v.numpy()) == int(want) == 1, k
        else:
            _close(v.numpy(), want, 1e-5, k)
    assert _C.active_isa() == isa


CNA_CASES = [dict(), dict(norm_layer=None), dict(activation_layer=None, stride=2),
             dict(kernel_size=(5, 3), dilation=(1, 2), groups=2), dict(padding=0, bias=True),
             dict(kernel_size=1, inplace=False)]


@pytest.mark.parametrize("kw", CNA_CASES, ids=[str(k) for k in CNA_CASES])
def test_conv2d_norm_activation_matches_torchvision_ops(kw, isa):
    torch, _ = _tv()
    from torchvision.ops.misc import Conv2dNormActivation as Theirs

    from pyvision_engine.models.mobilenet import Conv2dNormActivation as Mine

    assert [(p.name, p.default is None) for p in inspect.signature(Mine.__init__).parameters.values()] \
        == [(p.name, p.default is None) for p in inspect.signature(Theirs.__init__).parameters.values()]
    torch.manual_seed(0)
    theirs = _randomize(torch, Theirs(4, 6, **kw), np.random.default_rng(0)).eval()
    mine = Mine(4, 6, **{k: getattr(nn, v.__name__) if isinstance(v, type) else v for k, v in kw.items()})
    assert [type(m).__name__ for m in mine] == [type(m).__name__ for m in theirs]
    mine.load_state_dict(_numpy_state(theirs), strict=True)
    mine.eval()
    x = np.random.default_rng(1).standard_normal((2, 4, 9, 8)).astype(np.float32)
    with torch.no_grad():
        want = theirs.double()(torch.from_numpy(x).double()).numpy()
    with pve.no_grad():
        _close(mine(x).numpy(), want, 1e-5, "Conv2dNormActivation")
