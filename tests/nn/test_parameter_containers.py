"""nn.ParameterList and nn.ParameterDict: registration, indexing, dict methods,
errors and repr as torch's (the torch cases skip without torch)."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest

import pyvision_engine as pve
from pyvision_engine import nn


def _p(*shape):
    return nn.Parameter(np.arange(np.prod(shape), dtype=np.float32).reshape(shape))


def test_parameter_list_registers_in_order_and_converts_tensors():
    a, b = _p(3, 4), pve.tensor(np.ones(2, np.float32))
    pl = nn.ParameterList([a, b])
    assert len(pl) == 2 and pl[0] is a and isinstance(pl[1], nn.Parameter)
    np.testing.assert_array_equal(pl[1].detach().numpy(), np.ones(2))
    assert [name for name, _ in pl.named_parameters()] == ["0", "1"]
    assert pl[-1] is pl[1] and [p is q for p, q in zip(pl, [a, pl[1]])] == [True, True]
    c = _p(5)
    pl.append(c)
    pl += [_p(1)]
    pl.extend((_p(2),))
    assert len(pl) == 5 and pl[2] is c
    part = pl[1:4:2]
    assert type(part) is nn.ParameterList and len(part) == 2 and part[1] is pl[3]
    pl[0] = _p(7)
    assert pl[0].shape == (7,) and list(pl.state_dict()) == ["0", "1", "2", "3", "4"]


def test_parameter_list_errors():
    pl = nn.ParameterList([_p(1)])
    with pytest.raises(IndexError, match="index 1 is out of range"):
        pl[1]
    with pytest.raises(IndexError):
        pl[-2] = _p(1)
    with pytest.raises(TypeError, match="ParameterList.extend should be called with an iterable"):
        pl.extend(_p(2))
    with pytest.raises(TypeError, match="should be called with an iterable"):
        pl.extend(3)
    with pytest.raises(RuntimeError, match="ParameterList should not be called"):
        pl(1)


def test_parameter_list_in_a_module_trains():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.ws = nn.ParameterList([_p(2), _p(2)])

        def forward(self):
            return (self.ws[0] * self.ws[1]).sum()

    m = M()
    assert [n for n, _ in m.named_parameters()] == ["ws.0", "ws.1"]
    m().backward()
    np.testing.assert_array_equal(m.ws[0].grad.numpy(), m.ws[1].detach().numpy())


def test_parameter_dict_order_and_methods():
    b, a = _p(1), _p(2)
    # a plain dict is added in sorted key order, an OrderedDict in its own
    assert list(nn.ParameterDict({"b": b, "a": a}).keys()) == ["a", "b"]
    pd = nn.ParameterDict(OrderedDict([("b", b), ("a", a)]))
    assert list(pd) == ["b", "a"] and pd["b"] is b and "a" in pd and len(pd) == 2
    assert [n for n, _ in pd.named_parameters()] == ["b", "a"]
    pd["c"] = pve.tensor(np.zeros(3, np.float32))
    assert isinstance(pd["c"], nn.Parameter)
    assert list(reversed(pd)) == ["c", "a", "b"]
    assert pd.get("zz") is None and pd.get("a") is a
    assert pd.setdefault("d", _p(4)).shape == (4,) and len(pd) == 4
    assert pd.popitem()[0] == "d" and pd.pop("b") is b and list(pd) == ["a", "c"]
    copy = pd.copy()
    assert list(copy) == ["a", "c"] and copy["a"] is a
    merged = pd | nn.ParameterDict([("e", _p(1))])
    assert list(merged) == ["a", "c", "e"] and list(pd) == ["a", "c"]
    pd |= merged
    assert list(pd) == ["a", "c", "e"]
    del pd["c"]
    assert list(pd.state_dict()) == ["a", "e"]
    assert list(pd.fromkeys(["x", "y"], _p(1))) == ["x", "y"]
    pd.clear()
    assert len(pd) == 0 and list(pd.parameters()) == []


def test_parameter_dict_errors():
    pd = nn.ParameterDict()
    with pytest.raises(TypeError, match="cannot be used as a key as it is not a string"):
        pd[1] = _p(1)
    with pytest.raises(KeyError):
        pd["a.b"] = _p(1)
    with pytest.raises(TypeError, match="should be called with an iterable"):
        pd.update(3)
    with pytest.raises(ValueError, match="has length 3; 2 is required"):
        pd.update([("a", _p(1), 0)])
    with pytest.raises(RuntimeError, match="ParameterDict should not be called"):
        pd()


def test_against_torch():
    torch = pytest.importorskip("torch")
    values = [np.zeros((3, 4), np.float32), np.ones(2, np.float32)]
    mine = nn.ParameterList([nn.Parameter(values[0]), pve.tensor(values[1])]).append(3)
    theirs = torch.nn.ParameterList([torch.nn.Parameter(torch.from_numpy(values[0])),
                                     torch.from_numpy(values[1])]).append(3)
    # the same layout line by line; the dtype prints as the engine names it
    assert repr(mine) == repr(theirs).replace("torch.float32", "float32")
    assert [n for n, _ in mine.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    d = {"w": values[0], "b": values[1]}
    mine_d = nn.ParameterDict({k: nn.Parameter(v) for k, v in d.items()})
    theirs_d = torch.nn.ParameterDict({k: torch.nn.Parameter(torch.from_numpy(v))
                                       for k, v in d.items()})
    assert list(mine_d) == list(theirs_d)
    assert list(mine_d.state_dict()) == list(theirs_d.state_dict())
    for bad in (5, 1.5):
        with pytest.raises(TypeError) as mine_err:
            mine_d[bad]
        with pytest.raises(TypeError) as theirs_err:
            theirs_d[bad]
        assert str(mine_err.value) == str(theirs_err.value)
