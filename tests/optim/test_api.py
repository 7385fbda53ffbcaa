"""Optimizer API: hyperparameter validation, groups, zero_grad, lr changes,
closures, state_dict structure, non-finite gradients."""

from __future__ import annotations

import numpy as np
import pytest

import pyvision_engine as pve
from pyvision_engine import optim

import runner


def _params(n=2):
    return [pve.nn.Parameter(np.arange(5, dtype=np.float32) + i) for i in range(n)]


@pytest.mark.parametrize("make,match", [
    (lambda p: optim.SGD(p, lr=-0.1), "Invalid learning rate"),
    (lambda p: optim.SGD(p, lr=0.1, momentum=-1), "Invalid momentum value"),
    (lambda p: optim.SGD(p, lr=0.1, weight_decay=-1), "Invalid weight_decay value"),
    (lambda p: optim.SGD(p, lr=0.1, nesterov=True), "Nesterov momentum requires"),
    (lambda p: optim.SGD(p, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), "Nesterov"),
    (lambda p: optim.Adam(p, lr=-1e-3), "Invalid learning rate"),
    (lambda p: optim.Adam(p, eps=-1e-8), "Invalid epsilon value"),
    (lambda p: optim.Adam(p, betas=(1.0, 0.999)), "Invalid beta parameter at index 0"),
    (lambda p: optim.Adam(p, betas=(0.9, -0.1)), "Invalid beta parameter at index 1"),
    (lambda p: optim.AdamW(p, betas=(0.9, 1.0)), "Invalid beta parameter at index 1"),
    (lambda p: optim.AdamW(p, weight_decay=-0.1), "Invalid weight_decay value"),
    (lambda p: optim.Adamax(p, eps=-1.0), "Invalid epsilon value"),
    (lambda p: optim.NAdam(p, momentum_decay=-1.0), "Invalid momentum_decay value"),
    (lambda p: optim.RAdam(p, betas=(-0.1, 0.9)), "Invalid beta parameter at index 0"),
    (lambda p: optim.RMSprop(p, alpha=-0.5), "Invalid alpha value"),
    (lambda p: optim.RMSprop(p, momentum=-0.5), "Invalid momentum value"),
    (lambda p: optim.Adagrad(p, lr_decay=-1), "Invalid lr_decay value"),
    (lambda p: optim.Adagrad(p, initial_accumulator_value=-1), "Invalid initial_accumulator_value"),
    (lambda p: optim.Adadelta(p, rho=1.5), "Invalid rho value"),
    (lambda p: optim.Adadelta(p, eps=-1), "Invalid epsilon value"),
    (lambda p: optim.Rprop(p, lr=-1), "Invalid learning rate"),
    (lambda p: optim.Rprop(p, etas=(1.0, 1.2)), "Invalid eta values: 1.0, 1.2"),
    (lambda p: optim.Rprop(p, etas=(0.5, 1.0)), "Invalid eta values"),
    (lambda p: optim.Rprop(p, etas=(0.0, 1.2)), "Invalid eta values"),
    (lambda p: optim.ASGD(p, lr=-1), "Invalid learning rate"),
    (lambda p: optim.ASGD(p, weight_decay=-1), "Invalid weight_decay value"),
    (lambda p: optim.Adafactor(p, lr=-1), "Learning rate should be >= 0 but is: -1"),
    (lambda p: optim.Adafactor(p, beta2_decay=0.5), "beta2_decay should be <= 0"),
    (lambda p: optim.Adafactor(p, eps=(-1, 1e-3)), "epsilon1 should be >= 0"),
    (lambda p: optim.Adafactor(p, eps=(None, -1)), "epsilon2 should be >= 0"),
    (lambda p: optim.Adafactor(p, d=0.9), "Clipping threshold d should be >= 1"),
    (lambda p: optim.Adafactor(p, weight_decay=-1), "weight_decay should be >= 0"),
    (lambda p: optim.Lookahead(optim.SGD(p, lr=0.1), k=0), "Invalid lookahead steps"),
    (lambda p: optim.Lookahead(optim.SGD(p, lr=0.1), alpha=1.5), "Invalid slow update rate"),
])
def test_invalid_hyperparameters_raise_value_error(make, match):
    with pytest.raises(ValueError, match=match):
        make(_params())


