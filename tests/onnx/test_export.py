"""pve.onnx.export: the zoo and hand-built nets run in onnxruntime as in pve; errors are clear.

onnx (the checker) and onnxruntime are test extras; tests that need them skip, saying so,
when they are missing. The export itself needs neither, nor torch. The helpers and the
tolerance are tests/reference/onnx_roundtrip.py's.
"""

from __future__ import annotations

import io
import os
import pathlib

import numpy as np
import pytest

import pyvision_engine as pve
from pyvision_engine import nn
from pyvision_engine.autograd import Function
from pyvision_engine.nn import functional as F
from pyvision_engine.onnx import export
from reference.onnx_roundtrip import RNG, assert_close, check, images, reference, run

BATCH = {"input": {0: "batch"}, "output": {0: "batch"}}


# --------------------------------------------------------------------------- helpers
def _randomize_batch_norms(model):
    """Running statistics and affine parameters away from 0/1, so BN export is exercised."""
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            c = m.num_features
            m.running_mean.copy_(RNG.normal(0.0, 0.2, c).astype(np.float32))
            m.running_var.copy_(RNG.uniform(0.5, 2.0, c).astype(np.float32))
            if m.weight is not None:
                with pve.no_grad():
                    m.weight.copy_(RNG.uniform(0.5, 1.5, c).astype(np.float32))
                    m.bias.copy_(RNG.normal(0.0, 0.2, c).astype(np.float32))
    return model


def _export_and_compare(model, x, tmp_path, **kwargs):
    path = tmp_path / "model.onnx"
    export(model, x, path, **kwargs)
    check(path)
    (got,) = run(path, {"input": x})
    assert_close(got, reference(model, x)[0])
    return path


# --------------------------------------------------------------------------- the zoo
ZOO = [("lenet5", (1, 28, 28)), ("resnet20", (3, 32, 32)), ("resnet18", (3, 64, 64)),
       ("resnet50", (3, 64, 64)), ("mobilenet_v2", (3, 64, 64))]


@pytest.mark.parametrize("name,shape", ZOO, ids=[n for n, _ in ZOO])
def test_zoo_model_matches_onnxruntime(name, shape, tmp_path):
    model = _randomize_batch_norms(pve.models.get_model(name)).eval()
    path = _export_and_compare(model, images(2, *shape), tmp_path)
    onnx_model = check(path)
    ops = {n.op_type for n in onnx_model.graph.node}
    assert "BatchNormalization" not in ops  # folded into the convolutions
    assert onnx_model.producer_name == "pyvision_engine"
    assert onnx_model.producer_version == pve.__version__
    assert onnx_model.ir_version == 8 and onnx_model.opset_import[0].version == 17


@pytest.mark.parametrize("name,shape", [("resnet20", (3, 32, 32)), ("mobilenet_v2", (3, 32, 32))])
def test_dynamic_batch(name, shape, tmp_path):
    model = _randomize_batch_norms(pve.models.get_model(name)).eval()
    path = tmp_path / "dynamic.onnx"
    export(model, images(1, *shape), path, dynamic_axes=BATCH)
    onnx_model = check(path)
    assert onnx_model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert onnx_model.graph.output[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    x = images(3, *shape)
    (got,) = run(path, {"input": x})
    assert_close(got, reference(model, x)[0])


def test_dynamic_axes_as_list_get_torch_names(tmp_path, capsys):
    path = tmp_path / "m.onnx"
    export(nn.Sequential(nn.Flatten(), nn.Linear(12, 3)), images(2, 3, 4), path,
           dynamic_axes={"input": [0]}, verbose=True)
    assert "/1/Gemm: Gemm(" in capsys.readouterr().out
    onnx_model = check(path)
    assert onnx_model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == \
        "input_dynamic_axes_1"
    (got,) = run(path, {"input": images(5, 3, 4)})
    assert got.shape == (5, 3)


def test_conv_bn_not_folded_without_constant_folding(tmp_path):
    model = _randomize_batch_norms(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))).eval()
    path = _export_and_compare(model, images(2, 3, 8, 8), tmp_path, do_constant_folding=False)
    assert "BatchNormalization" in {n.op_type for n in check(path).graph.node}


