"""nn.Module and the containers against live torch (skipped without it): the same
model built in both, then the same calls compared: names and order, state_dict
and load_state_dict results, registration errors, hooks, container indexing and
editing, reprs."""

from collections import OrderedDict

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import pyvision_engine as pve  # noqa: E402

nn, tnn = pve.nn, torch.nn


def _net(lib):
    """A model exercising shared modules/parameters, None entries and buffers."""

    class Net(lib.Module):
        def __init__(self):
            super().__init__()
            self.a = lib.Linear(3, 4)
            self.seq = lib.Sequential(lib.Linear(4, 4), lib.ReLU(), lib.Linear(4, 2))
            self.shared = self.a  # the same module twice
            self.scale = lib.Parameter(lib_ones(lib, 1))
            self.register_parameter("unused", None)
            self.register_buffer("count", lib_ones(lib, 2))
            self.register_buffer("scratch", lib_ones(lib, 2), persistent=False)
            self.register_buffer("absent", None)
            self.tied = self.seq[0].weight  # a parameter registered twice

        def forward(self, x):
            return self.seq(self.a(x)) * self.scale

    return Net()


def lib_ones(lib, *shape):
    return pve.ones(*shape) if lib is nn else torch.ones(*shape)


def _names(pairs):
    return [n for n, _ in pairs]


@pytest.mark.parametrize("call", [
    lambda m: _names(m.named_parameters()),
    lambda m: _names(m.named_parameters(prefix="p", recurse=False)),
    lambda m: _names(m.named_parameters(remove_duplicate=False)),
    lambda m: _names(m.named_buffers()),
    lambda m: _names(m.named_buffers(prefix="root", remove_duplicate=False)),
    lambda m: _names(m.named_modules()),
    lambda m: _names(m.named_modules(prefix="net", remove_duplicate=False)),
    lambda m: _names(m.named_children()),
    lambda m: len(list(m.modules())),
    lambda m: len(list(m.modules(remove_duplicate=False))),
    lambda m: len(list(m.children())),
    lambda m: len(list(m.parameters(recurse=False))),
    lambda m: len(list(m.buffers(recurse=False))),
    lambda m: list(m.state_dict()),
    lambda m: list(m.state_dict(prefix="model.")),
    lambda m: list(m.seq.state_dict(destination=OrderedDict(x=1), prefix="s.")),
    lambda m: [type(v).__name__ == "Parameter" for v in m.state_dict(keep_vars=True).values()],
    lambda m: [type(v).__name__ == "Parameter" for v in m.state_dict().values()],
    lambda m: [v.requires_grad for v in m.state_dict().values()],
    lambda m: m.train(False) is m and not m.seq[1].training,
    lambda m: m.eval() is m and m.train() is m and m.seq[2].training,
    lambda m: m.requires_grad_(False) is m and [p.requires_grad for p in m.parameters()],
    lambda m: m.apply(lambda x: None) is m,
    lambda m: repr(m),
    lambda m: repr(m.seq),
    lambda m: type(m.get_submodule("seq.0")).__name__,
    lambda m: tuple(m.get_parameter("seq.2.bias").shape),
    lambda m: tuple(m.get_buffer("count").shape),
])
def test_module_traversal_and_state_dict_match_torch(call):
    assert call(_net(nn)) == call(_net(tnn))


def _outcome(fn):
    try:
        result = fn()
    except Exception as e:  # noqa: BLE001 - the type is what is compared
        return "raises", type(e).__name__
    return "returns", result


def _error_classes(fn):
    """The names of the classes of the error fn raises (its MRO), or None."""
    try:
        fn()
    except Exception as e:  # noqa: BLE001
        return [c.__name__ for c in type(e).__mro__]
    return None


