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


MOMENTUM = [i for i, (name, _) in enumerate(schedules.SCHEDULES)
            if name in schedules.CYCLES_MOMENTUM]


@pytest.mark.parametrize("index", MOMENTUM, ids=[IDS[i] for i in MOMENTUM])
def test_momentum_sequence_matches_torch_golden(index):
    # OneCycleLR and CyclicLR cycle SGD's momentum inversely to the lr.
    name, kwargs = schedules.SCHEDULES[index]
    ours = np.array(schedules.run_lrs("pve", name, kwargs, key="momentum"))
    golden = np.load(GOLDEN)[f"mom_{index:02d}"]
    np.testing.assert_allclose(ours, golden, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("index", MOMENTUM, ids=[IDS[i] for i in MOMENTUM])
def test_momentum_sequence_matches_live_torch(index):
    pytest.importorskip("torch")
    name, kwargs = schedules.SCHEDULES[index]
    ours = np.array(schedules.run_lrs("pve", name, kwargs, key="momentum"))
    theirs = np.array(schedules.run_lrs("torch", name, kwargs, key="momentum"))
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
    lambda o: S.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=3, step_size_down=5),
    lambda o: S.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=4, mode="exp_range",
                         gamma=0.9),
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


# ----------------------------------------------------------------- CyclicLR
def test_cyclic_lr_sets_base_lr_and_max_momentum_first():
    # A fresh CyclicLR overwrites each group's lr with its base_lr and its
    # momentum with max_momentum; initial_lr keeps the optimizer's lr (torch).
    opt = optim.SGD([{"params": [pve.nn.Parameter(np.zeros(2, np.float32))]},
                     {"params": [pve.nn.Parameter(np.zeros(2, np.float32))], "lr": 0.5}],
                    lr=0.3, momentum=0.5)
    sched = S.CyclicLR(opt, base_lr=[0.01, 0.02], max_lr=0.1, step_size_up=4,
                       base_momentum=[0.7, 0.6], max_momentum=0.95)
    assert [g["lr"] for g in opt.param_groups] == [0.01, 0.02] == sched.get_last_lr()
    assert [g["initial_lr"] for g in opt.param_groups] == [0.01, 0.02]
    assert [g["momentum"] for g in opt.param_groups] == [0.95, 0.95]
    assert [g["base_momentum"] for g in opt.param_groups] == [0.7, 0.6]
    assert [g["max_momentum"] for g in opt.param_groups] == [0.95, 0.95]
    assert sched.base_lrs == [0.01, 0.02] and sched.max_lrs == [0.1, 0.1]
    # Two steps up a 4-step ramp: half way, momentum half way down.
    for _ in range(2):
        opt.step()
        sched.step()
    assert sched.get_last_lr() == [0.01 + (0.1 - 0.01) * 0.5, 0.02 + (0.1 - 0.02) * 0.5]
    assert [g["momentum"] for g in opt.param_groups] == [0.95 - (0.95 - 0.7) * 0.5,
                                                         0.95 - (0.95 - 0.6) * 0.5]


def test_cyclic_lr_cycles_beta1_of_adam():
    opt = optim.Adam([pve.nn.Parameter(np.zeros(2, np.float32))], lr=0.1, betas=(0.5, 0.99))
    sched = S.CyclicLR(opt, base_lr=0.001, max_lr=0.01, step_size_up=2)
    assert opt.param_groups[0]["betas"] == (0.9, 0.99)
    assert "momentum" not in opt.param_groups[0]
    opt.step()
    sched.step()
    assert opt.param_groups[0]["betas"] == (0.9 - (0.9 - 0.8) * 0.5, 0.99)
    assert isinstance(opt.param_groups[0]["betas"], tuple)