# --------------------------------------------------------------------------- hand-built nets
class CatResidual(nn.Module):
    """cat, a residual add, reshapes, scalar arithmetic, mean and a 3-D Linear."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, padding=1)
        self.b = nn.Conv2d(3, 4, 1)
        self.mix = nn.Conv2d(8, 3, 1)
        self.fc = nn.Linear(6, 5)
        self.bn1d = nn.BatchNorm1d(3)
        self.drop = nn.Dropout(0.3)

    def forward(self, x):
        y = pve.cat([self.a(x), F.relu(self.b(x))], dim=1)
        y = x + self.mix(y)                                   # residual add
        y = (1.0 - y * 0.5) / 2.0 + 3.0 * y.mean((2, 3), keepdim=True)
        n = y.shape[0]
        z = self.bn1d(self.drop(y).view(n, 3, 6, -1).mean(3))  # (N, 3, 6)
        return F.softmax(self.fc(z), dim=-1).flatten(1)


class TwoInTwoOut(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3, padding=1)

    def forward(self, a, b):
        s = self.conv(a) + b
        return s, F.sigmoid(s) * b - s


def _fused(make, **kwargs):
    """The engine's own fused Conv+BN(+ReLU) modules (4 -> 4 channels)."""
    conv, bn = nn.Conv2d(4, 4, 3, padding=1), _randomize_batch_norms(nn.BatchNorm2d(4)).eval()
    return make(conv.eval(), bn, **kwargs)


def _pool_net():
    return nn.Sequential(
        nn.MaxPool2d(3, 2, 1, ceil_mode=True),
        nn.AvgPool2d(3, 2, padding=1, ceil_mode=True, count_include_pad=False),
        nn.Conv2d(3, 3, 1),
        nn.AvgPool2d(2, 1, padding=1, ceil_mode=True),                # counts padding
        nn.MaxPool2d(2, 1, dilation=2),                                # 3x3 here
        nn.AdaptiveAvgPool2d((3, 1)))


def _ceil_drops_a_window_net():
    # 5 + 2 * 1 padding, windows of 2 every 2: ceil_mode's 4th window would start in the
    # padding, which torch (and pve) drop
    return nn.Sequential(nn.MaxPool2d(2, 2, 1, ceil_mode=True), nn.Conv2d(3, 3, 1),
                         nn.AvgPool2d(2, 2, 1, ceil_mode=True, count_include_pad=False),
                         nn.Conv2d(3, 3, 1), nn.AvgPool2d(2, 2, 1, ceil_mode=True))


def _bn_clamp_net():
    # BatchNorm2d -> ReLU6 / ReLU, after a Conv (folded) and alone, with outputs
    # well above 6 (the large conv weights): the clamp runs in BatchNorm's pass.
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU6(), nn.MaxPool2d(2),
                        nn.BatchNorm2d(4), nn.ReLU6(), nn.BatchNorm2d(4), nn.ReLU())
    with pve.no_grad():
        net[0].weight.mul_(20.0)
    return net