@pytest.mark.parametrize("action", [
    lambda lib, m: m.register_buffer("a.b", None),
    lambda lib, m: m.register_buffer("", None),
    lambda lib, m: m.register_buffer(3, None),
    lambda lib, m: m.register_buffer("scale", None),       # a parameter's name
    lambda lib, m: m.register_buffer("seq", None),         # a child's name
    lambda lib, m: m.register_buffer("plain", None),       # a plain attribute's name
    lambda lib, m: m.register_buffer("forward", None),
    lambda lib, m: m.register_buffer("nb", [1.0, 2.0]),
    lambda lib, m: m.register_buffer("count", None),       # re-registering is fine
    lambda lib, m: m.register_parameter("count", None),
    lambda lib, m: m.register_parameter("a.b", None),
    lambda lib, m: m.register_parameter("", None),
    lambda lib, m: m.register_parameter("p", lib_ones(lib, 2)),
    lambda lib, m: m.register_parameter("scale", None),
    lambda lib, m: m.add_module("count", None),
    lambda lib, m: m.add_module("a.b", None),
    lambda lib, m: m.add_module("", None),
    lambda lib, m: m.add_module(1, None),
    lambda lib, m: m.add_module("x", 5),
    lambda lib, m: m.register_module("plain", lib.ReLU()),
    lambda lib, m: setattr(m, "scale", lib_ones(lib, 1)),  # plain tensor onto a parameter
    lambda lib, m: setattr(m, "seq", 5),
    lambda lib, m: setattr(m, "count", 5),
    lambda lib, m: setattr(m, "count", None),
    lambda lib, m: setattr(m, "scale", None),
    lambda lib, m: setattr(m, "seq", None),
    lambda lib, m: m.train("yes"),
    lambda lib, m: m.get_submodule("seq.9"),
    lambda lib, m: m.get_parameter("seq.1.weight"),
    lambda lib, m: m.get_parameter("count"),
    lambda lib, m: m.get_buffer("scale"),
    lambda lib, m: m.nothing,
    lambda lib, m: m.load_state_dict([1, 2]),
])
def test_registration_and_attribute_errors_match_torch(action):
    ours, theirs = _fresh(nn), _fresh(tnn)
    ours_error = _error_classes(lambda: action(nn, ours))
    theirs_error = _error_classes(lambda: action(tnn, theirs))
    if theirs_error is None:
        assert ours_error is None
        # and the structure after the action is the same
        assert list(ours.state_dict()) == list(theirs.state_dict())
        assert _names(ours.named_buffers()) == _names(theirs.named_buffers())
        assert _names(ours.named_parameters()) == _names(theirs.named_parameters())
    else:  # the engine's error is torch's type (or a subclass of it)
        assert ours_error is not None and theirs_error[0] in ours_error, (ours_error, theirs_error)


def _fresh(lib):
    m = _net(lib)
    object.__setattr__(m, "plain", 1)
    return m


def test_setattr_moves_names_between_kinds_as_torch():
    for lib in (nn, tnn):
        m = _net(lib)
        m.count = lib.Parameter(lib_ones(lib, 2))      # buffer name -> parameter
        m.scratch = lib.ReLU()                          # non-persistent buffer -> module
        del m.seq
        m.register_buffer("scratch2", lib_ones(lib, 1), persistent=False)
        del m.scratch2
        m.register_buffer("scratch2", lib_ones(lib, 1))  # persistent again once re-registered
        m.extra = (lib.Buffer if hasattr(lib, "Buffer") else None)(lib_ones(lib, 3),
                                                                   persistent=False)
        if lib is nn:
            ours = (list(m.state_dict()), _names(m.named_buffers()), _names(m.named_children()))
        else:
            theirs = (list(m.state_dict()), _names(m.named_buffers()),
                      _names(m.named_children()))
    assert ours == theirs


def _load_both(build_sd, **kwargs):
    results = []
    for lib in (nn, tnn):
        m = _net(lib)
        sd = build_sd(lib, {k: v.detach().numpy().copy() for k, v in m.state_dict().items()})
        if lib is tnn:
            sd = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v
                  for k, v in sd.items()}
        outcome = _outcome(lambda: m.load_state_dict(sd, **kwargs))
        if outcome[0] == "returns":
            r = outcome[1]
            outcome = ("returns", list(r.missing_keys), list(r.unexpected_keys))
        results.append(outcome)
    return results


def _drop(sd, *keys):
    for k in keys:
        del sd[k]
    return sd


@pytest.mark.parametrize("strict", [True, False])
@pytest.mark.parametrize("build", [
    lambda lib, sd: sd,
    lambda lib, sd: _drop(sd, "seq.0.bias", "count"),
    lambda lib, sd: dict(sd, **{"seq.0.extra": np.zeros(1, np.float32),
                                "extra": np.zeros(1, np.float32)}),
    lambda lib, sd: dict(sd, **{"seq": np.zeros(1, np.float32)}),  # a child's name: not reported
    lambda lib, sd: dict(sd, **{"scratch": np.zeros(2, np.float32)}),  # non-persistent: unexpected
    lambda lib, sd: dict(sd, **{"a.weight.x": np.zeros(1, np.float32)}),
    lambda lib, sd: dict(sd, **{"seq.2.weight": np.zeros((3, 3), np.float32)}),
    lambda lib, sd: dict(_drop(sd, "a.bias"), **{"nope": np.zeros(1, np.float32)}),
])
def test_load_state_dict_missing_unexpected_and_errors_match_torch(build, strict):
    ours, theirs = _load_both(build, strict=strict)
    if theirs[0] == "raises":
        assert ours[0] == "raises" and theirs[1] == "RuntimeError"
    else:
        assert ours == theirs


