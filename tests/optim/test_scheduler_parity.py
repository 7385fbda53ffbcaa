"""Live torch parity of the lr schedulers' edge cases (skipped without torch).

Each scenario runs the same calls on torch.optim and pve.optim and records what
a user sees: the groups' lrs (and momentum/betas), get_last_lr() and its types,
state_dict keys and values, the warnings the schedulers raise and any
exception's type and message. Scenarios: every scheduler alone (float and
Tensor lrs), two schedulers stepped on one optimizer (by hand and through
ChainedScheduler, with a state_dict round trip), resuming by constructing with
``last_epoch=N`` after loading the optimizer, state_dict round trips mid-schedule
(SequentialLR, nested ones, ReduceLROnPlateau, OneCycleLR, CyclicLR and
CosineAnnealingWarmRestarts with fractional ``step(epoch)``), the closed form,
a param group added after construction, β1 cycling on Adam, and bad arguments.
"""

from __future__ import annotations

import copy
import math
import pickle
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import schedules  # noqa: E402

MAKERS = {
    "StepLR": lambda S, o, **k: S.StepLR(o, step_size=3, gamma=0.5, **k),
    "MultiStepLR": lambda S, o, **k: S.MultiStepLR(o, milestones=[2, 5, 5], gamma=0.3, **k),
    "ConstantLR": lambda S, o, **k: S.ConstantLR(o, factor=0.5, total_iters=3, **k),
    "LinearLR": lambda S, o, **k: S.LinearLR(o, start_factor=0.2, end_factor=0.9,
                                             total_iters=5, **k),
    "ExponentialLR": lambda S, o, **k: S.ExponentialLR(o, gamma=0.9, **k),
    "PolynomialLR": lambda S, o, **k: S.PolynomialLR(o, total_iters=8, power=2.0, **k),
    "CosineAnnealingLR": lambda S, o, **k: S.CosineAnnealingLR(o, T_max=6, eta_min=0.001, **k),
    "CAWR": lambda S, o, **k: S.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=2, eta_min=0.001,
                                                            **k),
    "CAWR1": lambda S, o, **k: S.CosineAnnealingWarmRestarts(o, T_0=4, **k),
    "LambdaLR": lambda S, o, **k: S.LambdaLR(o, lambda e: 0.9 ** e, **k),
    "MultiplicativeLR": lambda S, o, **k: S.MultiplicativeLR(o, lambda e: 0.95, **k),
    "OneCycleLR": lambda S, o, **k: S.OneCycleLR(o, max_lr=[0.5, 0.3], total_steps=30, **k),
    "OneCycleLR3": lambda S, o, **k: S.OneCycleLR(o, max_lr=0.5, total_steps=30,
                                                  three_phase=True, anneal_strategy="linear",
                                                  **k),
    "CyclicLR": lambda S, o, **k: S.CyclicLR(o, base_lr=[0.01, 0.02], max_lr=0.1,
                                             step_size_up=4, step_size_down=3, **k),
    "CyclicLR2": lambda S, o, **k: S.CyclicLR(o, base_lr=0.01, max_lr=[0.1, 0.2],
                                              step_size_up=3, mode="triangular2", **k),
    "CyclicLRexp": lambda S, o, **k: S.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=3,
                                                mode="exp_range", gamma=0.97, **k),
}


# ------------------------------------------------------------------ helpers
def _params(lib_name, n):
    lib = schedules._lib(lib_name)[0]
    if lib_name == "torch":
        return [lib.nn.Parameter(lib.zeros(3)) for _ in range(n)]
    return [lib.nn.Parameter(np.zeros(3, np.float32)) for _ in range(n)]


def _opt(lib_name, lrs=(0.1, 0.05), tensor=False, cls="SGD", **kw):
    lib, optim, _ = schedules._lib(lib_name)
    values = [lib.tensor(np.float32(x)) if tensor else x for x in lrs]
    groups = [{"params": [p], "lr": lr} for p, lr in zip(_params(lib_name, len(lrs)), values)]
    if cls == "SGD":
        kw.setdefault("momentum", 0.9)
    return getattr(optim, cls)(groups, lr=lrs[0], **kw)