HAND_NETS = {
    "batch_norm_clamps": (_bn_clamp_net, (2, 3, 9, 9)),
    "conv_variants": (lambda: nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(8, 8, 3, padding="same", dilation=2, groups=4), nn.BatchNorm2d(8),
        nn.LeakyReLU(0.2), nn.Conv2d(8, 6, (3, 1), stride=(2, 1), padding=(0, 2), bias=False),
        nn.Conv2d(6, 6, 2, padding="valid"), nn.Hardswish(), nn.Conv2d(6, 4, 4, padding="same"),
        nn.ReLU6(), _fused(nn.ConvBnReLU2d), _fused(nn.fuse_conv_bn_eval, relu=True)),
        (2, 3, 17, 15)),
    "pooling": (_pool_net, (2, 3, 13, 11)),
    "ceil_mode_edge": (_ceil_drops_a_window_net, (2, 3, 9, 11)),
    "global_pools": (lambda: nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.AdaptiveMaxPool2d(1), nn.Identity(), nn.Flatten(),
        nn.Linear(4, 2), nn.Dropout()),
        (2, 3, 9, 9)),
    "activations": (lambda: nn.Sequential(
        nn.Conv2d(3, 6, 1), nn.Sigmoid(), nn.Conv2d(6, 6, 1), nn.Tanh(), nn.GELU(),
        nn.GELU("tanh"), nn.SiLU(), nn.Hardsigmoid(), nn.PReLU(6), nn.PReLU(),
        nn.Conv2d(6, 6, 1), nn.Softmax(dim=1), nn.Conv2d(6, 6, 1), nn.LogSoftmax(dim=2)),
        (2, 3, 5, 4)),
    "resize_and_pad": (lambda: nn.Sequential(
        nn.Upsample(scale_factor=2), nn.ZeroPad2d((1, 2, 0, 3)), nn.Conv2d(3, 3, 3),
        nn.Upsample(size=(9, 7)), nn.Upsample(scale_factor=1.5, mode="bilinear"),
        nn.Upsample(scale_factor=1.7),
        nn.Upsample(size=(5, 6), mode="bilinear", align_corners=True),
        nn.Conv2d(3, 4, 3, padding_mode="reflect", padding=1),
        nn.Conv2d(4, 4, 3, padding_mode="replicate", padding=(2, 1))), (2, 3, 4, 5)),
    "norms": (lambda: nn.Sequential(
        nn.Conv2d(3, 6, 3), nn.GroupNorm(3, 6), nn.ReLU(), nn.LayerNorm([5, 5])), (2, 3, 7, 7)),
    "cat_residual_reshape": (CatResidual, (2, 3, 6, 6)),
    "conv_transpose": (lambda: nn.Sequential(
        nn.ConvTranspose2d(3, 6, 3, stride=2, padding=1, output_padding=1, groups=3),
        nn.ReLU(), nn.ConvTranspose2d(6, 4, (2, 3), stride=(1, 2), padding=(0, 1), bias=False),
        # output padding 1 at stride 1 (below the dilation: torch's rule, not onnxruntime's)
        nn.ConvTranspose2d(4, 4, 3, padding=1, output_padding=1, dilation=2),
        nn.ConvTranspose2d(4, 2, 2, padding=(1, 0), output_padding=(2, 1), dilation=3)),
        (2, 3, 5, 4)),
    "more_activations": (lambda: nn.Sequential(
        nn.Conv2d(3, 6, 1), nn.ELU(0.7), nn.Conv2d(6, 6, 1), nn.SELU(), nn.CELU(1.3),
        nn.Hardtanh(-0.5, 0.8), nn.Conv2d(6, 6, 1), nn.Threshold(0.1, -2.0), nn.Softplus(),
        nn.Softplus(2.0, 3.0), nn.Conv2d(6, 6, 1), nn.Mish(), nn.Softsign(), nn.Tanhshrink(),
        nn.LogSigmoid()), (2, 3, 5, 4)),
    "shuffles_and_instance_norm": (lambda: nn.Sequential(
        nn.Conv2d(3, 16, 1), nn.PixelShuffle(2), nn.InstanceNorm2d(4, affine=True),
        nn.PixelUnshuffle(2), nn.ChannelShuffle(4), nn.LocalResponseNorm(3, 1e-2, 0.75, 2.0),
        nn.InstanceNorm2d(16)), (2, 3, 4, 6)),
}


@pytest.fixture(params=sorted(HAND_NETS))
def hand_net(request):
    make, shape = HAND_NETS[request.param]
    return _randomize_batch_norms(make()).eval(), images(*shape)


def test_hand_built_net_matches_onnxruntime(hand_net, tmp_path):
    model, x = hand_net
    path = _export_and_compare(model, x, tmp_path, dynamic_axes=BATCH)
    x3 = images(3, *x.shape[1:])  # another batch size through the same file
    (got,) = run(path, {"input": x3})
    assert_close(got, reference(model, x3)[0])


def test_hand_built_net_matches_pve_inference_session(hand_net, tmp_path):
    """The other way back: pve's own ONNX runtime reads what the exporter writes."""
    model, x = hand_net
    path = tmp_path / "model.onnx"
    export(model, x, path)
    session = pve.onnx.InferenceSession(str(path))
    (got,) = session.run(None, {"input": x})
    assert_close(np.asarray(got), reference(model, x)[0])


