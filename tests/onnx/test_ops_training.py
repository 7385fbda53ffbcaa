"""pve.onnx's optimizer operators of the ai.onnx.preview.training domain
(pyvision_engine/onnx/_ops_training.py): Adam, Adagrad, Momentum (standard, Nesterov).

onnxruntime's inference build does not implement this domain, so the references are:
- float64 numpy written from the specification's pseudo code, the optimized tensors
  concatenated into one vector as the specification describes the multi-tensor case;
- torch.optim (Adam with eps 0, Adagrad, SGD with momentum / Nesterov and weight decay),
  whose updates equal the specification's for those settings, over several steps of a
  small least-squares problem with the update count T fed as torch counts its steps.
Errors name the node. The onnx backend node cases (test_adam, test_adagrad, test_momentum,
...) run in test_session.py.

onnx builds the models; onnx and torch are test extras: tests that need one skip and say
so without it.
"""

from __future__ import annotations

import numpy as np
import pytest

from pyvision_engine.onnx import InferenceSession

onnx = pytest.importorskip("onnx", reason="onnx (a test extra) builds the test models")
from onnx import helper  # noqa: E402

DOMAIN = "ai.onnx.preview.training"
RNG = np.random.default_rng(1)
PARTS = {"Adam": 4, "Adagrad": 3, "Momentum": 3}  # X, G and the states per tensor


def _model(op_type, inputs, attrs, outputs, training_opset=1):
    graph_inputs = [helper.make_tensor_value_info(f"i{k}", helper.np_dtype_to_tensor_dtype(v.dtype),
                                                  v.shape) for k, v in enumerate(inputs)]
    node = helper.make_node(op_type, [f"i{k}" for k in range(len(inputs))],
                            [f"o{k}" for k in range(outputs)], name="the_node", domain=DOMAIN,
                            **attrs)
    graph = helper.make_graph([node], "g", graph_inputs,
                              [onnx.ValueInfoProto(name=f"o{k}") for k in range(outputs)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid(DOMAIN, training_opset)])
    model.ir_version = 8
    return model.SerializeToString()


def _run(op_type, inputs, attrs, outputs=None):
    if outputs is None:
        outputs = (len(inputs) - 2) // PARTS[op_type] * (PARTS[op_type] - 1)
    sess = InferenceSession(_model(op_type, inputs, attrs, outputs))
    return sess.run(None, {f"i{k}": v for k, v in enumerate(inputs)})


# --------------------------------------------------------------------------- references
def _flat(tensors):
    return np.concatenate([np.asarray(t, np.float64).ravel() for t in tensors])


def _split(vector, like):
    out, at = [], 0
    for t in like:
        out.append(vector[at:at + t.size].reshape(t.shape))
        at += t.size
    return out


def ref_adam(r, t, xs, gs, vs, hs, alpha=0.9, beta=0.999, epsilon=1e-6, norm_coefficient=0.0,
             norm_coefficient_post=0.0):
    x, g, v, h = (_flat(a) for a in (xs, gs, vs, hs))
    g_regularized = norm_coefficient * x + g
    v_new = alpha * v + (1 - alpha) * g_regularized
    h_new = beta * h + (1 - beta) * g_regularized * g_regularized
    h_sqrt = np.sqrt(h_new) + epsilon
    r_adjusted = r * np.sqrt(1 - beta ** t) / (1 - alpha ** t) if t > 0 else r
    x_new = x - r_adjusted * v_new / h_sqrt
    x_final = (1 - norm_coefficient_post) * x_new
    return _split(x_final, xs) + _split(v_new, xs) + _split(h_new, xs)


def ref_adagrad(r, t, xs, gs, hs, decay_factor=0.0, epsilon=1e-6, norm_coefficient=0.0):
    x, g, h = (_flat(a) for a in (xs, gs, hs))
    rate = r / (1 + t * decay_factor)
    g_regularized = norm_coefficient * x + g
    h_new = h + g_regularized * g_regularized
    h_adaptive = np.sqrt(h_new) + epsilon
    x_new = x - rate * g_regularized / h_adaptive
    return _split(x_new, xs) + _split(h_new, xs)


def ref_momentum(r, t, xs, gs, vs, alpha, beta, norm_coefficient, mode):
    x, g, v = (_flat(a) for a in (xs, gs, vs))
    g_regularized = norm_coefficient * x + g
    beta_adjusted = beta if t > 0 else 1
    v_new = alpha * v + beta_adjusted * g_regularized
    if mode == "standard":
        x_new = x - r * v_new
    else:
        x_new = x - r * (g_regularized + alpha * v_new)
    return _split(x_new, xs) + _split(v_new, xs)


REFERENCES = {"Adam": ref_adam, "Adagrad": ref_adagrad, "Momentum": ref_momentum}