def _lrs(opt):
    return [float(g["lr"]) for g in opt.param_groups]


def _plain(value):
    """What a user compares: Tensors as ('T', float), floats kept, containers walked."""
    if isinstance(value, (list, tuple)):
        return [_plain(x) for x in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if type(value).__name__ in ("Tensor", "Parameter"):
        return ("T", float(value))
    if isinstance(value, (bool, int, float, str, type(None))):
        return value
    return ("obj", "callable" if callable(value) else type(value).__name__)


def _steps(opt, sched, n, rec, metric=None):
    for i in range(n):
        opt.step()
        sched.step(*(() if metric is None else (metric(i),)))
        rec.append(_lrs(opt))


def _resume(lib_name, opt, sched, make, rec, steps):
    """Save opt + sched mid-schedule, load both into fresh ones built by ``make``, then
    step the resumed pair and the original ``steps`` times each (recording the lrs)."""
    state = sched.state_dict()
    rec.append(sorted(state))
    opt2 = _opt(lib_name)
    sched2 = make(opt2)
    opt2.load_state_dict(opt.state_dict())
    sched2.load_state_dict(copy.deepcopy(state))  # torch's CyclicLR pops from it
    _steps(opt2, sched2, steps, rec)
    _steps(opt, sched, steps, rec)


def _run(scenario, lib_name):
    lib, _, S = schedules._lib(lib_name)
    rec = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            scenario(lib_name, lib, S, rec)
        except Exception as exc:  # the error is part of the record
            rec.append(("raised", type(exc).__name__, str(exc)))
    said = [str(w.message) for w in caught
            if any(s in str(w.message) for s in ("scheduler", "get_last_lr", "epoch parameter"))]
    return _plain(rec), said


def _same(a, b):
    if isinstance(a, float) and isinstance(b, float):
        return a == b or math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-15)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


SCENARIOS = {}


def scenario(name):
    def register(fn):
        SCENARIOS[name] = fn
        return fn
    return register


def _saved_groups(opt):
    keys = ("lr", "initial_lr", "momentum", "betas", "max_momentum", "base_momentum",
            "max_lr", "min_lr")
    return [{k: g[k] for k in keys if k in g} for g in opt.param_groups]


# ------------------------------------------------------------- per scheduler
for _key, _make in MAKERS.items():
    @scenario(f"alone-{_key}")
    def _alone(lib_name, lib, S, rec, make=_make):
        opt = _opt(lib_name)
        sched = make(S, opt)
        rec += [_lrs(opt), [type(x).__name__ for x in sched.get_last_lr()]]
        _steps(opt, sched, 12, rec)
        rec += [sched.state_dict(), _saved_groups(opt)]

    @scenario(f"tensor-lr-{_key}")
    def _tensor_lr(lib_name, lib, S, rec, make=_make):
        opt = _opt(lib_name, tensor=True)
        sched = make(S, opt)
        _steps(opt, sched, 5, rec)
        rec += [[type(x).__name__ for x in sched.get_last_lr() + list(sched.base_lrs)]]

    @scenario(f"resume-{_key}")
    def _resume(lib_name, lib, S, rec, make=_make):
        for k in (0, 1, 4, 7):
            opt = _opt(lib_name)
            sched = make(S, opt)
            _steps(opt, sched, k, rec)
            opt2 = _opt(lib_name, lrs=(0.7, 0.7))
            opt2.load_state_dict(opt.state_dict())
            sched2 = make(S, opt2, last_epoch=k)
            rec += [_lrs(opt2), sched2.last_epoch, sched2.get_last_lr(), _saved_groups(opt2)]
            _steps(opt2, sched2, 5, rec)
            _steps(opt, sched, 5, rec)

    @scenario(f"round-trip-{_key}")
    def _round_trip(lib_name, lib, S, rec, make=_make):
        opt = _opt(lib_name)
        sched = make(S, opt)
        _steps(opt, sched, 5, rec)
        state = sched.state_dict()
        rec += [sorted(state), sorted(pickle.loads(pickle.dumps(state)))]
        opt2 = _opt(lib_name)
        sched2 = make(S, opt2)
        opt2.load_state_dict(opt.state_dict())
        sched2.load_state_dict(copy.deepcopy(state))  # torch's CyclicLR pops from it
        rec += [sched2.get_last_lr(), sched2.last_epoch]
        _steps(opt2, sched2, 8, rec)
        _steps(opt, sched, 8, rec)

    @scenario(f"closed-form-{_key}")
    def _closed_form(lib_name, lib, S, rec, make=_make):
        opt = _opt(lib_name)
        sched = make(S, opt)
        for epoch in (3, 1, 7, 2, 2):
            opt.step()
            sched.step(epoch)
            rec += [_lrs(opt), sched.last_epoch]
        _steps(opt, sched, 1, rec)

    @scenario(f"group-added-{_key}")
    def _group_added(lib_name, lib, S, rec, make=_make):
        opt = _opt(lib_name)
        sched = make(S, opt)
        _steps(opt, sched, 1, rec)
        opt.add_param_group({"params": _params(lib_name, 1), "lr": 0.3})
        _steps(opt, sched, 3, rec)
        opt.step()
        sched.step(4)
        rec.append(_lrs(opt))

    @scenario(f"get-lr-outside-step-{_key}")
    def _get_lr(lib_name, lib, S, rec, make=_make):
        rec.append(make(S, _opt(lib_name)).get_lr())