@pytest.mark.parametrize("name,shape", [("resnet20", (3, 32, 32)), ("mobilenet_v2", (3, 32, 32))])
def test_zoo_model_matches_pve_inference_session(name, shape, tmp_path):
    model = _randomize_batch_norms(pve.models.get_model(name)).eval()
    x = images(2, *shape)
    path = tmp_path / "model.onnx"
    export(model, x, path)
    (got,) = pve.onnx.InferenceSession(str(path)).run(None, {"input": x})
    assert_close(np.asarray(got), reference(model, x)[0])


@pytest.mark.parametrize("opset", [13, 15, 18, 21])
def test_opsets(opset, tmp_path):
    model = _randomize_batch_norms(nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Hardswish(), nn.ZeroPad2d(1),
        nn.Upsample(scale_factor=2), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))).eval()
    path = _export_and_compare(model, images(2, 3, 6, 6), tmp_path, opset_version=opset)
    assert check(path).opset_import[0].version == opset


class Elementwise(nn.Module):
    """Reductions, unary ops, powers, clamps, permutes and broadcasting shape ops."""

    def forward(self, x):
        x = pve.as_tensor(x)
        m = x.mean((2, 3))                                    # (N, C)
        u = x.abs().sqrt().exp().log().mean(-1).mean(-1)
        p = x.permute(0, 2, 3, 1).sum((1, 2)) * 0.1
        q = (m.abs() ** 1.5).clamp(-0.5, 0.5) - (-m).clamp(min=0.1).max(u)
        e = m.unsqueeze(2).expand(m.shape[0], m.shape[1], 3).sum(2).t().t()
        c = m.clamp(min=u, max=0.3) + x.clamp(max=x.mean((1, 2, 3), keepdim=True)).sum((2, 3))
        return m + u + p + q + c + e / x.mean() + (m @ m.t()).sum(1, keepdim=True) - x.max()


def test_reductions_and_elementwise_ops(tmp_path):
    _export_and_compare(Elementwise().eval(), images(2, 4, 3, 3), tmp_path)


def test_many_inputs_and_outputs_with_default_and_given_names(tmp_path):
    model = TwoInTwoOut().eval()
    a, b = images(2, 2, 5, 5), images(2, 2, 5, 5)
    path = tmp_path / "two.onnx"
    export(model, (a, pve.from_numpy(b)), path)
    onnx_model = check(path)
    assert [i.name for i in onnx_model.graph.input] == ["input_0", "input_1"]
    assert [o.name for o in onnx_model.graph.output] == ["output_0", "output_1"]
    got = run(path, {"input_0": a, "input_1": b})
    for g, w in zip(got, reference(model, a, b)):
        assert_close(g, w)
    export(model, (a, b), path, input_names=["a", "b"], output_names=["sum", "gate"])
    assert [o.name for o in check(path).graph.output] == ["sum", "gate"]
    assert_close(run(path, {"a": a, "b": b})[1], reference(model, a, b)[1])


def test_output_that_is_the_input_and_file_objects(tmp_path):
    class Twice(nn.Module):
        def forward(self, x):
            y = F.relu(x)
            return x, y, y

    buffer = io.BytesIO()
    export(Twice(), images(1, 3), buffer)
    path = tmp_path / "twice.onnx"
    path.write_bytes(buffer.getvalue())
    check(path)
    x = images(1, 3)
    got = run(path, {"input": x})
    np.testing.assert_array_equal(got[0], x)
    np.testing.assert_array_equal(got[1], np.maximum(x, 0))
    np.testing.assert_array_equal(got[2], np.maximum(x, 0))


def test_in_place_relu_on_the_input_and_str_paths(tmp_path):
    model = nn.Sequential(nn.ReLU(inplace=True), nn.Linear(4, 2)).eval()
    x = images(3, 4)
    before = x.copy()
    export(model, x, str(tmp_path / "m.onnx"))
    np.testing.assert_array_equal(x, before)  # the example input is not touched
    (got,) = run(tmp_path / "m.onnx", {"input": x})
    assert_close(got, reference(model, x.copy())[0])


