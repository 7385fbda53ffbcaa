"""Live torch parity (skipped without torch): torch's fused CPU kernels where
they exist, the default path elsewhere; and a torch state_dict loaded into pve
continues torch's trajectory."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from pyvision_engine import optim  # noqa: E402

import configs  # noqa: E402
import problem  # noqa: E402
import runner  # noqa: E402

FUSED = {"SGD", "Adam", "AdamW", "Adagrad"}


def torch_run(name, hp, steps, params=None, opt=None, **extra):
    params = params or [torch.nn.Parameter(torch.from_numpy(p.copy()))
                        for p in problem.initial_params()]
    opt = opt or getattr(torch.optim, name)(params, **hp, **extra)
    for _ in range(steps):
        opt.zero_grad()
        for p, g in zip(params, problem.grads([p.detach().numpy() for p in params])):
            p.grad = torch.from_numpy(g)
        opt.step()
    return params, opt


@pytest.mark.parametrize("index", range(len(configs.CONFIGS)),
                         ids=[configs.config_id(i) for i in range(len(configs.CONFIGS))])
def test_matches_torch_fastest_path(index):
    name, hp = configs.CONFIGS[index]
    extra = {"fused": True} if name in FUSED else {}
    theirs, _ = torch_run(name, hp, configs.STEPS, **extra)
    ours, _, _ = runner.run_pve(name, hp, configs.STEPS, True, snapshots={configs.STEPS})
    expected = np.concatenate([p.detach().numpy().reshape(-1) for p in theirs])
    np.testing.assert_allclose(ours[-1], expected, rtol=3e-4, atol=1e-6)


@pytest.mark.parametrize("name,hp", [("Adam", dict(lr=0.01, amsgrad=True)),
                                     ("SGD", dict(lr=0.05, momentum=0.9)),
                                     ("NAdam", dict(lr=0.01)),
                                     ("RMSprop", dict(lr=0.001, centered=True, momentum=0.5)),
                                     ("Rprop", dict(lr=0.05)),
                                     ("ASGD", dict(lr=0.05, t0=10, lambd=1e-3)),
                                     ("Adafactor", dict(lr=0.005))])
def test_torch_state_dict_loads_into_pve(name, hp):
    import pyvision_engine as pve

    tparams, topt = torch_run(name, hp, 20)
    sd = topt.state_dict()
    params = [pve.nn.Parameter(p.detach().numpy().copy()) for p in tparams]
    opt = getattr(optim, name)(params, **hp)
    opt.load_state_dict(sd)
    torch_run(name, hp, 20, params=tparams, opt=topt)
    for _ in range(20):
        opt.zero_grad()
        runner.feed_grads(params, problem.grads([p.detach().numpy() for p in params]), True)
        opt.step()
    for p, t in zip(params, tparams):
        np.testing.assert_allclose(p.detach().numpy(), t.detach().numpy(), rtol=3e-4, atol=1e-6)


_NAMES = ["SGD", "Adam", "AdamW", "Adamax", "NAdam", "RAdam", "RMSprop", "Adagrad", "Adadelta",
          "Rprop", "ASGD", "Adafactor"]
_BAD = [dict(lr=-1.0), dict(eps=-1.0), dict(betas=(1.0, 0.9)), dict(betas=(0, 0.9)),
        dict(weight_decay=-1.0), dict(momentum=-0.1), dict(nesterov=True), dict(rho=1.5),
        dict(fused=True, foreach=True), dict(fused=True, differentiable=True),
        dict(capturable=True), dict(differentiable=True), dict(lr=float("nan")),
        dict(etas=(1.0, 1.2)), dict(etas=(0.5, 1.0)), dict(etas=(0.0, 2.0)),
        dict(etas=(float("nan"), 1.2)), dict(step_sizes=(1e-3, 1.0)), dict(lambd=0.1),
        dict(t0=5, alpha=0.5), dict(foreach=True), dict(beta2_decay=0.1), dict(d=0.5),
        dict(eps=(-1.0, 1e-3)), dict(eps=(None, -1.0)), dict(eps=(1e-30, 1e-3), d=1.0)]


@pytest.mark.parametrize("name", _NAMES)
def test_constructor_accepts_and_refuses_as_torch(name):
    import pyvision_engine as pve

    for bad in _BAD:
        outcome = []
        for make in (lambda: getattr(torch.optim, name)([torch.nn.Parameter(torch.zeros(3))], **bad),
                     lambda: getattr(optim, name)([pve.nn.Parameter(np.zeros(3, np.float32))],
                                                  **bad)):
            try:
                make()
                outcome.append(None)
            except Exception as exc:  # noqa: BLE001 - the type is what is compared
                outcome.append(type(exc))
        assert outcome[0] == outcome[1], (name, bad, outcome)


@pytest.mark.parametrize("name", _NAMES)
def test_state_dict_structure_as_torch_with_a_late_gradient(name):
    import pyvision_engine as pve

    init = [np.linspace(-1, 1, 4, dtype=np.float32), np.linspace(0, 2, 6, dtype=np.float32)]
    tparams = [torch.nn.Parameter(torch.from_numpy(x.copy())) for x in init]
    pparams = [pve.nn.Parameter(x.copy()) for x in init]
    topt = getattr(torch.optim, name)(tparams)
    popt = getattr(optim, name)(pparams)
    for step in range(4):
        for tp, pp in zip(tparams[:1 + (step >= 2)], pparams[:1 + (step >= 2)]):
            g = np.cos(tp.detach().numpy() + step).astype(np.float32)
            tp.grad = torch.from_numpy(g.copy())
            pp.grad = pve.tensor(g)
        topt.step()
        popt.step()
        tsd, psd = topt.state_dict(), popt.state_dict()
        assert psd["param_groups"] == tsd["param_groups"]
        assert list(psd["state"]) == list(tsd["state"])
        for index, entry in tsd["state"].items():
            assert list(psd["state"][index]) == list(entry)
            for key, value in entry.items():
                ours = np.asarray(psd["state"][index][key])
                assert ours.shape == tuple(value.shape) and ours.dtype == value.numpy().dtype
                np.testing.assert_allclose(ours, value.numpy(), rtol=1e-5, atol=1e-7)
    for tp, pp in zip(tparams, pparams):
        np.testing.assert_allclose(pp.detach().numpy(), tp.detach().numpy(), rtol=1e-5, atol=1e-7)