# ------------------------------------------------------------------ chaining
PAIRS = [("StepLR", "ExponentialLR"), ("ConstantLR", "CosineAnnealingLR"),
         ("LinearLR", "MultiStepLR"), ("ExponentialLR", "PolynomialLR"), ("LambdaLR", "StepLR"),
         ("MultiplicativeLR", "LinearLR"), ("CosineAnnealingLR", "ExponentialLR"),
         ("CAWR", "ExponentialLR"), ("CyclicLR", "ExponentialLR"), ("ExponentialLR", "CyclicLR"),
         ("OneCycleLR", "ExponentialLR"), ("ExponentialLR", "OneCycleLR"), ("StepLR", "CAWR")]

for _a, _b in PAIRS:
    @scenario(f"two-on-one-optimizer-{_a}-{_b}")
    def _two(lib_name, lib, S, rec, a=_a, b=_b):
        opt = _opt(lib_name)
        first = MAKERS[a](S, opt)
        rec.append(_lrs(opt))
        second = MAKERS[b](S, opt)
        rec.append(_lrs(opt))
        for _ in range(10):
            opt.step()
            first.step()
            second.step()
            rec += [_lrs(opt), first.get_last_lr(), second.get_last_lr()]

    @scenario(f"chained-{_a}-{_b}")
    def _chained(lib_name, lib, S, rec, a=_a, b=_b):
        def make(opt):
            return S.ChainedScheduler([MAKERS[a](S, opt), MAKERS[b](S, opt)])
        opt = _opt(lib_name)
        sched = make(opt)
        rec += [_lrs(opt), sched.get_last_lr()]
        _steps(opt, sched, 6, rec)
        _resume(lib_name, opt, sched, make, rec, 6)


# --------------------------------------------------- composite and special
@scenario("sequential-nested-round-trip")
def _sequential_round_trip(lib_name, lib, S, rec):
    def make(opt):
        return S.SequentialLR(opt, [S.LinearLR(opt, start_factor=0.1, total_iters=3),
                                    S.CosineAnnealingLR(opt, T_max=5),
                                    S.CyclicLR(opt, 0.01, 0.1, step_size_up=2)],
                              milestones=[3, 8])
    opt = _opt(lib_name)
    sched = make(opt)
    rec.append(_lrs(opt))
    _steps(opt, sched, 5, rec)
    _resume(lib_name, opt, sched, make, rec, 8)


@scenario("sequential-warm-restarts-onecycle")
def _sequential_mixed(lib_name, lib, S, rec):
    opt = _opt(lib_name)
    sched = S.SequentialLR(opt, [S.ExponentialLR(opt, 0.9), MAKERS["CAWR"](S, opt),
                                 MAKERS["OneCycleLR"](S, opt)], milestones=[3, 9])
    rec.append(_lrs(opt))
    _steps(opt, sched, 15, rec)