# --------------------------------------------------------------------------- errors
def test_training_mode_batch_norm_and_dropout_are_value_errors(tmp_path):
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))  # training mode
    with pytest.raises(ValueError, match=r"1 \(BatchNorm2d\) is in training mode.*model\.eval\(\)"):
        export(model, images(2, 3, 8, 8), tmp_path / "m.onnx")
    with pytest.raises(ValueError, match="Dropout.*model.eval"):
        export(nn.Sequential(nn.Linear(3, 3), nn.Dropout()), images(2, 3), tmp_path / "m.onnx")

    class FunctionalDropout(nn.Module):
        def forward(self, x):
            return F.dropout(x, 0.5, training=True)

    with pytest.raises(ValueError, match="dropout in training mode"):
        export(FunctionalDropout(), images(2, 3), tmp_path / "m.onnx")
    stats_free = nn.Sequential(nn.BatchNorm2d(3, track_running_stats=False)).eval()
    with pytest.raises(ValueError, match="batch statistics"):
        export(stats_free, images(2, 3, 4, 4), tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


class Sliced(nn.Module):
    def forward(self, x):
        return x[:, :2]


class MadeInForward(nn.Module):
    def forward(self, x):
        return x * pve.ones(x.shape[1:])


class Thresholded(nn.Module):
    def forward(self, x):
        return x * (x > 0).float()


class Flat1d(nn.Module):
    def forward(self, x):
        return nn.functional.interpolate(x.flatten(2), scale_factor=2, mode="nearest")


@pytest.mark.parametrize("model,pattern", [
    (Sliced(), "Index"),
    (MadeInForward(), "neither a traced value nor a parameter"),
    (Thresholded(), "neither a traced value nor a parameter"),
    (nn.AvgPool2d(2, divisor_override=3), "divisor_override"),
    (nn.AdaptiveAvgPool2d((3, 3)), "8x8 to 3x3"),
    (nn.AdaptiveMaxPool2d(2, return_indices=True), "return_indices"),  # (max_pool2d's: MaxPool's)
    (nn.Conv2d(3, 3, 3, padding=1, padding_mode="circular"), "circular"),
    (nn.AdaptiveAvgPool2d((0, 2)), "empty 0x2 output"),
    (Flat1d(), "interpolate on a 3-D input"),
    (nn.LocalResponseNorm(4), "even size"),
], ids=["slice", "constant-made-in-forward", "comparison", "divisor_override",
        "uneven-adaptive-pool", "return_indices", "circular-pad-opset17", "empty-adaptive-pool",
        "interpolate-3d", "lrn-even-size"])
def test_unsupported_ops_are_not_implemented_errors(model, pattern, tmp_path):
    with pytest.raises(NotImplementedError, match=pattern) as info:
        export(model.eval(), images(1, 3, 8, 8), tmp_path / "m.onnx")
    assert "Supported:" in str(info.value)
    assert not (tmp_path / "m.onnx").exists()


def test_bad_arguments(tmp_path):
    model = nn.Sequential(nn.Linear(3, 2)).eval()
    with pytest.raises(TypeError, match="pve.nn.Module"):
        export(lambda x: x, images(1, 3), tmp_path / "m.onnx")
    with pytest.raises(TypeError, match="float32"):
        export(model, np.zeros((1, 3)), tmp_path / "m.onnx")
    with pytest.raises(TypeError, match="numpy array or a pve.Tensor"):
        export(model, [[0.0, 1.0, 2.0]], tmp_path / "m.onnx")
    with pytest.raises(ValueError, match="opset_version"):
        export(model, images(1, 3), tmp_path / "m.onnx", opset_version=11)
    with pytest.raises(ValueError, match="dynamic_axes names 'images'"):
        export(model, images(1, 3), tmp_path / "m.onnx", dynamic_axes={"images": [0]})
    with pytest.raises(ValueError, match="input_names"):
        export(model, images(1, 3), tmp_path / "m.onnx", input_names=["a", "b"])
    with pytest.raises(TypeError, match="writable binary file"):
        export(model, images(1, 3), 42)
    assert not (tmp_path / "m.onnx").exists()


def test_failed_export_leaves_the_file_and_the_engine_as_they_were(tmp_path):
    target = tmp_path / "model.onnx"
    target.write_bytes(b"previous contents")
    apply_before, call_before, relu_before = Function.__dict__["apply"], nn.Module.__call__, F.relu
    with pytest.raises(NotImplementedError):
        export(nn.Sequential(nn.ReLU(), Sliced()).eval(), images(1, 3, 4, 4), target)
    assert target.read_bytes() == b"previous contents"
    assert Function.__dict__["apply"] is apply_before and nn.Module.__call__ is call_before
    assert F.relu is relu_before
    export(nn.Sequential(nn.ReLU()).eval(), images(1, 3, 4, 4), pathlib.PurePath(target))
    assert target.read_bytes() != b"previous contents"
    assert sorted(os.listdir(tmp_path)) == ["model.onnx"]  # no temporary file left behind


def test_export_leaves_the_model_unchanged(tmp_path):
    model = _randomize_batch_norms(pve.models.get_model("resnet20")).eval()
    state = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    x = images(1, 3, 32, 32)
    before = reference(model, x)[0]
    export(model, x, tmp_path / "m.onnx")
    assert not model.training
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), state[k], err_msg=k)
    np.testing.assert_array_equal(reference(model, x)[0], before)


