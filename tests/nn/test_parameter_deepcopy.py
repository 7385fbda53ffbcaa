"""copy.deepcopy of nn.Parameter as torch's Parameter.__deepcopy__: values copied,
requires_grad kept, the gradient dropped (clones of a trained layer start clean)."""

import copy

import numpy as np
import pytest

import pyvision_engine as pve
from pyvision_engine import nn


def test_parameter_deepcopy_copies_values_and_drops_the_gradient():
    p = nn.Parameter(pve.tensor([1.0, 2.0]))
    (p * p).sum().backward()
    q = copy.deepcopy(p)
    assert type(q) is nn.Parameter and q.requires_grad and q.grad is None
    np.testing.assert_array_equal(q.detach().numpy(), [1.0, 2.0])
    q.detach().numpy()[0] = 5.0
    assert p.detach().numpy()[0] == 1.0  # its own values
    frozen = copy.deepcopy(nn.Parameter(pve.ones(2), requires_grad=False))
    assert not frozen.requires_grad


def test_a_tensor_keeps_its_gradient_and_a_model_copy_shares_parameters_once():
    t = pve.ones(2, requires_grad=True)
    t.sum().backward()
    np.testing.assert_array_equal(copy.deepcopy(t).grad.numpy(), [1.0, 1.0])
    m = nn.Linear(3, 2)
    tied = nn.ModuleDict({"a": m, "b": m})
    c = copy.deepcopy(tied)
    assert c["a"].weight is c["b"].weight  # the memo: one copy of a shared parameter


def test_uninitialized_parameters_deepcopy_as_placeholders():
    m = nn.LazyLinear(3)
    c = copy.deepcopy(m)
    assert isinstance(c.weight, nn.UninitializedParameter) and c.weight is not m.weight
    c(pve.ones(2, 4))
    assert c.weight.shape == (3, 4) and isinstance(m.weight, nn.UninitializedParameter)


def test_torch_parity_of_parameter_deepcopy():
    torch = pytest.importorskip("torch", reason="torch is the reference for Parameter.__deepcopy__")
    tp = torch.nn.Parameter(torch.ones(2))
    tp.sum().backward()
    p = nn.Parameter(pve.ones(2))
    p.sum().backward()
    assert (copy.deepcopy(tp).grad is None) == (copy.deepcopy(p).grad is None)