# --------------------------------------------------------------------------- the pseudo code
SHAPES = [[(3,)], [(2, 3), (4,), ()], [(1, 5, 2)]]
ATTRS = {
    "Adam": [{}, dict(alpha=0.8, beta=0.95, epsilon=1e-3, norm_coefficient=0.01,
                      norm_coefficient_post=0.02)],
    "Adagrad": [{}, dict(decay_factor=0.1, epsilon=1e-4, norm_coefficient=0.05)],
    "Momentum": [dict(alpha=0.9, beta=0.5, norm_coefficient=0.0, mode="standard"),
                 dict(alpha=0.7, beta=0.3, norm_coefficient=0.01, mode="nesterov")],
}
CASES = [(op_type, k) for op_type in PARTS for k in range(2)]


def _as_stored(attrs):
    """The attribute values as the model holds them: float attributes are float32."""
    return {k: float(np.float32(v)) if isinstance(v, float) else v for k, v in attrs.items()}


def _inputs(op_type, shapes, dtype, r_dtype, t):
    tensors = []
    for part in range(PARTS[op_type]):
        for shape in shapes:
            value = RNG.standard_normal(shape)
            if part == PARTS[op_type] - 1 and op_type != "Momentum":
                value = np.abs(value)  # the squared-gradient average (H) is >= 0
            tensors.append(value.astype(dtype))
    return [np.array(0.05, r_dtype), np.array(t, np.int64)] + tensors


@pytest.mark.parametrize("op_type, which", CASES, ids=[f"{o}-{k}" for o, k in CASES])
@pytest.mark.parametrize("shapes", SHAPES, ids=["one", "three", "rank3"])
@pytest.mark.parametrize("dtype, r_dtype", [(np.float32, np.float32), (np.float64, np.float64),
                                            (np.float32, np.float64)])
@pytest.mark.parametrize("t", [0, 1, 7])
def test_update_matches_the_pseudo_code(op_type, which, shapes, dtype, r_dtype, t):
    attrs = ATTRS[op_type][which]
    inputs = _inputs(op_type, shapes, dtype, r_dtype, t)
    got = _run(op_type, inputs, attrs)
    n = len(shapes)
    groups = [inputs[2 + p * n:2 + (p + 1) * n] for p in range(PARTS[op_type])]
    want = REFERENCES[op_type](float(inputs[0]), t, *groups, **_as_stored(attrs))
    assert len(got) == len(want)
    for g, w, x in zip(got, want, groups[0] * (PARTS[op_type] - 1)):
        assert g.shape == x.shape and g.dtype == dtype
        # float64 arithmetic rounded once to the tensor's type
        np.testing.assert_allclose(g, w, rtol=1e-6 if dtype == np.float32 else 1e-13,
                                   atol=1e-7 if dtype == np.float32 else 1e-15)


def test_states_broadcast_to_the_tensor():
    """G and the state broadcast against X (the pseudo code's numpy broadcasting); the
    results take X's shape."""
    x = RNG.standard_normal((2, 3)).astype(np.float32)
    g = RNG.standard_normal((3,)).astype(np.float32)
    v = np.zeros((1, 1), np.float32)
    inputs = [np.array(0.1, np.float32), np.array(2, np.int64), x, g, v]
    attrs = dict(alpha=0.9, beta=0.5, norm_coefficient=0.0, mode="standard")
    x_new, v_new = _run("Momentum", inputs, attrs)
    want = ref_momentum(0.1, 2, [x], [np.broadcast_to(g, x.shape)], [np.broadcast_to(v, x.shape)],
                        **_as_stored(attrs))
    assert x_new.shape == v_new.shape == (2, 3)
    np.testing.assert_allclose(x_new, want[0], rtol=1e-6)
    np.testing.assert_allclose(v_new, want[1], rtol=1e-6)


# --------------------------------------------------------------------------- against torch
def _problem():
    a = RNG.standard_normal((8, 3))
    b = RNG.standard_normal(8)
    w0, c0 = RNG.standard_normal(3), RNG.standard_normal(())

    def grads(w, c):  # of 0.5 * ||a w + c - b||^2
        residual = a @ w + c - b
        return a.T @ residual, residual.sum()
    return w0, c0, grads


# (the optimizer gets the attribute values as the model holds them: float32)
TORCH_CASES = [
    ("Adam", dict(alpha=0.9, beta=0.99, epsilon=0.0, norm_coefficient=0.01),
     lambda p, torch, a: torch.optim.Adam(p, lr=0.05, betas=(a["alpha"], a["beta"]), eps=0.0,
                                          weight_decay=a["norm_coefficient"]), 1),
    ("Adagrad", dict(decay_factor=0.2, epsilon=1e-8, norm_coefficient=0.03),
     lambda p, torch, a: torch.optim.Adagrad(p, lr=0.05, lr_decay=a["decay_factor"],
                                             eps=a["epsilon"],
                                             weight_decay=a["norm_coefficient"]), 0),
    ("Momentum", dict(alpha=0.9, beta=0.6, norm_coefficient=0.02, mode="standard"),
     lambda p, torch, a: torch.optim.SGD(p, lr=0.05, momentum=a["alpha"],
                                         dampening=1 - a["beta"],
                                         weight_decay=a["norm_coefficient"]), 0),
    ("Momentum", dict(alpha=0.8, beta=1.0, norm_coefficient=0.0, mode="nesterov"),
     lambda p, torch, a: torch.optim.SGD(p, lr=0.05, momentum=a["alpha"], nesterov=True), 0),
]