def test_empty_parameter_list_and_duplicate_groups():
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.Adam([])
    a, b = _params()
    with pytest.raises(ValueError, match="more than one parameter group"):
        optim.SGD([{"params": [a]}, {"params": [a, b]}], lr=0.1)
    opt = optim.SGD([a], lr=0.1)
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [a]})
    with pytest.raises(TypeError):
        optim.SGD(a, lr=0.1)  # a Tensor, not an iterable of Tensors
    with pytest.raises(TypeError, match="ordered collections"):
        optim.SGD([{"params": {a, b}}], lr=0.1)


def test_defaults_equal_torch():
    p = _params(1)
    assert optim.SGD(p).defaults["lr"] == 1e-3
    assert optim.Adam(_params(1)).defaults == dict(
        lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, maximize=False,
        foreach=None, capturable=False, differentiable=False, fused=None,
        decoupled_weight_decay=False)
    assert optim.AdamW(_params(1)).defaults["weight_decay"] == 1e-2
    assert optim.AdamW(_params(1)).defaults["decoupled_weight_decay"] is True
    assert optim.Adamax(_params(1)).defaults["lr"] == 2e-3
    assert optim.NAdam(_params(1)).defaults["momentum_decay"] == 4e-3
    assert optim.RMSprop(_params(1)).defaults["alpha"] == 0.99
    assert optim.Adagrad(_params(1)).defaults["eps"] == 1e-10
    assert optim.Adadelta(_params(1)).defaults["lr"] == 1.0
    assert optim.Rprop(_params(1)).defaults == dict(
        lr=1e-2, etas=(0.5, 1.2), step_sizes=(1e-6, 50), foreach=None, maximize=False,
        differentiable=False, capturable=False)
    assert optim.Adafactor(_params(1)).defaults == dict(
        lr=1e-2, beta2_decay=-0.8, eps=(None, 1e-3), d=1.0, weight_decay=0.0, foreach=None,
        maximize=False)
    assert optim.ASGD(_params(1)).defaults == dict(
        lr=1e-2, lambd=1e-4, alpha=0.75, t0=1e6, weight_decay=0, foreach=None, maximize=False,
        differentiable=False, capturable=False)


def test_param_groups_override_defaults_and_lr_change_takes_effect():
    a, b = _params()
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1)
    assert opt.param_groups[0]["lr"] == 0.1 and opt.param_groups[1]["lr"] == 0.5
    a0, b0 = a.detach().numpy().copy(), b.detach().numpy().copy()
    g = np.ones(5, np.float32)
    runner.feed_grads([a, b], [g, g], True)
    opt.step()
    np.testing.assert_allclose(a.detach().numpy(), a0 - 0.1 * g, rtol=1e-6)
    np.testing.assert_allclose(b.detach().numpy(), b0 - 0.5 * g, rtol=1e-6)
    opt.param_groups[0]["lr"] = 0.0  # freeze group 0 from now on
    a1, b1 = a.detach().numpy().copy(), b.detach().numpy().copy()
    opt.step()
    np.testing.assert_array_equal(a.detach().numpy(), a1)
    np.testing.assert_allclose(b.detach().numpy(), b1 - 0.5 * g, rtol=1e-6)


def test_parameters_become_arena_views_and_zero_grad_is_one_memset():
    model = pve.nn.Sequential(pve.nn.Linear(4, 8), pve.nn.Linear(8, 3))
    opt = optim.Adam(model.parameters(), lr=1e-2)
    lay = opt._layouts[0]
    for p in model.parameters():
        assert np.shares_memory(p.detach().numpy(), lay.arena.data)
    x = pve.tensor(np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32))
    (model(x) * model(x)).sum().backward()
    assert lay.owns_all()  # autograd wrote straight into the gradient arena
    assert np.any(lay.arena.grad != 0)
    opt.zero_grad(set_to_none=False)
    assert not np.any(lay.arena.grad)
    assert all(p.grad is not None and p.grad._data is s for p, s in zip(lay.params, lay.grad_views))
    opt.zero_grad()  # set_to_none=True: torch's default
    assert all(p.grad is None for p in model.parameters())