def test_circular_padding_from_opset_19(tmp_path):
    model = nn.Conv2d(3, 4, 3, padding=(1, 2), padding_mode="circular").eval()
    _export_and_compare(model, images(2, 3, 6, 7), tmp_path, opset_version=19)


# The last window ceil_mode keeps can reach past the input by up to dilation * (k - 1),
# which for a dilated max pool is >= kernel_size: onnxruntime refuses such MaxPool pads
# ("Pad should be smaller than kernel"), so that padding is an explicit -inf Pad.
@pytest.mark.parametrize("args,hw", [
    ((2, 3, 1, 2), (10, 9)),           # W: last window 8, 10 of 0..8: end pad 2 == kernel
    ((4, (2, 4), (2, 1), (3, 2)), (7, 10)),
    ((2, 3, (1, 0), 3), (4, 11)),
    ((3, 2, 1, 2), (9, 8)),            # (no extra end pad: MaxPool's own pads suffice)
], ids=["k2-s3-d2", "k4-d3x2", "k2x1-d3", "k3-s2-d2"])
def test_dilated_ceil_mode_max_pool_runs_in_onnxruntime(args, hw, tmp_path):
    kernel, stride, padding, dilation = args
    model = nn.Sequential(nn.Conv2d(3, 3, 1),
                          nn.MaxPool2d(kernel, stride, padding, dilation=dilation, ceil_mode=True))
    x = images(2, 3, *hw)
    path = _export_and_compare(model.eval(), x, tmp_path, dynamic_axes=BATCH)
    (got,) = pve.onnx.InferenceSession(str(path)).run(None, {"input": x})
    assert_close(np.asarray(got), reference(model, x)[0])


class ExpandMean(nn.Module):
    """Broadcast a per-image statistic back over the map, and a new leading dim."""

    def forward(self, x):
        m = x.mean((2, 3), keepdim=True)                             # (N, C, 1, 1)
        e = m.expand(x.shape[0], x.shape[1], x.shape[2], x.shape[3])  # (N, C, H, W)
        w = m.flatten(1).expand(2, x.shape[0], x.shape[1]).sum(0)      # (N, C)
        return (x * e).sum((2, 3)) + w


def test_expand_keeps_the_batch_dim_free(tmp_path):
    model = ExpandMean().eval()
    path = tmp_path / "expand.onnx"
    export(model, images(2, 3, 4, 5), path, dynamic_axes=BATCH)
    check(path)
    for batch in (2, 5, 1):
        x = images(batch, 3, 4, 5)
        (got,) = run(path, {"input": x})
        assert_close(got, reference(model, pve.tensor(x))[0])
        (mine,) = pve.onnx.InferenceSession(str(path)).run(None, {"input": x})
        assert_close(np.asarray(mine), reference(model, pve.tensor(x))[0])