@pytest.mark.parametrize("op_type, attrs, make_optimizer, first_t", TORCH_CASES,
                         ids=[f"{c[0]}-{c[1].get('mode', '')}" for c in TORCH_CASES])
def test_steps_match_torch_optim(op_type, attrs, make_optimizer, first_t):
    """Ten steps on a least-squares problem, two tensors updated by one node, each step's
    outputs fed back; T counts from 1 (Adam: torch's bias correction) or from 0
    (Adagrad's lr decay and Momentum's first step: torch's step - 1)."""
    torch = pytest.importorskip("torch", reason="torch (a test extra) is a reference")
    w0, c0, grads = _problem()
    params = [torch.tensor(w0, dtype=torch.float64, requires_grad=True),
              torch.tensor(c0, dtype=torch.float64, requires_grad=True)]
    optimizer = make_optimizer(params, torch, _as_stored(attrs))
    like = [np.zeros(()), np.zeros((), np.int64)] + [w0, c0] * PARTS[op_type]  # (the types)
    sess = InferenceSession(_model(op_type, like, attrs, 2 * (PARTS[op_type] - 1)))
    xs, states = [w0, c0], [np.zeros(3), np.zeros(())] * (PARTS[op_type] - 2)
    for step in range(10):
        gs = list(grads(*xs))
        feeds = [np.array(0.05), np.array(step + first_t, np.int64)] + xs + gs + states
        outs = sess.run(None, {f"i{k}": v for k, v in enumerate(feeds)})
        xs, states = outs[:2], outs[2:]
        optimizer.zero_grad()
        for p, g in zip(params, grads(*(p.detach().numpy() for p in params))):
            p.grad = torch.tensor(g, dtype=torch.float64)
        optimizer.step()
        for mine, theirs in zip(xs, params):
            np.testing.assert_allclose(mine, theirs.detach().numpy(), rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- errors
def _adam_inputs(**change):
    inputs = {"R": np.array(0.1, np.float32), "T": np.array(1, np.int64),
              "X": np.ones(3, np.float32), "G": np.ones(3, np.float32),
              "V": np.zeros(3, np.float32), "H": np.zeros(3, np.float32)}
    inputs.update(change)
    return list(inputs.values())


ERRORS = [
    ("Adam", _adam_inputs(T=np.array(1, np.int32)), {}, "T must be one int64 value"),
    ("Adam", _adam_inputs(R=np.ones(2, np.float32)), {}, "R must be one float or double"),
    ("Adam", _adam_inputs(R=np.array(1, np.int64)), {}, "R must be one float or double"),
    ("Adam", _adam_inputs()[:5], {}, "4 groups of n >= 1 tensors"),
    ("Adam", _adam_inputs(G=np.ones(3, np.float64)), {}, "all be float or all double"),
    ("Adam", _adam_inputs(X=np.ones(3, np.int32)), {}, "all be float or all double"),
    ("Adam", _adam_inputs(V=np.zeros(4, np.float32)), {}, "does not broadcast to its shape"),
    ("Adagrad", _adam_inputs()[:2], {}, "3 groups of n >= 1 tensors"),
    ("Momentum", _adam_inputs()[:5], dict(alpha=0.9, beta=0.1, norm_coefficient=0.0),
     "mode attribute is required"),
    ("Momentum", _adam_inputs()[:5], dict(beta=0.1, norm_coefficient=0.0, mode="standard"),
     "alpha attribute is required"),
    ("Momentum", _adam_inputs()[:5], dict(alpha=0.9, beta=0.1, norm_coefficient=0.0,
                                          mode="heavy_ball"), "'standard' or 'nesterov'"),
]


@pytest.mark.parametrize("op_type, inputs, attrs, message", ERRORS,
                         ids=[f"{e[0]}-{i}" for i, e in enumerate(ERRORS)])
def test_errors_name_the_node(op_type, inputs, attrs, message):
    with pytest.raises(ValueError, match=f"{op_type} node 'the_node': .*{message}"):
        _run(op_type, inputs, attrs, outputs=1)


def test_undefined_domain_version_is_refused():
    data = _model("Adagrad", _adam_inputs()[:5], {}, 2, training_opset=2)
    sess = InferenceSession(data)
    with pytest.raises(ValueError, match="Adagrad node 'the_node': .*opset 2 is not defined"):
        sess.run(None, {f"i{k}": v for k, v in enumerate(_adam_inputs()[:5])})
