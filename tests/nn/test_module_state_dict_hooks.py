"""Module's state-dict machinery as torch's: ``_metadata`` versions, the overridable
``_save_to_state_dict`` / ``_load_from_state_dict`` (torch's signatures), extra state,
the four state-dict hook kinds, and ``set_submodule``.

Each behaviour is checked against the expected values written here, and (torch tests,
skipped without torch) against torch running the same code on its own Module."""

from collections import OrderedDict

import numpy as np
import pytest

import pyvision_engine as pve
import pyvision_engine.nn as nn


def _net(lib):
    return lib.nn.Sequential(lib.nn.Conv2d(2, 3, 3), lib.nn.BatchNorm2d(3), lib.nn.ReLU(),
                             lib.nn.Flatten(), lib.nn.Linear(12, 2))


def _custom_classes(lib):
    """A module with extra state, and one that renames an old key while loading, written
    against ``lib.nn`` exactly as a torch user writes them."""

    class Counter(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = lib.nn.Linear(2, 2)
            self.calls = 0

        def get_extra_state(self):
            return {"calls": self.calls}

        def set_extra_state(self, state):
            self.calls = state["calls"]

    class Renamed(lib.nn.Module):
        _version = 3

        def __init__(self):
            super().__init__()
            self.scale = lib.nn.Parameter(lib.ones(2))

        def _save_to_state_dict(self, destination, prefix, keep_vars):
            super()._save_to_state_dict(destination, prefix, keep_vars)
            destination[prefix + "note"] = lib.zeros(1)

        def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict,
                                  missing_keys, unexpected_keys, error_msgs):
            if local_metadata.get("version", 0) < 3 and prefix + "gain" in state_dict:
                state_dict[prefix + "scale"] = state_dict.pop(prefix + "gain")
            state_dict.pop(prefix + "note", None)
            super()._load_from_state_dict(state_dict, prefix, local_metadata, strict,
                                          missing_keys, unexpected_keys, error_msgs)

    return Counter, Renamed


def _values(sd):
    return {k: np.asarray(v.detach().numpy() if hasattr(v, "detach") else v, dtype=np.float64)
            for k, v in sd.items() if not k.endswith("_extra_state")}


def test_metadata_versions():
    sd = _net(pve).state_dict()
    assert sd._metadata == OrderedDict([("", {"version": 1}), ("0", {"version": 1}),
                                        ("1", {"version": 2}), ("2", {"version": 1}),
                                        ("3", {"version": 1}), ("4", {"version": 1})])
    # a destination without _metadata gets none (torch's rule)
    plain = {}
    _net(pve).state_dict(destination=plain)
    assert not hasattr(plain, "_metadata") and len(plain) == 9


def test_batchnorm_version_decides_a_missing_num_batches_tracked():
    src = _net(pve).state_dict()
    del src["1.num_batches_tracked"]
    with pytest.raises(RuntimeError, match="num_batches_tracked"):  # version 2: required
        _net(pve).load_state_dict(src)
    src._metadata["1"] = {"version": 1}  # a checkpoint from before version 2
    assert _net(pve).load_state_dict(src).missing_keys == []
    plain = dict(src)  # no metadata at all (a plain dict): also allowed
    assert _net(pve).load_state_dict(plain).missing_keys == []


def test_extra_state_round_trip_and_strictness():
    Counter, _ = _custom_classes(pve)
    a = Counter()
    a.calls = 7
    sd = a.state_dict()
    assert list(sd) == ["_extra_state", "lin.weight", "lin.bias"]  # (own entries, then children)
    b = Counter()
    b.load_state_dict(sd)
    assert b.calls == 7
    del sd["_extra_state"]
    with pytest.raises(RuntimeError, match='Missing key\\(s\\) in state_dict: "_extra_state"'):
        Counter().load_state_dict(sd)
    with pytest.raises(RuntimeError, match="should never be called"):
        nn.Linear(2, 2).get_extra_state()
    with pytest.raises(RuntimeError, match='Unexpected key\\(s\\) in state_dict: "_extra_state"'):
        nn.Linear(2, 2).load_state_dict({**nn.Linear(2, 2).state_dict(), "_extra_state": 1})


def test_overridden_save_and_load_with_torch_signatures():
    _, Renamed = _custom_classes(pve)
    m = nn.Sequential(Renamed())
    sd = m.state_dict()
    assert list(sd) == ["0.scale", "0.note"] and sd._metadata["0"] == {"version": 3}
    old = OrderedDict([("0.gain", np.array([2.0, 5.0], np.float32))])
    old._metadata = OrderedDict([("0", {"version": 2})])
    m.load_state_dict(old)
    np.testing.assert_array_equal(m[0].scale.detach().numpy(), [2.0, 5.0])