@scenario("sequential-inside-chained")
def _sequential_in_chained(lib_name, lib, S, rec):
    opt = _opt(lib_name)
    seq = S.SequentialLR(opt, [S.ConstantLR(opt, 0.5, 2), S.ExponentialLR(opt, 0.9)],
                         milestones=[2])
    sched = S.ChainedScheduler([seq, S.StepLR(opt, 3, 0.5)])
    rec.append(_lrs(opt))
    _steps(opt, sched, 8, rec)
    rec.append(sorted(sched.state_dict()))


for _key in ("CAWR", "CAWR1"):
    @scenario(f"fractional-epochs-{_key}")
    def _fractional(lib_name, lib, S, rec, key=_key):
        opt = _opt(lib_name)
        sched = MAKERS[key](S, opt)
        for epoch in (0.5, 1.25, 2.9, 3.0, 3.7, 8.1, 9.99, 20.3):
            opt.step()
            sched.step(epoch)
            rec += [_lrs(opt), sched.last_epoch, sched.T_cur, sched.T_i]
        opt2 = _opt(lib_name)
        sched2 = MAKERS[key](S, opt2)
        opt2.load_state_dict(opt.state_dict())
        sched2.load_state_dict(sched.state_dict())
        for epoch in (None, 21.5, None, None):
            for o, s in ((opt2, sched2), (opt, sched)):
                o.step()
                s.step() if epoch is None else s.step(epoch)
                rec.append(_lrs(o))
        sched.step(-1)


@scenario("plateau-round-trip")
def _plateau(lib_name, lib, S, rec):
    opt = _opt(lib_name)
    sched = S.ReduceLROnPlateau(opt, mode="max", factor=0.5, patience=1, cooldown=1,
                                min_lr=[0.01, 0.02], threshold_mode="abs")
    _steps(opt, sched, 5, rec, lambda i: [1, 2, 2, 2, 2][i])
    state = sched.state_dict()
    rec.append(state)
    opt2 = _opt(lib_name)
    sched2 = S.ReduceLROnPlateau(opt2)
    opt2.load_state_dict(opt.state_dict())
    sched2.load_state_dict(state)
    _steps(opt2, sched2, 8, rec, lambda i: 2)
    _steps(opt, sched, 8, rec, lambda i: 2)


@scenario("plateau-tensor-lr-and-metric")
def _plateau_tensor(lib_name, lib, S, rec):
    opt = _opt(lib_name, tensor=True)
    sched = S.ReduceLROnPlateau(opt, patience=0)
    _steps(opt, sched, 4, rec, lambda i: 1.0)
    rec.append([type(x).__name__ for x in sched.get_last_lr()])
    sched.step(lib.tensor(np.float32(0.5)))
    rec.append(_lrs(opt))


@scenario("plateau-group-added")
def _plateau_groups(lib_name, lib, S, rec):
    opt = _opt(lib_name)
    sched = S.ReduceLROnPlateau(opt, patience=0, min_lr=[0.0, 0.0])
    opt.add_param_group({"params": _params(lib_name, 1), "lr": 0.1})
    for metric in (1.0, 2.0, 3.0):
        sched.step(metric)


@scenario("plateau-subclass-reduce-hook")
def _plateau_subclass(lib_name, lib, S, rec):
    class Logged(S.ReduceLROnPlateau):
        def _reduce_lr(self, epoch):
            rec.append(("reduce", epoch))
            super()._reduce_lr(epoch)
    opt = _opt(lib_name)
    _steps(opt, Logged(opt, patience=0), 3, rec, lambda i: 1.0)


for _key in ("OneCycleLR", "CyclicLR", "CyclicLRexp"):
    @scenario(f"adam-beta1-{_key}")
    def _betas(lib_name, lib, S, rec, key=_key):
        opt = _opt(lib_name, cls="Adam", betas=(0.8, 0.99))
        sched = MAKERS[key](S, opt)
        rec.append([g["betas"] for g in opt.param_groups])
        for _ in range(6):
            opt.step()
            sched.step()
            rec += [[g["betas"] for g in opt.param_groups], _lrs(opt)]