def test_step_with_closure_runs_under_enable_grad():
    p = pve.nn.Parameter(np.array([3.0, -2.0], np.float32))
    opt = optim.SGD([p], lr=0.25)

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    with pve.no_grad():
        loss = opt.step(closure)
    assert float(loss.item()) == 13.0
    np.testing.assert_allclose(p.detach().numpy(), [1.5, -1.0])


def test_state_dict_structure_matches_torch():
    a, b, c = _params(3)
    opt = optim.Adam([{"params": [a, b]}, {"params": [c], "lr": 0.1}], amsgrad=True)
    runner.feed_grads([a, b, c], [np.ones(5, np.float32)] * 3, True)
    opt.step()
    sd = opt.state_dict()
    assert list(sd) == ["state", "param_groups"]
    assert sorted(sd["state"]) == [0, 1, 2]
    assert set(sd["state"][0]) == {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"}
    assert sd["state"][2]["step"].shape == () and float(sd["state"][2]["step"]) == 1.0
    assert sd["state"][2]["step"].dtype == np.float32
    assert sd["param_groups"][0]["params"] == [0, 1]
    assert sd["param_groups"][1]["params"] == [2] and sd["param_groups"][1]["lr"] == 0.1
    # Copies: stepping again does not change a saved state dict.
    saved = sd["state"][0]["exp_avg"].numpy().copy()
    opt.step()
    np.testing.assert_array_equal(sd["state"][0]["exp_avg"].numpy(), saved)
    # SGD: no state without momentum; momentum_buffer after the first step.
    s = optim.SGD(_params(1), lr=0.1)
    assert s.state_dict()["state"] == {}
    p = _params(1)
    m = optim.SGD(p, lr=0.1, momentum=0.9)
    assert m.state_dict()["state"] == {}
    runner.feed_grads(p, [np.ones(5, np.float32)], True)
    m.step()
    assert set(m.state_dict()["state"][0]) == {"momentum_buffer"}
    # Adagrad's state exists from construction, as in torch.
    assert set(optim.Adagrad(_params(1), initial_accumulator_value=0.5).state_dict()["state"][0]) \
        == {"step", "sum"}


def test_load_state_dict_rejects_mismatched_groups():
    opt = optim.SGD(_params(2), lr=0.1)
    other = optim.SGD(_params(3), lr=0.1)
    with pytest.raises(ValueError, match="doesn't match the size"):
        opt.load_state_dict(other.state_dict())
    two = optim.SGD([{"params": _params(1)}, {"params": _params(1)}], lr=0.1)
    with pytest.raises(ValueError, match="different number of parameter groups"):
        opt.load_state_dict(two.state_dict())


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "Adamax", "NAdam", "RAdam", "RMSprop",
                                  "Adagrad", "Adadelta", "ASGD"])
def test_nonfinite_gradients_propagate_without_crash(name, isa):
    p = pve.nn.Parameter(np.linspace(-1, 1, 37).astype(np.float32))
    kwargs = {"lr": 0.1, "momentum": 0.9} if name == "SGD" else {}
    opt = getattr(optim, name)([p], **kwargs)
    g = np.ones(37, np.float32)
    g[3], g[20] = np.nan, np.inf
    runner.feed_grads([p], [g], True)
    opt.step()
    out = p.detach().numpy()
    assert np.isnan(out[3])  # NaN propagates into the parameter (as torch)
    assert np.all(np.isfinite(out[[0, 1, 2, 10, 30, 36]]))
    opt.zero_grad()
    runner.feed_grads([p], [np.ones(37, np.float32)], True)
    opt.step()  # and further steps do not crash
    assert np.isnan(p.detach().numpy()[3])


