"""Tensor ops and their gradients against torch itself (skipped without torch)."""

import numpy as np
import pytest

import pyvision_engine as pve

torch = pytest.importorskip("torch", reason="torch not installed: tensor parity with torch not tested")

rng = np.random.default_rng(11)

CASES = [
    ("add_broadcast", lambda a, b: a + b, [(3, 1, 4), (2, 4)]),
    ("sub_scalar", lambda a, b: 2.0 - a * b, [(3, 4), (4,)]),
    ("div", lambda a, b: a / (b * b + 1.0), [(2, 3), (2, 3)]),
    ("pow", lambda a, b: (a * a + 1.0) ** 1.5, [(5,), (1,)]),
    ("matmul_batched", lambda a, b: a @ b, [(2, 3, 4), (4, 5)]),
    ("matmul_vec", lambda a, b: a @ b, [(4,), (4, 3)]),
    ("sum_dims", lambda a, b: a.sum((0, 2), keepdim=True) * b.sum(), [(2, 3, 4), (3,)]),
    ("mean_dim", lambda a, b: a.mean(-1) + b.mean(), [(3, 4), (2,)]),
    ("max_dim", lambda a, b: a.max(dim=1).values * b.max(), [(3, 5), (4,)]),
    ("min_dim_keep", lambda a, b: a.min(0, keepdim=True).values + b, [(3, 5), (1, 5)]),
    ("permute_reshape", lambda a, b: a.permute(2, 0, 1).reshape(4, -1) @ b, [(2, 3, 4), (6, 2)]),
    ("transpose_t", lambda a, b: a.transpose(0, 1).t() * b, [(3, 4), (3, 4)]),
    ("index_adv", lambda a, b: a[[0, 2, 2]] * b[1:, None], [(3, 4), (4,)]),
    # integers are applied before array indices (not as numpy's broadcast-first rule)
    ("index_int_slice_array", lambda a, b: a[0, :, [3, 0, 0]] * b[:, 1], [(2, 3, 4), (3, 3)]),
    ("index_slice_array_int_array", lambda a, b: a[:, [0, 1], 0, [1, 2]] + b,
     [(3, 2, 3, 4), (3, 2)]),
    ("index_int_ellipsis_array", lambda a, b: a[1, ..., [2, 0]] + b, [(2, 3, 4), (3, 2)]),
    ("flatten_expand", lambda a, b: a.flatten(1) + b.expand(2, 6), [(2, 2, 3), (1, 6)]),
    ("exp_log_sqrt", lambda a, b: (a.exp() + b.abs().sqrt() + (b * b + 1.0).log()), [(3,), (3,)]),
    ("unsqueeze_squeeze", lambda a, b: a.unsqueeze(1).squeeze(1) * b.squeeze(), [(4,), (1, 4)]),
    ("clamp", lambda a, b: a.clamp(-0.5, 0.7) * b, [(3, 4), (4,)]),
    ("clamp_min", lambda a, b: a.clamp(min=0.1) + b, [(5,), (5,)]),
    ("var_std", lambda a, b: a.var(1) + b.std() + a.var(0, unbiased=False).sum(), [(3, 4), (6,)]),
    ("norm", lambda a, b: a.norm() * b.norm(p=1) + a.norm(dim=1).sum(), [(3, 4), (5,)]),
    ("split_chunk", lambda a, b: a.split(2, dim=1)[1].sum() * b.chunk(3)[2], [(3, 5), (7,)]),
    ("repeat", lambda a, b: a.repeat(2, 3) * b, [(2, 3), (4, 9)]),
    ("repeat_lead", lambda a, b: a.repeat(2, 1, 2) + b, [(3, 2), (2, 3, 4)]),
    ("masked_fill", lambda a, b: a.masked_fill(b > 0, 2.5) * b, [(3, 4), (3, 4)]),
    ("topk", lambda a, b: a.topk(2, dim=1).values * b, [(3, 5), (1, 2)]),
    ("sort_desc", lambda a, b: a.sort(dim=0, descending=True).values + b, [(4, 3), (3,)]),
    ("softmax_method", lambda a, b: a.softmax(-1) * b + a.log_softmax(0), [(3, 4), (4,)]),
    ("sigmoid_tanh_relu", lambda a, b: a.sigmoid() + b.tanh() + (a * b).relu(), [(3,), (3,)]),
    ("mm_bmm", lambda a, b: a.bmm(b).sum(0).mm(b[0].t()), [(2, 3, 4), (2, 4, 5)]),
]