@scenario("warning-scheduler-step-first")
def _warn_first(lib_name, lib, S, rec):
    opt = _opt(lib_name)
    sched = S.StepLR(opt, 2)
    sched.step()
    sched.step()
    opt.step()
    sched.step()
    rec.append(_lrs(opt))


@scenario("warning-optimizer-step-replaced")
def _warn_replaced(lib_name, lib, S, rec):
    opt = _opt(lib_name)
    sched = S.StepLR(opt, 2)
    opt.step = lambda *a, **k: None
    opt.step()
    sched.step()


@scenario("warning-two-schedulers-first-step")
def _warn_two(lib_name, lib, S, rec):
    opt = _opt(lib_name)
    first, second = S.StepLR(opt, 2), S.ExponentialLR(opt, 0.9)
    first.step()
    second.step()


class _Scale:
    def __init__(self, k):
        self.k, self.calls = k, 0

    def __call__(self, x):
        self.calls += 1
        return self.k ** x


@scenario("cyclic-custom-scale-fn")
def _cyclic_custom(lib_name, lib, S, rec):
    def make(opt, fn):
        return S.CyclicLR(opt, 0.01, 0.1, step_size_up=2, scale_fn=fn,
                          scale_mode="iterations", cycle_momentum=False)
    opt = _opt(lib_name)
    fn = _Scale(0.5)
    sched = make(opt, fn)
    _steps(opt, sched, 5, rec)
    state = sched.state_dict()
    rec += [state, fn.calls]
    fn2 = _Scale(0.1)
    opt2 = _opt(lib_name)
    sched2 = make(opt2, fn2)
    sched2.load_state_dict(copy.deepcopy(state))
    rec.append(fn2.k)
    _steps(opt2, sched2, 4, rec)
    _steps(opt, sched, 4, rec)
    rec.append(S.CyclicLR(_opt(lib_name), 0.01, 0.1, scale_fn=lambda x: 1.0).state_dict())


@scenario("cyclic-modes-round-trip")
def _cyclic_modes(lib_name, lib, S, rec):
    for mode in ("triangular", "triangular2", "exp_range"):
        opt = _opt(lib_name)
        sched = S.CyclicLR(opt, 0.01, 0.1, step_size_up=2, mode=mode, gamma=0.9)
        _steps(opt, sched, 5, rec)
        opt2 = _opt(lib_name)
        sched2 = S.CyclicLR(opt2, 0.01, 0.1, step_size_up=2)
        sched2.load_state_dict(copy.deepcopy(sched.state_dict()))
        opt2.load_state_dict(opt.state_dict())
        rec += [sched2.mode, sched2.scale_mode]
        _steps(opt2, sched2, 5, rec)
        _steps(opt, sched, 5, rec)


@scenario("cyclic-tensor-base-lr")
def _cyclic_tensor(lib_name, lib, S, rec):
    opt = _opt(lib_name, tensor=True)
    base = lib.tensor(np.float32(0.01))
    sched = S.CyclicLR(opt, [base, 0.02], 0.1, step_size_up=3)
    rec.append(sched.base_lrs[0] is base)
    _steps(opt, sched, 5, rec)
    rec.append([type(x).__name__ for x in sched.get_last_lr()])


@scenario("cyclic-after-another-scheduler")
def _cyclic_after(lib_name, lib, S, rec):
    # The first step runs on the initial_lr an earlier scheduler recorded.
    opt = _opt(lib_name)
    first = S.ExponentialLR(opt, 0.5)
    opt.step()
    first.step()
    sched = S.CyclicLR(opt, 0.01, 0.1, step_size_up=2)
    rec += [_lrs(opt), sched.get_last_lr(), sched.base_lrs]
    _steps(opt, sched, 4, rec)


@scenario("cyclic-defaults")
def _cyclic_defaults(lib_name, lib, S, rec):
    opt = _opt(lib_name)
    sched = S.CyclicLR(opt, 0.001, 0.01)
    _steps(opt, sched, 3, rec)
    rec += [sched.state_dict(), _saved_groups(opt)]