def test_cyclic_lr_argument_errors_as_torch():
    opt = optim.Adagrad([pve.nn.Parameter(np.zeros(2, np.float32))], lr=0.1)
    with pytest.raises(ValueError, match="optimizer must support momentum or beta1 with "
                                         "`cycle_momentum` option enabled"):
        S.CyclicLR(opt, 0.01, 0.1)
    sched = S.CyclicLR(opt, 0.01, 0.1, cycle_momentum=False)  # no momentum needed
    assert sched.get_last_lr() == [0.01] and not hasattr(sched, "use_beta1")
    with pytest.raises(ValueError, match="mode is invalid and scale_fn is None"):
        S.CyclicLR(_opt(), 0.01, 0.1, mode="cosine")
    # A custom scale_fn makes mode irrelevant (torch does not check it then).
    S.CyclicLR(_opt(), 0.01, 0.1, mode="cosine", scale_fn=lambda x: 1.0)
    with pytest.raises(ValueError, match="base_lr must have the same length as "
                                         "optimizer.param_groups. base_lr has 2 values, "
                                         "param_groups has 1."):
        S.CyclicLR(_opt(), [0.01, 0.02], 0.1)
    with pytest.raises(ValueError, match="base_momentum must have the same length"):
        S.CyclicLR(_opt(), 0.01, 0.1, base_momentum=[0.8, 0.8], max_momentum=[0.9, 0.9])
    with pytest.raises(TypeError, match="object is not an Optimizer"):
        S.CyclicLR(object(), 0.01, 0.1)
    with pytest.raises(KeyError, match="initial_lr"):
        S.CyclicLR(_opt(), 0.01, 0.1, last_epoch=5)


class _Halving:
    def __init__(self):
        self.base = 0.5
        self.calls = 0

    def __call__(self, x):
        self.calls += 1
        return self.base ** x


def test_cyclic_lr_state_dict_keeps_only_serialisable_scale_fns():
    import pickle

    # Built-in modes: the bound scale function is dropped and rebuilt on load.
    opt = _opt()
    sched = S.CyclicLR(opt, 0.01, 0.1, step_size_up=2, mode="exp_range", gamma=0.9)
    state = sched.state_dict()
    assert "_scale_fn_ref" not in state and state["_scale_fn_custom"] is None
    assert state["scale_mode"] == "iterations"
    pickle.dumps(state)
    other = S.CyclicLR(_opt(), 0.01, 0.1, step_size_up=2)  # triangular
    other.load_state_dict(state)
    assert other.mode == "exp_range" and other.scale_fn(2) == 0.9 ** 2
    assert state["_scale_fn_custom"] is None  # the caller's dict is left whole
    # A plain function is not saved; a callable object saves its __dict__.
    assert S.CyclicLR(_opt(), 0.01, 0.1, scale_fn=lambda x: 1.0).state_dict()[
        "_scale_fn_custom"] is None
    fn = _Halving()
    sched = S.CyclicLR(_opt(), 0.01, 0.1, step_size_up=2, scale_fn=fn, scale_mode="iterations")
    assert fn.calls == 2  # once per lr and once per momentum, as torch
    fn.base = 0.25
    state = sched.state_dict()
    assert state["_scale_fn_custom"] == {"base": 0.25, "calls": 2}
    fn2 = _Halving()
    restored = S.CyclicLR(_opt(), 0.01, 0.1, step_size_up=2, scale_fn=fn2,
                          scale_mode="iterations")
    restored.load_state_dict(state)
    assert fn2.base == 0.25 and restored.scale_fn(1) == 0.25