@pytest.mark.parametrize("name,fn,shapes", CASES, ids=[c[0] for c in CASES])
def test_op_and_gradients_match_torch(name, fn, shapes):
    arrays = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    p = [pve.tensor(a, requires_grad=True) for a in arrays]
    t = [torch.tensor(a, requires_grad=True) for a in arrays]
    out_p, out_t = fn(*p), fn(*t)
    assert tuple(out_p.shape) == tuple(out_t.shape)
    np.testing.assert_allclose(out_p.detach().numpy(), out_t.detach().numpy(), rtol=1e-5, atol=1e-5)
    up = rng.standard_normal(tuple(out_t.shape)).astype(np.float32)
    out_p.backward(pve.tensor(up))
    out_t.backward(torch.from_numpy(up))
    for i, (a, b) in enumerate(zip(p, t)):
        assert (a.grad is None) == (b.grad is None), f"input {i}"
        if b.grad is None:
            continue
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-4, atol=1e-5, err_msg=f"input {i}")


def test_top_level_functions_match_torch():
    a = rng.standard_normal((3, 4)).astype(np.float32)
    b = rng.standard_normal((3, 4)).astype(np.float32)
    cond = a > 0
    np.testing.assert_allclose(pve.where(pve.tensor(cond), pve.tensor(a), pve.tensor(b)).numpy(),
                               torch.where(torch.tensor(cond), torch.tensor(a), torch.tensor(b)).numpy())
    np.testing.assert_allclose(pve.stack([pve.tensor(a), pve.tensor(b)], dim=1).numpy(),
                               torch.stack([torch.tensor(a), torch.tensor(b)], dim=1).numpy())
    np.testing.assert_allclose(pve.clamp(pve.tensor(a), max=0.2).numpy(),
                               torch.clamp(torch.tensor(a), max=0.2).numpy())
    v, i = pve.topk(pve.tensor(a), 3)
    tv, ti = torch.topk(torch.tensor(a), 3)
    np.testing.assert_allclose(v.numpy(), tv.numpy())
    np.testing.assert_array_equal(i.numpy(), ti.numpy())
    assert pve.randint(5, size=(4,)).dtype == pve.int64 and pve.randn(2, 3).shape == (2, 3)
    assert bool(pve.tensor(cond).any().item()) == bool(torch.tensor(cond).any().item())
    np.testing.assert_array_equal(pve.tensor(cond).all(dim=1).numpy(), torch.tensor(cond).all(dim=1).numpy())


def test_reductions_of_ties_and_dtypes_match_torch():
    a = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]], dtype=np.float32)
    p, t = pve.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    p.max().backward()
    t.max().backward()
    np.testing.assert_array_equal(p.grad.numpy(), t.grad.numpy())
    np.testing.assert_array_equal(pve.tensor(a).argmax(1).numpy(), torch.tensor(a).argmax(1).numpy())
    np.testing.assert_array_equal(pve.tensor(a).max(1).indices.numpy(), torch.tensor(a).max(1).indices.numpy())
    ints = np.array([[1, 2], [3, 4]])
    assert (pve.tensor(ints).sum().dtype == pve.int64) and (torch.tensor(ints).sum().dtype == torch.int64)
    assert (pve.tensor(ints) / 2).dtype == pve.float32 and (torch.tensor(ints) / 2).dtype == torch.float32
    assert pve.tensor([True, False, True]).sum().item() == torch.tensor([True, False, True]).sum().item()
