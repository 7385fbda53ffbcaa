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
                                     ("RMSprop", dict(lr=0.001, centered=True, momentum=0.5))])
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