def test_load_hooks_rename_and_forgive():
    m = nn.Sequential(nn.Linear(2, 2))
    calls = []

    def pre(module, state_dict, prefix, local_metadata, strict, missing, unexpected, errors):
        calls.append(("pre", type(module).__name__, prefix))
        for k in [k for k in state_dict if k.startswith(prefix) and k.endswith("_old")]:
            state_dict[k[:-4]] = state_dict.pop(k)

    def post(module, incompatible):
        calls.append(("post", type(module).__name__, tuple(incompatible.missing_keys)))
        if "0.bias" in incompatible.missing_keys:
            incompatible.missing_keys.remove("0.bias")

    h1 = m[0].register_load_state_dict_pre_hook(pre)
    m.register_load_state_dict_post_hook(post)
    w = np.arange(4, dtype=np.float32).reshape(2, 2)
    result = m.load_state_dict({"0.weight_old": w})  # strict, yet the post hook forgave the bias
    np.testing.assert_array_equal(m[0].weight.detach().numpy(), w)
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert calls == [("pre", "Linear", "0."), ("post", "Sequential", ("0.bias",))]
    h1.remove()
    with pytest.raises(RuntimeError, match="weight_old"):
        m.load_state_dict({"0.weight_old": w})

    m.register_load_state_dict_post_hook(lambda module, keys: 1)
    with pytest.raises(AssertionError, match="not expected to return new values"):
        m.load_state_dict(m.state_dict())


def test_state_dict_hooks():
    m = nn.Sequential(nn.Linear(2, 2))
    seen = []
    m[0].register_state_dict_pre_hook(lambda mod, prefix, keep_vars: seen.append((prefix, keep_vars)))

    def post(mod, sd, prefix, local_metadata):
        sd[prefix + "tag"] = pve.tensor(1.0)

    m[0].register_state_dict_post_hook(post)
    sd = m.state_dict(keep_vars=True)
    assert seen == [("0.", True)] and list(sd) == ["0.weight", "0.bias", "0.tag"]
    m.register_state_dict_post_hook(lambda mod, sd, prefix, md: {})
    with pytest.raises(RuntimeError, match="post-hook must return None"):
        m.state_dict()
    other = nn.Linear(2, 2)
    other._register_state_dict_hook(lambda mod, sd, prefix, md: OrderedDict(only=pve.tensor(0.0)))
    assert list(other.state_dict()) == ["only"]


def test_set_submodule():
    m = nn.Sequential(nn.Sequential(nn.Linear(2, 2)), nn.ReLU())
    m.set_submodule("0.0", nn.Identity())
    assert isinstance(m[0][0], nn.Identity)
    m.set_submodule("0.extra", nn.Tanh())
    assert isinstance(m[0].extra, nn.Tanh)
    with pytest.raises(AttributeError, match="has no attribute `missing`"):
        m.set_submodule("0.missing", nn.ReLU(), strict=True)
    with pytest.raises(ValueError, match="not an nn.Module"):
        m.set_submodule("1", 3)
    with pytest.raises(ValueError, match="without a target name"):
        m.set_submodule("", nn.ReLU())


# ---------------------------------------------------------------------- torch parity
@pytest.fixture
def torch():
    return pytest.importorskip("torch", reason="torch parity tests need torch")


def test_torch_parity_metadata(torch):
    mine, theirs = _net(pve).state_dict(), _net(torch).state_dict()
    assert mine._metadata == theirs._metadata


def test_torch_parity_custom_modules(torch):
    for lib in (pve, torch):
        Counter, Renamed = _custom_classes(lib)
        c = Counter()
        c.calls = 3
        d = Counter()
        d.load_state_dict(c.state_dict())
        assert d.calls == 3 and list(c.state_dict()) == ["_extra_state", "lin.weight", "lin.bias"]
        m = lib.nn.Sequential(Renamed())
        old = OrderedDict([("0.gain", np.array([2.0, 5.0], np.float32) if lib is pve
                            else torch.tensor([2.0, 5.0]))])
        old._metadata = OrderedDict([("0", {"version": 2})])
        m.load_state_dict(old)
        assert m[0].scale.detach().numpy().tolist() == [2.0, 5.0]


def test_torch_parity_hook_calls(torch):
    logs = {}
    for lib in (pve, torch):
        log = logs[lib.__name__] = []
        m = _net(lib)
        for name, mod in m.named_children():
            mod.register_load_state_dict_pre_hook(
                lambda mod, sd, prefix, md, strict, mk, uk, em, log=log:
                log.append(("pre", prefix, sorted(k for k in sd if k.startswith(prefix)),
                            {k: v for k, v in md.items() if k == "version"})))
            mod.register_load_state_dict_post_hook(
                lambda mod, keys, log=log: log.append(("post", list(keys.missing_keys),
                                                       list(keys.unexpected_keys))))
            mod.register_state_dict_pre_hook(lambda mod, prefix, kv, log=log:
                                             log.append(("save", prefix, kv)))
        sd = m.state_dict()
        sd["4.extra"] = sd["4.bias"]
        del sd["0.bias"]
        m.load_state_dict(sd, strict=False)
    assert logs["pyvision_engine"] == logs["torch"]
