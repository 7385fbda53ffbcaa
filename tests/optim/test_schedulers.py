"""lr schedulers: the same lr sequences as torch (golden lists made by torch,
and live torch when installed), state_dict round trips, last_epoch semantics."""

from __future__ import annotations

import os

import numpy as np
import pytest

import pyvision_engine as pve
from pyvision_engine import optim
from pyvision_engine.optim import lr_scheduler as S

import schedules

GOLDEN = os.path.join(os.path.dirname(__file__), "..", "golden", "lr_schedules.npz")
IDS = [f"{i:02d}-{name}" for i, (name, _) in enumerate(schedules.SCHEDULES)]


@pytest.mark.parametrize("index", range(len(schedules.SCHEDULES)), ids=IDS)
def test_lr_sequence_matches_torch_golden(index):
    name, kwargs = schedules.SCHEDULES[index]
    ours = np.array(schedules.run_lrs("pve", name, kwargs))
    golden = np.load(GOLDEN)[f"lr_{index:02d}"]
    # Same Python double arithmetic as torch: equal up to the last bit or two.
    np.testing.assert_allclose(ours, golden, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("index", range(len(schedules.SCHEDULES)), ids=IDS)
def test_lr_sequence_matches_live_torch(index):
    pytest.importorskip("torch")
    name, kwargs = schedules.SCHEDULES[index]
    ours = np.array(schedules.run_lrs("pve", name, kwargs))
    theirs = np.array(schedules.run_lrs("torch", name, kwargs))
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("index", range(len(schedules.SCHEDULES)), ids=IDS)
def test_tensor_lr_is_filled_in_place(index):
    # torch fills a Tensor group['lr'] in place (fill_), so the user's tensor
    # stays the group's lr and follows the schedule.
    name, kwargs = schedules.SCHEDULES[index]
    held = []
    ours = np.array(schedules.run_lrs("pve", name, kwargs, tensor_lr=True, opt_out=held))
    lr_a, lr_b, opt, sched = held
    assert opt.param_groups[0]["lr"] is lr_a and opt.param_groups[1]["lr"] is lr_b
    assert [float(lr_a), float(lr_b)] == list(ours[-1])
    # What the scheduler keeps (initial_lr, base_lrs, get_last_lr) are copies,
    # never the tensor it fills.
    kept = sched.get_last_lr() + list(getattr(sched, "base_lrs", []))
    kept += [g["initial_lr"] for g in opt.param_groups if "initial_lr" in g]
    assert all(v is not lr_a and v is not lr_b for v in kept)
    # float32 tensor arithmetic: the float-lr sequence up to rounding.
    floats = np.array(schedules.run_lrs("pve", name, kwargs))
    np.testing.assert_allclose(ours, floats, rtol=3e-6, atol=1e-12)


@pytest.mark.parametrize("index", range(len(schedules.SCHEDULES)), ids=IDS)
def test_tensor_lr_matches_live_torch(index):
    pytest.importorskip("torch")
    name, kwargs = schedules.SCHEDULES[index]
    ours, theirs = [], []
    ours_lrs = schedules.run_lrs("pve", name, kwargs, tensor_lr=True, opt_out=ours)
    theirs_lrs = schedules.run_lrs("torch", name, kwargs, tensor_lr=True, opt_out=theirs)
    np.testing.assert_allclose(ours_lrs, theirs_lrs, rtol=1e-6, atol=1e-12)
    for lr_a, lr_b, opt, _ in (ours, theirs):
        assert opt.param_groups[0]["lr"] is lr_a and opt.param_groups[1]["lr"] is lr_b


def _opt(lr=0.1):
    return optim.SGD([pve.nn.Parameter(np.zeros(3, np.float32))], lr=lr, momentum=0.9)


def test_get_last_lr_and_last_epoch():
    opt = _opt()
    sched = S.StepLR(opt, step_size=2, gamma=0.5)
    assert sched.last_epoch == 0 and sched.get_last_lr() == [0.1]
    assert opt.param_groups[0]["initial_lr"] == 0.1
    for _ in range(4):
        opt.step()
        sched.step()
    assert sched.last_epoch == 4 and sched.get_last_lr() == [0.025]
    sched.step(epoch=1)  # closed form
    assert sched.get_last_lr() == [0.1]


def test_resume_with_last_epoch_needs_initial_lr():
    with pytest.raises(KeyError, match="initial_lr"):
        S.ExponentialLR(_opt(), gamma=0.9, last_epoch=3)


@pytest.mark.parametrize("make", [
    lambda o: S.CosineAnnealingLR(o, T_max=10, eta_min=0.01),
    lambda o: S.OneCycleLR(o, max_lr=1.0, total_steps=30),
    lambda o: S.CosineAnnealingWarmRestarts(o, T_0=4, T_mult=2),
    lambda o: S.SequentialLR(o, [S.LinearLR(o, start_factor=0.2, total_iters=4),
                                 S.ExponentialLR(o, gamma=0.8)], milestones=[4]),
    lambda o: S.ReduceLROnPlateau(o, patience=1),
])
def test_state_dict_round_trip_continues_identically(make):
    def advance(sched, opt, start, stop):
        out = []
        for e in range(start, stop):
            opt.step()
            if isinstance(sched, S.ReduceLROnPlateau):
                sched.step(1.0)
            else:
                sched.step()
            out.append(opt.param_groups[0]["lr"])
        return out

    opt_a = _opt()
    sched_a = make(opt_a)
    straight = advance(sched_a, opt_a, 0, 20)

    opt_b = _opt()
    sched_b = make(opt_b)
    first = advance(sched_b, opt_b, 0, 9)
    state, opt_state = sched_b.state_dict(), opt_b.state_dict()
    assert "optimizer" not in state
    opt_c = _opt()
    sched_c = make(opt_c)
    opt_c.load_state_dict(opt_state)
    sched_c.load_state_dict(state)
    rest = advance(sched_c, opt_c, 9, 20)
    assert first + rest == straight


def test_scheduler_argument_errors():
    opt = _opt()
    with pytest.raises(ValueError):
        S.LinearLR(opt, start_factor=0.0)
    with pytest.raises(ValueError):
        S.CosineAnnealingWarmRestarts(opt, T_0=0)
    with pytest.raises(ValueError):
        S.OneCycleLR(opt, max_lr=0.1)
    with pytest.raises(ValueError, match="Factor should be < 1.0"):
        S.ReduceLROnPlateau(opt, factor=1.5)
    with pytest.raises(ValueError):
        S.SequentialLR(opt, [S.ExponentialLR(opt, 0.9)], milestones=[3])
    with pytest.raises(TypeError):
        S.StepLR(object(), step_size=2)
    sched = S.OneCycleLR(_opt(), max_lr=0.1, total_steps=2)
    sched.step()
    sched.step()
    with pytest.raises(ValueError, match="Tried to step"):
        sched.step()


def test_onecycle_cycles_adam_beta1():
    opt = optim.Adam([pve.nn.Parameter(np.zeros(2, np.float32))], lr=0.1)
    S.OneCycleLR(opt, max_lr=0.1, total_steps=10)
    assert opt.param_groups[0]["betas"][0] == 0.95


def _stepped_opt(lr=0.1):
    opt = _opt(lr)
    opt.param_groups[0]["params"][0].grad = pve.tensor(np.ones(3, np.float32))
    return opt


def test_scheduler_warnings_as_torch():
    import warnings

    # The documented order (optimizer.step() then scheduler.step()) is warning-free.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        opt = _stepped_opt()
        sched = S.StepLR(opt, step_size=2)
        for _ in range(5):
            opt.step()
            sched.step()
        sched.get_last_lr()
    # scheduler.step() before any optimizer.step() warns once, as torch.
    opt = _stepped_opt()
    sched = S.ExponentialLR(opt, gamma=0.5)
    with pytest.warns(UserWarning, match="before `optimizer.step\\(\\)`"):
        sched.step()
    # step(epoch) is deprecated; get_lr() outside step() points at get_last_lr().
    with pytest.warns(UserWarning, match="epoch parameter in `scheduler.step\\(\\)`"):
        sched.step(3)
    assert sched.get_last_lr() == [0.1 * 0.5 ** 3]
    with pytest.warns(UserWarning, match="get_last_lr"):
        sched.get_lr()
    plateau = S.ReduceLROnPlateau(_opt())
    with pytest.warns(UserWarning, match="epoch parameter"):
        plateau.step(1.0, epoch=4)
    assert plateau.last_epoch == 4


def test_scheduler_state_dict_keys_as_torch():
    torch = pytest.importorskip("torch")
    for make in (lambda m, o: m.StepLR(o, step_size=3),
                 lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=2),
                 lambda m, o: m.OneCycleLR(o, max_lr=1.0, total_steps=20)):
        topt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(3))], lr=0.1, momentum=0.9)
        tsched = make(torch.optim.lr_scheduler, topt)
        popt = _opt()
        psched = make(S, popt)
        for _ in range(4):
            topt.step()
            tsched.step()
            popt.step()
            psched.step()
        assert sorted(psched.state_dict()) == sorted(tsched.state_dict())