def test_cyclic_lr_resume_with_last_epoch():
    def make(o, **kw):
        return S.CyclicLR(o, [0.01, 0.02], [0.1, 0.3], step_size_up=3, mode="triangular2", **kw)

    def group_opt():
        return optim.SGD([{"params": [pve.nn.Parameter(np.zeros(2, np.float32))]},
                          {"params": [pve.nn.Parameter(np.zeros(2, np.float32))]}],
                         lr=0.5, momentum=0.9)

    opt = group_opt()
    sched = make(opt)
    for _ in range(7):
        opt.step()
        sched.step()
    resumed_opt = group_opt()
    resumed_opt.load_state_dict(opt.state_dict())
    resumed = make(resumed_opt, last_epoch=6)
    assert resumed.last_epoch == 7
    assert resumed.get_last_lr() == sched.get_last_lr()
    for _ in range(8):
        opt.step()
        sched.step()
        resumed_opt.step()
        resumed.step()
        assert resumed.get_last_lr() == sched.get_last_lr()
        assert ([g["momentum"] for g in resumed_opt.param_groups]
                == [g["momentum"] for g in opt.param_groups])


# ------------------------------------------------- audit against torch 2.13
def test_param_group_added_after_scheduler_raises_as_torch():
    # torch zips per-group lists with the param groups strictly: after
    # add_param_group a schedule that needs a per-group value raises
    # ValueError (pve used to leave the new group silently unscheduled).
    def grown(make):
        opt = _opt()
        sched = make(opt)
        opt.add_param_group({"params": [pve.nn.Parameter(np.zeros(2, np.float32))], "lr": 0.3})
        opt.step()
        return opt, sched

    opt, sched = grown(lambda o: S.LambdaLR(o, lambda e: 0.5))
    with pytest.raises(ValueError, match="zip\\(\\) argument 2 is shorter than argument 1"):
        sched.step()
    opt, sched = grown(lambda o: S.MultiplicativeLR(o, lambda e: 0.5))
    with pytest.raises(ValueError, match="zip\\(\\) argument 2 is longer than argument 1"):
        sched.step()
    opt, sched = grown(lambda o: S.CosineAnnealingWarmRestarts(o, T_0=3))
    with pytest.raises(ValueError, match="argument 2 is shorter"):
        sched.step()
    opt, sched = grown(lambda o: S.CyclicLR(o, 0.01, 0.1))
    with pytest.raises(ValueError, match="argument 2 is shorter"):
        sched.step()
    # The chainable form scales every group it finds (as torch) ...
    opt, sched = grown(lambda o: S.ExponentialLR(o, gamma=0.5))
    sched.step()
    assert sched.get_last_lr() == [0.05, 0.15]
    # ... the closed form has one base lr per original group: torch sets the
    # first group's lr, then raises.
    with pytest.warns(UserWarning, match="epoch parameter"):
        with pytest.raises(ValueError, match="argument 2 is shorter"):
            sched.step(3)
    assert [g["lr"] for g in opt.param_groups] == [0.1 * 0.5 ** 3, 0.15]


def test_zip_strict_for_python39_matches_strict_zip():
    cases = [([1, 2], [1]), ([1], [1, 2]), ([1, 2], [1, 2], [1]), ([1], [1], [1, 2]),
             ([1, 2], [3, 4]), ([], [])]
    for args in cases:
        got = list(S._zip_strict_py39(*args)) if len(set(map(len, args))) == 1 else None
        if got is not None:
            assert got == list(zip(*args))
            continue
        with pytest.raises(ValueError) as ours:
            list(S._zip_strict_py39(*args))
        expected = {(2, 1): "zip() argument 2 is shorter than argument 1",
                    (1, 2): "zip() argument 2 is longer than argument 1",
                    (2, 2, 1): "zip() argument 3 is shorter than arguments 1-2",
                    (1, 1, 2): "zip() argument 3 is longer than arguments 1-2"}
        assert str(ours.value) == expected[tuple(map(len, args))]


def test_multiplicative_lr_checks_count_before_callables():
    # torch builds the per-group list first (its length error), then checks callables.
    with pytest.raises(ValueError, match="Expected 1 lr_lambdas, but got 2"):
        S.MultiplicativeLR(_opt(), [3, 4])
    with pytest.raises(TypeError, match="lr_lambda should be a function, but got int"):
        S.MultiplicativeLR(_opt(), [3])
    with pytest.raises(TypeError, match="lr_lambda should be a function, but got str"):
        S.MultiplicativeLR(_opt(), "x")