def test_load_state_dict_errors_are_runtime_errors_naming_keys_as_torch():
    m = _net(nn)
    sd = {k: v.numpy() for k, v in m.state_dict().items()}
    sd["seq.2.weight"] = np.zeros((3, 3), np.float32)
    with pytest.raises(RuntimeError, match=r"size mismatch for seq\.2\.weight"):
        m.load_state_dict(sd, strict=False)  # shapes are checked even when not strict


def test_load_state_dict_assign_replaces_tensors_as_torch():
    for lib in (nn, tnn):
        m = _net(lib)
        m.seq[0].weight.requires_grad_(False)
        src = _net(lib).state_dict()
        old_weight = m.seq[0].weight
        m.load_state_dict(src, assign=True)
        assert m.seq[0].weight is not old_weight
        assert type(m.seq[0].weight).__name__ == "Parameter"
        assert not m.seq[0].weight.requires_grad and m.seq[2].weight.requires_grad
        np.testing.assert_array_equal(m.seq[0].weight.detach().numpy(),
                                      src["seq.0.weight"].numpy())
        assert m.count is src["count"]  # a buffer is the checkpoint's tensor itself
    # numpy values assign too (the engine's convenience)
    m = _net(nn)
    w = np.full((4, 4), 2.0, np.float32)
    sd = dict({k: v.numpy().copy() for k, v in m.state_dict().items()}, **{"seq.0.weight": w})
    m.load_state_dict(sd, assign=True)
    np.testing.assert_array_equal(m.seq[0].weight.detach().numpy(), w)


def test_zero_grad_sets_to_none_by_default_as_torch():
    for lib in (nn, tnn):
        m = _net(lib)
        m(lib_ones(lib, 2, 3)).sum().backward()
        m.zero_grad(set_to_none=False)
        assert all(float(p.grad.sum()) == 0 for p in m.parameters())
        m.zero_grad()
        assert all(p.grad is None for p in m.parameters())


def _hook_trace(lib, **kwargs):
    trace = []
    m = lib.Linear(2, 2)
    # weights that make every output exact, so the traced sums compare equal across
    # the two engines (random weights left (y + 1) - y a rounding away from 1)
    lib.init.constant_(m.weight, 0.5)
    lib.init.constant_(m.bias, 0.25)
    h1 = m.register_forward_pre_hook(lambda mod, args: trace.append("pre1"))
    m.register_forward_pre_hook(lambda mod, args: trace.append("pre0"), prepend=True)
    m.register_forward_pre_hook(lambda mod, args, kw: (args, kw), with_kwargs=True)
    m.register_forward_hook(lambda mod, args, out: trace.append("post1"))
    h2 = m.register_forward_hook(lambda mod, args, kw, out: out * 0, with_kwargs=True,
                                 prepend=True)
    out = m(lib_ones(lib, 1, 2))
    trace.append(float(out.detach().sum()))
    h1.remove()
    h2.remove()
    h2.remove()  # removing twice is harmless
    out = m(lib_ones(lib, 1, 2))
    trace.append(float(out.detach().sum()) != 0)
    with m.register_forward_hook(lambda mod, args, out: out + 1):
        trace.append(float((m(lib_ones(lib, 1, 2)) - out).detach().sum()))
    trace.append(float((m(lib_ones(lib, 1, 2)) - out).detach().sum()))

    def boom(*args):
        raise KeyError("x")
    m.register_forward_pre_hook(lambda mod, args: (lib_ones(lib, 1, 3),))  # wrong width
    m.register_forward_hook(lambda mod, args, out: trace.append(("always", out)),
                            always_call=True)
    try:
        m(lib_ones(lib, 1, 2))
    except Exception:  # noqa: BLE001
        trace.append("raised")
    return trace


def test_forward_hooks_prepend_with_kwargs_always_call_and_handles_as_torch():
    assert _hook_trace(nn) == _hook_trace(tnn)


def test_pre_hook_with_kwargs_must_return_args_and_kwargs():
    for lib in (nn, tnn):
        m = lib.Linear(2, 2)
        m.register_forward_pre_hook(lambda mod, args, kw: args, with_kwargs=True)
        with pytest.raises(RuntimeError, match="new_args, new_kwargs"):
            m(lib_ones(lib, 1, 2))


def _seq(lib, n=4):
    return lib.Sequential(*[lib.Linear(i + 1, i + 2) for i in range(n)])


def _describe(x):
    """Container contents as layer shapes (comparable between the libraries)."""
    if hasattr(x, "in_features"):
        return (x.in_features, x.out_features)
    if isinstance(x, (list, tuple)):
        return [_describe(v) for v in x]
    if hasattr(x, "items") and not hasattr(x, "weight"):
        return [(k, _describe(v)) for k, v in x.items()]
    if hasattr(x, "_modules"):
        return [(k, _describe(v)) for k, v in x._modules.items()]
    return x