@scenario("lambda-callable-object-state")
def _lambda_object(lib_name, lib, S, rec):
    opt = _opt(lib_name)
    sched = S.LambdaLR(opt, [_Scale(0.9), lambda e: 1.0])
    _steps(opt, sched, 3, rec)
    state = sched.state_dict()
    rec.append(state)
    fn = _Scale(0.5)
    opt2 = _opt(lib_name)
    sched2 = S.LambdaLR(opt2, [fn, lambda e: 1.0])
    sched2.load_state_dict(state)
    rec += [fn.k, sorted(state)]
    _steps(opt2, sched2, 3, rec)


@scenario("onecycle-tensor-max-lr-copied")
def _onecycle_tensor(lib_name, lib, S, rec):
    opt = _opt(lib_name)
    max_lr = lib.tensor(np.float32(0.5))
    S.OneCycleLR(opt, [max_lr, 0.3], total_steps=10)
    rec.append(opt.param_groups[0]["max_lr"] is max_lr)


@scenario("names")
def _names(lib_name, lib, S, rec):
    rec += [S._LRScheduler.__name__, issubclass(S._LRScheduler, S.LRScheduler), sorted(S.__all__)]


# ------------------------------------------------------------ bad arguments
def _no_momentum(lib_name):
    return schedules._lib(lib_name)[1].Adagrad(_params(lib_name, 2), lr=0.1)