def test_resume_key_error_explains_as_torch():
    with pytest.raises(KeyError) as err:
        S.StepLR(_opt(), step_size=2, last_epoch=4)
    assert err.value.args[0] == (
        "param 'initial_lr' is not specified in param_groups[0] when resuming scheduler with "
        "last_epoch >= 0.\nThis typically happens when:\n1. You're trying to resume training "
        "from a checkpoint but haven't properly loaded the optimizer state\n2. You're using "
        "last_epoch >= 0 for a fresh training run (not recommended)")


def test_chained_scheduler_checks_as_torch():
    opt = _opt()
    step = S.StepLR(opt, step_size=2)
    with pytest.raises(TypeError, match="ChainedScheduler at index 1 should have `optimizer` "
                                        "as its attribute."):
        S.ChainedScheduler([step, object()])
    with pytest.raises(ValueError, match="ChainedScheduler does not support `ReduceLROnPlateau` "
                                         "scheduler as it requires additional kwargs to be "
                                         "specified when calling `step`, but got one at index 1"):
        S.ChainedScheduler([step, S.ReduceLROnPlateau(opt)])
    with pytest.raises(ValueError, match="ChainedScheduler expects all schedulers to belong to "
                                         "the same optimizer, but got scheduler StepLR at index 0"):
        S.ChainedScheduler([step], optimizer=_opt())
    given = [step, S.ExponentialLR(opt, gamma=0.9)]
    assert S.ChainedScheduler(given)._schedulers is given  # kept as given, as torch


def test_onecycle_and_cyclic_copy_tensor_hyperparameters():
    # torch's _format_param clones Tensor values, so the user's tensors never
    # become (and are never mutated as) the scheduler's or the groups' values.
    max_lr = pve.tensor(np.float32(0.5))
    opt = _opt()
    S.OneCycleLR(opt, max_lr=max_lr, total_steps=10)
    assert opt.param_groups[0]["max_lr"] is not max_lr
    assert float(opt.param_groups[0]["max_lr"]) == 0.5
    base = pve.tensor(np.float32(0.01))
    sched = S.CyclicLR(_opt(), base_lr=[base], max_lr=0.1)
    assert sched.base_lrs[0] is not base and float(sched.base_lrs[0]) == np.float32(0.01)


def test_plateau_reduce_lr_hook_gets_epoch():
    # torch's ReduceLROnPlateau calls self._reduce_lr(epoch); subclasses override it.
    seen = []

    class Logged(S.ReduceLROnPlateau):
        def _reduce_lr(self, epoch):
            seen.append(epoch)
            super()._reduce_lr(epoch)

    opt = _opt()
    sched = Logged(opt, patience=0)
    for metric in (1.0, 1.0, 1.0):
        sched.step(metric)
    assert seen == [2, 3]
    assert sched.get_last_lr() == [0.1 * 0.1 * 0.1]


def test_lr_scheduler_alias_is_a_subclass():
    assert issubclass(S._LRScheduler, S.LRScheduler)
    assert S._LRScheduler.__name__ == "_LRScheduler"
    assert "CyclicLR" in S.__all__


def test_lambda_load_state_dict_indexes_saved_lambdas_as_torch():
    class Scale:
        def __init__(self, k):
            self.k = k

        def __call__(self, e):
            return self.k

    two = optim.SGD([{"params": [pve.nn.Parameter(np.zeros(2, np.float32))]},
                     {"params": [pve.nn.Parameter(np.zeros(2, np.float32))]}], lr=0.1)
    state = S.LambdaLR(two, [Scale(0.5), Scale(0.25)]).state_dict()
    assert state["lr_lambdas"] == [{"k": 0.5}, {"k": 0.25}]
    one = S.LambdaLR(_opt(), Scale(1.0))
    with pytest.raises(IndexError):  # more saved lambdas than groups (torch indexes)
        one.load_state_dict(state)