def test_capturable_and_differentiable_are_refused():
    # torch accepts both at construction and fails at the step on CPU leaf
    # parameters (capturable: AssertionError; differentiable: RuntimeError).
    for make in (lambda p: optim.Adam(p, differentiable=True),
                 lambda p: optim.RMSprop(p, capturable=True)):
        params = _params(1)
        opt = make(params)
        runner.feed_grads(params, [np.ones(5, np.float32)], True)
        with pytest.raises(NotImplementedError):
            opt.step()
        np.testing.assert_array_equal(params[0].detach().numpy(), np.arange(5, dtype=np.float32))
    params = _params(1)
    opt = optim.NAdam(params, capturable=True)
    runner.feed_grads(params, [np.ones(5, np.float32)], True)
    with pytest.raises(AssertionError, match="capturable"):
        opt.step()
    with pytest.raises(RuntimeError):
        opt = optim.SGD(_params(1), lr=0.1, differentiable=True)
        runner.feed_grads(opt.param_groups[0]["params"], [np.ones(5, np.float32)], True)
        opt.step()


@pytest.mark.parametrize("make,exc,match", [
    (lambda p: optim.SGD(p, lr=0.1, fused=True, foreach=True), RuntimeError, "cannot be `True`"),
    (lambda p: optim.Adam(p, fused=True, foreach=True), RuntimeError, "cannot be `True`"),
    (lambda p: optim.AdamW(p, fused=True, differentiable=True), RuntimeError,
     "does not support `differentiable`"),
    (lambda p: optim.Adagrad(p, fused=True, foreach=True), RuntimeError, "cannot be `True`"),
    (lambda p: optim.Adam(p, betas=(0, 0.999)), ValueError, "both floats or both Tensors"),
    (lambda p: optim.Adam(p, lr=pve.tensor(np.array([0.1, 0.2], np.float32))), ValueError,
     "Tensor lr must be 1-element"),
    (lambda p: optim.RMSprop(p, lr=pve.tensor(np.array([0.1, 0.2], np.float32))), ValueError,
     "Tensor lr must be 1-element"),
    (lambda p: optim.Adam(p, lr=pve.tensor(np.float32(0.1)), foreach=True), ValueError,
     "lr as a Tensor is not supported"),
    (lambda p: optim.SGD([{"params": [("a", p[0])]}, {"params": [p[1]]}], lr=0.1), ValueError,
     "with/without names"),
])
def test_constructor_errors_as_torch(make, exc, match):
    with pytest.raises(exc, match=match):
        make(_params(2))


def test_constructor_accepts_what_torch_accepts():
    # SGD's checks are `lr < 0` (a NaN lr passes), fused alone is fine, and
    # Adamax/NAdam/RAdam keep betas as given (a list stays a list).
    optim.SGD(_params(1), lr=float("nan"))
    optim.SGD(_params(1), lr=0.1, fused=True)
    optim.Adam(_params(1), foreach=True)
    for cls in (optim.Adamax, optim.NAdam, optim.RAdam):
        assert cls(_params(1), betas=[0.5, 0.9]).param_groups[0]["betas"] == [0.5, 0.9]
    assert optim.Adam(_params(1), betas=[0.5, 0.9]).param_groups[0]["betas"] == (0.5, 0.9)


def test_duplicate_parameter_in_a_group_warns():
    params = _params(1)
    with pytest.warns(UserWarning, match="duplicate parameters"):
        optim.SGD(params + params, lr=0.1)


def test_state_is_a_defaultdict_and_stateless_params_have_no_entry():
    params = _params(2)
    opt = optim.SGD(params, lr=0.1)
    assert opt.state[params[0]] == {}  # no KeyError, as torch's defaultdict(dict)
    opt = optim.SGD(params, lr=0.1)
    runner.feed_grads(params, [np.ones(5, np.float32)] * 2, True)
    opt.step()
    assert opt.state_dict()["state"] == {}  # torch: no entry without momentum
    opt = optim.SGD(params, lr=0.1, momentum=0.9)
    assert opt.state_dict()["state"] == {}
    opt.step()
    assert sorted(opt.state_dict()["state"]) == [0, 1]


def test_zero_grad_keeps_none_grads_none():
    params = _params(2)
    opt = optim.Adam(params)
    runner.feed_grads(params[:1], [np.ones(5, np.float32)], True)
    own = pve.tensor(np.ones(5, np.float32))
    opt.zero_grad(set_to_none=False)
    assert params[1].grad is None  # torch leaves a missing grad missing
    np.testing.assert_array_equal(params[0].grad.numpy(), np.zeros(5, np.float32))
    params[1].grad = own
    opt.zero_grad(set_to_none=False)
    assert params[1].grad is own  # zeroed in place, identity kept
    np.testing.assert_array_equal(own.numpy(), np.zeros(5, np.float32))


