"""nn.Module: registration, traversal, state_dict rules, modes, hooks, the arena."""

from collections import OrderedDict

import numpy as np
import pytest

import pyvision_engine as pve
from pyvision_engine import nn


class TwoLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 8)
        self.fc2 = nn.Linear(8, 3)
        self.scale = nn.Parameter(np.ones(1, dtype=np.float32))
        self.register_buffer("steps", pve.zeros(1, dtype=pve.int64))
        self.register_buffer("scratch", pve.zeros(2), persistent=False)

    def forward(self, x):
        return self.fc2(self.fc1(x)) * self.scale


def test_registration_and_traversal_order():
    m = TwoLayer()
    assert [n for n, _ in m.named_parameters()] == ["scale", "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    assert list(m.state_dict()) == ["scale", "steps", "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    assert [n for n, _ in m.named_buffers()] == ["steps", "scratch"]
    assert [n for n, _ in m.named_modules()] == ["", "fc1", "fc2"]
    assert len(list(m.children())) == 2
    assert m.num_parameters() == 1 + 4 * 8 + 8 + 8 * 3 + 3


def test_shared_parameter_listed_once():
    m = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    m[1].weight = m[0].weight
    assert len(list(m.parameters())) == 3


def test_state_dict_round_trip_in_place_with_numpy_values():
    a, b = TwoLayer(), TwoLayer()
    weight_before = b.fc1.weight
    b.load_state_dict({k: v.numpy() for k, v in a.state_dict().items()})
    assert b.fc1.weight is weight_before  # copied into, not replaced
    for k, v in a.state_dict().items():
        np.testing.assert_array_equal(b.state_dict()[k].numpy(), v.numpy())


def test_load_state_dict_strict_errors():
    m = TwoLayer()
    sd = {k: v.numpy().copy() for k, v in m.state_dict().items()}
    del sd["fc1.bias"]
    sd["extra"] = np.zeros(1)
    with pytest.raises(RuntimeError, match=r'Missing key\(s\).*"fc1.bias"') as info:
        m.load_state_dict(sd)
    assert "Unexpected key(s)" in str(info.value)
    assert isinstance(info.value, ValueError)
    result = m.load_state_dict(sd, strict=False)
    assert result.missing_keys == ["fc1.bias"] and result.unexpected_keys == ["extra"]
    # torch's repr of the result, and its tuple form
    assert repr(result) == "_IncompatibleKeys(missing_keys=['fc1.bias'], unexpected_keys=['extra'])"
    assert tuple(result) == (["fc1.bias"], ["extra"])
    assert repr(TwoLayer().load_state_dict(TwoLayer().state_dict())) == "<All keys matched successfully>"
    sd = {k: v.numpy() for k, v in m.state_dict().items()}
    sd["fc2.weight"] = np.zeros((4, 4), dtype=np.float32)
    with pytest.raises(RuntimeError, match=r"size mismatch for fc2.weight.*\(4, 4\).*\(3, 8\)"):
        m.load_state_dict(sd)


def test_train_eval_propagate():
    m = TwoLayer()
    m.eval()
    assert not m.training and not m.fc1.training
    m.train()
    assert m.fc2.training


def test_zero_grad_and_requires_grad():
    m = TwoLayer()
    m(pve.ones(2, 4)).sum().backward()
    assert m.fc1.weight.grad is not None
    m.zero_grad(set_to_none=False)
    assert np.all(m.fc1.weight.grad.numpy() == 0)
    m.zero_grad()
    assert m.fc1.weight.grad is None
    m.requires_grad_(False)
    assert not m(pve.ones(1, 4)).requires_grad


def test_sequential_and_module_list():
    seq = nn.Sequential(nn.Linear(3, 4), nn.Identity(), nn.Linear(4, 2))
    assert len(seq) == 3 and isinstance(seq[-1], nn.Linear)
    assert seq(pve.ones(5, 3)).shape == (5, 2)
    assert isinstance(seq[:2], nn.Sequential) and len(seq[:2]) == 2
    named = nn.Sequential(OrderedDict([("a", nn.Linear(2, 2)), ("b", nn.Flatten())]))
    assert list(named.state_dict()) == ["a.weight", "a.bias"]
    ml = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    assert len(list(ml.parameters())) == 6 and list(ml.state_dict())[0] == "0.weight"
    with pytest.raises(IndexError):
        seq[3]


def test_assignment_rules():
    m = TwoLayer()
    with pytest.raises(TypeError, match="parameter 'scale'"):
        m.scale = pve.ones(1)
    m.scale = None
    assert "scale" not in dict(m.named_parameters())
    with pytest.raises(AttributeError):
        m.does_not_exist


def test_forward_hooks():
    m = nn.Linear(2, 2)
    seen = []
    handle = m.register_forward_hook(lambda mod, args, out: seen.append(out.shape))
    m(pve.ones(3, 2))
    handle.remove()
    m(pve.ones(3, 2))
    assert seen == [(3, 2)]


def test_repr_lists_children():
    text = repr(nn.Sequential(nn.Linear(2, 3)))
    assert "(0): Linear(in_features=2, out_features=3, bias=True)" in text


def test_to_flat_puts_parameters_and_grads_in_one_arena():
    m = TwoLayer()
    x = pve.tensor(np.random.default_rng(0).standard_normal((5, 4)))
    expected = m(x).detach().numpy().copy()
    arena = m.to_flat()
    assert len(arena) == 5
    for p, (start, size) in zip(arena.params, arena.offsets):
        assert np.shares_memory(p.detach().numpy(), arena.data)
        assert start % 16 == 0  # 64-byte aligned slots
    assert arena.data.ctypes.data % 64 == 0
    np.testing.assert_array_equal(m(x).detach().numpy(), expected)  # values preserved
    m(x).sum().backward()
    assert arena.owns_all_grads()
    grads_in_arena = [arena.grad[s:s + n] for s, n in arena.offsets]
    for p, g in zip(arena.params, grads_in_arena):
        np.testing.assert_array_equal(p.grad.numpy().ravel(), g)
    m(x).sum().backward()  # accumulates in place, in the arena
    for p, g in zip(arena.params, grads_in_arena):
        np.testing.assert_array_equal(p.grad.numpy().ravel(), g)
    arena.zero_grad(set_to_none=False)
    assert not arena.grad.any() and arena.owns_all_grads()
    # padding between parameters stays zero
    mask = np.ones(arena.size, dtype=bool)
    for s, n in arena.offsets:
        mask[s:s + n] = False
    assert not arena.data[mask].any()


def test_load_state_dict_keeps_arena_views():
    m = TwoLayer()
    arena = m.to_flat()
    other = TwoLayer()
    m.load_state_dict(other.state_dict())
    np.testing.assert_array_equal(m.fc1.weight.detach().numpy(), other.fc1.weight.detach().numpy())
    assert np.shares_memory(m.fc1.weight.detach().numpy(), arena.data)