@pytest.mark.parametrize("cls", ["Sequential", "ModuleList"])
@pytest.mark.parametrize("action", [
    lambda lib, c: c[-1], lambda lib, c: c[1:3], lambda lib, c: c[::-2], lambda lib, c: c[4],
    lambda lib, c: c[-5], lambda lib, c: c["0"], lambda lib, c: c[1.0],
    lambda lib, c: len(c), lambda lib, c: [m for m in c],
    lambda lib, c: c.__setitem__(-1, lib.Linear(9, 9)) or c,
    lambda lib, c: c.__setitem__(4, lib.Linear(9, 9)),
    lambda lib, c: c.__delitem__(1) or c, lambda lib, c: c.__delitem__(-4) or c,
    lambda lib, c: c.__delitem__(slice(0, 4, 2)) or c, lambda lib, c: c.__delitem__(7),
    lambda lib, c: c.insert(1, lib.Linear(9, 9)) or c,
    lambda lib, c: c.insert(-1, lib.Linear(9, 9)) or c,
    lambda lib, c: c.insert(4, lib.Linear(9, 9)) or c,
    lambda lib, c: c.append(lib.Linear(8, 8)) is c and c,
    lambda lib, c: c.extend([lib.Linear(8, 8), lib.Linear(7, 7)]) is c and c,
    lambda lib, c: (c.pop(1), c), lambda lib, c: (c.pop(-1), c), lambda lib, c: c.pop(9),
    lambda lib, c: c + type(c)([lib.Linear(8, 8)]),
    lambda lib, c: c.__iadd__(type(c)([lib.Linear(8, 8)])),
    lambda lib, c: repr(c),
    lambda lib, c: _names(c.named_children()),
])
def test_sequential_and_module_list_match_torch(cls, action):
    ours = _outcome(lambda: _describe(action(nn, _seq(nn) if cls == "Sequential" else
                                              nn.ModuleList(list(_seq(nn))))))
    theirs = _outcome(lambda: _describe(action(tnn, _seq(tnn) if cls == "Sequential" else
                                                tnn.ModuleList(list(_seq(tnn))))))
    if ours[0] == "returns" and isinstance(ours[1], str):  # reprs: the class names differ
        theirs = ("returns", theirs[1])
    assert ours == theirs


@pytest.mark.parametrize("action", [
    lambda lib, s: s * 2, lambda lib, s: 2 * s, lambda lib, s: s.__imul__(3),
    lambda lib, s: s * 0, lambda lib, s: s * 1.5, lambda lib, s: s + [lib.ReLU()],
    lambda lib, s: s.__iadd__(lib.ReLU()), lambda lib, s: s.insert(9, lib.ReLU()),
    lambda lib, s: s.insert(0, 5),
])
def test_sequential_arithmetic_and_insert_errors_match_torch(action):
    a = _outcome(lambda: _describe(action(nn, _seq(nn, 2))))
    b = _outcome(lambda: _describe(action(tnn, _seq(tnn, 2))))
    assert a == b


def test_module_list_repr_compresses_repeats_as_torch():
    for build in [lambda lib: lib.ModuleList([lib.ReLU(), lib.ReLU(), lib.Linear(2, 2),
                                              lib.ReLU(), lib.ReLU(), lib.ReLU()]),
                  lambda lib: lib.ModuleList(), lambda lib: lib.Sequential(),
                  lambda lib: lib.ModuleList([lib.Sequential(lib.ReLU(), lib.ReLU())] * 2),
                  lambda lib: lib.ModuleDict({"x": lib.ReLU(), "y": lib.Linear(1, 2)})]:
        assert repr(build(nn)) == repr(build(tnn))


@pytest.mark.parametrize("action", [
    lambda lib, d: d["b"], lambda lib, d: d["zz"], lambda lib, d: list(d),
    lambda lib, d: d.pop("a") and list(d), lambda lib, d: d.pop("zz"),
    lambda lib, d: d.__delitem__("b") or list(d), lambda lib, d: d.clear() or len(d),
    lambda lib, d: d.update([("c", lib.ReLU()), ("a", lib.Linear(5, 5))]) or _describe(d),
    lambda lib, d: d.update(OrderedDict(z=lib.ReLU())) or list(d),
    lambda lib, d: d.update(5), lambda lib, d: d.update([("x",)]), lambda lib, d: d.update([5]),
    lambda lib, d: "a" in d, lambda lib, d: list(d.keys()), lambda lib, d: len(d),
    lambda lib, d: d.__setitem__("x.y", lib.ReLU()),
])
def test_module_dict_matches_torch(action):
    def build(lib):
        return lib.ModuleDict({"b": lib.Linear(1, 2), "a": lib.Linear(2, 3)})
    assert _outcome(lambda: _describe(action(nn, build(nn)))) == \
        _outcome(lambda: _describe(action(tnn, build(tnn))))