def test_repr_lists_groups():
    text = repr(optim.SGD(_params(1), lr=0.1))
    assert "SGD (" in text and "lr: 0.1" in text


def test_repr_is_torchs_text():
    # torch opens each group with a newline, leaving a blank line between groups.
    a, b = _params(2)
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1)
    keys = ["dampening", "differentiable", "foreach", "fused", "lr", "maximize", "momentum",
            "nesterov", "weight_decay"]
    groups = [dict(opt.defaults, lr=0.1), dict(opt.defaults, lr=0.5)]
    expected = "SGD ("
    for i, group in enumerate(groups):
        expected += f"\nParameter Group {i}\n"
        expected += "".join(f"    {k}: {group[k]}\n" for k in sorted(keys))
    assert repr(opt) == expected + ")"
    assert "weight_decay: 0\n\nParameter Group 1\n    dampening: 0\n" in repr(opt)


def test_adagrad_state_as_torch():
    # torch fills ``sum`` with the constructor's initial_accumulator_value, also for a
    # group that sets its own; groups given to the constructor have state at once,
    # a group added later only from its first step.
    a, b, c = _params(3)
    opt = optim.Adagrad([{"params": [a]}, {"params": [b], "initial_accumulator_value": 0.1}],
                        lr=0.1, initial_accumulator_value=0.5)
    assert sorted(opt.state_dict()["state"]) == [0, 1]
    np.testing.assert_array_equal(opt.state[b]["sum"].numpy(), np.full(5, 0.5, np.float32))
    opt.add_param_group({"params": [c], "initial_accumulator_value": 2.0})
    assert sorted(opt.state_dict()["state"]) == [0, 1]
    runner.feed_grads([b, c], [np.ones(5, np.float32)] * 2, False)
    opt.step()
    np.testing.assert_allclose(opt.state[c]["sum"].numpy(), np.full(5, 1.5, np.float32))
    np.testing.assert_allclose(c.detach().numpy(),
                               np.arange(5, dtype=np.float32) + 2 - 0.1 / (np.sqrt(1.5) + 1e-10),
                               rtol=1e-6)


def test_state_dict_lists_state_in_creation_order():
    # torch's state dict keeps its state in the order parameters first got a
    # gradient (a dict, not sorted): parameter 3 steps only from the second step on
    params = [pve.nn.Parameter(np.ones(3, np.float32)) for _ in range(5)]
    opt = pve.optim.Adam(params)
    for i in (0, 1, 2, 4):
        params[i].grad = pve.tensor(np.ones(3, np.float32))
    opt.step()
    params[3].grad = pve.tensor(np.ones(3, np.float32))
    opt.step()
    assert list(opt.state_dict()["state"]) == [0, 1, 2, 4, 3]


def test_adafactor_state_shapes_factored_for_2d_and_up():
    shapes = [(4, 6), (2, 3, 5), (7,), (1,)]
    params = [pve.nn.Parameter(np.ones(s, np.float32)) for s in shapes]
    opt = optim.Adafactor(params)
    for p in params:
        p.grad = pve.tensor(np.full(p.shape, 0.5, np.float32))
    opt.step()
    assert {k: tuple(v.shape) for k, v in opt.state[params[0]].items()} == \
        {"step": (), "row_var": (4, 1), "col_var": (1, 6)}
    assert {k: tuple(v.shape) for k, v in opt.state[params[1]].items()} == \
        {"step": (), "row_var": (2, 3, 1), "col_var": (2, 1, 5)}
    assert {k: tuple(v.shape) for k, v in opt.state[params[2]].items()} == \
        {"step": (), "variance": (7,)}
    other = optim.Adafactor([pve.nn.Parameter(np.ones(s, np.float32)) for s in shapes])
    bad = opt.state_dict()
    bad["state"][0]["row_var"] = np.zeros((4, 6), np.float32)
    with pytest.raises(ValueError, match="row_var"):
        other.load_state_dict(bad)