BAD = {
    "not-an-optimizer": lambda S, o, n: S.StepLR(object(), 2),
    "cyclic-not-an-optimizer": lambda S, o, n: S.CyclicLR(object(), 0.1, 1.0),
    "onecycle-not-an-optimizer": lambda S, o, n: S.OneCycleLR(object(), 0.1, total_steps=3),
    "plateau-not-an-optimizer": lambda S, o, n: S.ReduceLROnPlateau(object()),
    "lambda-count": lambda S, o, n: S.LambdaLR(o, [lambda e: 1]),
    "multiplicative-count": lambda S, o, n: S.MultiplicativeLR(o, [lambda e: 1]),
    "multiplicative-not-callable": lambda S, o, n: S.MultiplicativeLR(o, 3),
    "multiplicative-not-callable-count": lambda S, o, n: S.MultiplicativeLR(o, [3]),
    "multiplicative-one-not-callable": lambda S, o, n: S.MultiplicativeLR(o, [lambda e: 1, 3]),
    "constant-factor-high": lambda S, o, n: S.ConstantLR(o, factor=1.5),
    "constant-factor-negative": lambda S, o, n: S.ConstantLR(o, factor=-0.1),
    "linear-start": lambda S, o, n: S.LinearLR(o, start_factor=0),
    "linear-end": lambda S, o, n: S.LinearLR(o, end_factor=1.5),
    "resume-without-initial-lr": lambda S, o, n: S.StepLR(o, 2, last_epoch=3),
    "cyclic-resume-without-initial-lr": lambda S, o, n: S.CyclicLR(o, 0.1, 1.0, last_epoch=3),
    "onecycle-resume-without-initial-lr": lambda S, o, n: S.OneCycleLR(o, 1.0, total_steps=10,
                                                                       last_epoch=3),
    "sequential-empty": lambda S, o, n: S.SequentialLR(o, [], []),
    "sequential-no-optimizer": lambda S, o, n: S.SequentialLR(o, [object()], []),
    "sequential-plateau": lambda S, o, n: S.SequentialLR(o, [S.ReduceLROnPlateau(o)], []),
    "sequential-milestones": lambda S, o, n: S.SequentialLR(o, [S.StepLR(o, 2)], [3]),
    "sequential-other-optimizer": lambda S, o, n: S.SequentialLR(
        o, [S.StepLR(_opt(n), 2)], []),
    "chained-empty": lambda S, o, n: S.ChainedScheduler([]),
    "chained-no-optimizer": lambda S, o, n: S.ChainedScheduler([S.StepLR(o, 2), object()]),
    "chained-plateau": lambda S, o, n: S.ChainedScheduler([S.StepLR(o, 2),
                                                           S.ReduceLROnPlateau(o)]),
    "plateau-factor": lambda S, o, n: S.ReduceLROnPlateau(o, factor=1.0),
    "plateau-mode": lambda S, o, n: S.ReduceLROnPlateau(o, mode="avg"),
    "plateau-threshold-mode": lambda S, o, n: S.ReduceLROnPlateau(o, threshold_mode="x"),
    "plateau-min-lr-count": lambda S, o, n: S.ReduceLROnPlateau(o, min_lr=[0.1]),
    "warm-restarts-T0": lambda S, o, n: S.CosineAnnealingWarmRestarts(o, T_0=0),
    "warm-restarts-T0-float": lambda S, o, n: S.CosineAnnealingWarmRestarts(o, T_0=2.0),
    "warm-restarts-Tmult": lambda S, o, n: S.CosineAnnealingWarmRestarts(o, T_0=2, T_mult=0),
    "warm-restarts-eta-min": lambda S, o, n: S.CosineAnnealingWarmRestarts(o, T_0=2,
                                                                          eta_min="a"),
    "onecycle-total-steps": lambda S, o, n: S.OneCycleLR(o, 1.0, total_steps=0),
    "onecycle-total-steps-float": lambda S, o, n: S.OneCycleLR(o, 1.0, total_steps=3.0),
    "onecycle-epochs": lambda S, o, n: S.OneCycleLR(o, 1.0, epochs=0, steps_per_epoch=2),
    "onecycle-steps-per-epoch": lambda S, o, n: S.OneCycleLR(o, 1.0, epochs=2,
                                                             steps_per_epoch=1.5),
    "onecycle-no-length": lambda S, o, n: S.OneCycleLR(o, 1.0),
    "onecycle-pct-int": lambda S, o, n: S.OneCycleLR(o, 1.0, total_steps=10, pct_start=1),
    "onecycle-pct-high": lambda S, o, n: S.OneCycleLR(o, 1.0, total_steps=10, pct_start=1.5),
    "onecycle-anneal": lambda S, o, n: S.OneCycleLR(o, 1.0, total_steps=10,
                                                    anneal_strategy="exp"),
    "onecycle-max-lr-count": lambda S, o, n: S.OneCycleLR(o, [1.0], total_steps=10),
    "onecycle-momentum-count": lambda S, o, n: S.OneCycleLR(o, 1.0, total_steps=10,
                                                            base_momentum=[0.8],
                                                            max_momentum=[0.9]),
    "onecycle-no-momentum": lambda S, o, n: S.OneCycleLR(_no_momentum(n), 1.0, total_steps=10),
    "onecycle-past-total-steps": lambda S, o, n: [S.OneCycleLR(o, 1.0, total_steps=2).step()
                                                  for _ in range(3)],
    "cyclic-mode": lambda S, o, n: S.CyclicLR(o, 0.1, 1.0, mode="foo"),
    "cyclic-mode-with-scale-fn": lambda S, o, n: S.CyclicLR(
        o, 0.1, 1.0, mode="foo", scale_fn=lambda x: 1.0).get_last_lr(),
    "cyclic-base-lr-count": lambda S, o, n: S.CyclicLR(o, [0.1], 1.0),
    "cyclic-max-lr-count": lambda S, o, n: S.CyclicLR(o, 0.1, [1.0, 2.0, 3.0]),
    "cyclic-momentum-count": lambda S, o, n: S.CyclicLR(o, 0.1, 1.0, base_momentum=[0.8],
                                                        max_momentum=[0.9]),
    "cyclic-no-momentum": lambda S, o, n: S.CyclicLR(_no_momentum(n), 0.1, 1.0),
    "cyclic-no-momentum-not-cycled": lambda S, o, n: S.CyclicLR(
        _no_momentum(n), 0.1, 1.0, cycle_momentum=False).get_last_lr(),
}

for _key, _call in BAD.items():
    @scenario(f"bad-{_key}")
    def _bad(lib_name, lib, S, rec, call=_call):
        rec.append(call(S, _opt(lib_name), lib_name))


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scheduler_edge_case_matches_torch(name):
    theirs = _run(SCENARIOS[name], "torch")
    ours = _run(SCENARIOS[name], "pve")
    assert _same(ours, theirs), f"\npve:   {ours}\ntorch: {theirs}"
