"""Gradient hooks: Tensor.register_hook / register_post_accumulate_grad_hook and
Module.register_full_backward_hook / register_full_backward_pre_hook, against
gradients worked out by hand (torch-free) and against torch (skipped without it)."""

import numpy as np
import pytest

import pyvision_engine as pve

nn = pve.nn


def test_leaf_hook_runs_once_with_the_summed_gradient_and_can_replace_it():
    x = pve.tensor(np.arange(4, dtype=np.float32), requires_grad=True)
    seen = []

    def hook(g):
        seen.append(g.numpy().copy())
        return g * 10

    x.register_hook(hook)
    ((x * 2).sum() + (x * 3).sum()).backward()  # two uses: d/dx = 2 + 3
    assert len(seen) == 1
    np.testing.assert_array_equal(seen[0], np.full(4, 5.0, np.float32))
    np.testing.assert_array_equal(x.grad.numpy(), np.full(4, 50.0, np.float32))


def test_non_leaf_hook_replaces_the_gradient_flowing_back_and_what_retain_grad_keeps():
    x = pve.tensor(np.arange(4, dtype=np.float32), requires_grad=True)
    z = x * 2
    z.retain_grad()
    z.register_hook(lambda g: g * 10)
    (z * z).sum().backward()  # d/dz = 2z = 4x, times 10 by the hook; d/dx = 2 * that
    xs = np.arange(4, dtype=np.float32)
    np.testing.assert_array_equal(z.grad.numpy(), 40 * xs)
    np.testing.assert_array_equal(x.grad.numpy(), 80 * xs)


def test_hooks_run_in_order_and_a_removed_hook_does_not_run():
    x = pve.tensor(np.ones(3, np.float32), requires_grad=True)
    calls = []
    h1 = x.register_hook(lambda g: calls.append("first") or g + 1)
    x.register_hook(lambda g: calls.append(("second", float(g.numpy()[0]))))
    x.sum().backward()  # the root is the leaf's only use
    assert calls == ["first", ("second", 2.0)]
    np.testing.assert_array_equal(x.grad.numpy(), np.full(3, 2.0, np.float32))
    h1.remove()
    calls.clear()
    x.grad = None
    with x.register_hook(lambda g: g * 0):  # a handle is a context manager
        (x * 1).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.zeros(3, np.float32))
    assert calls == [("second", 1.0)]


def test_hook_errors():
    with pytest.raises(RuntimeError, match="doesn't require gradient"):
        pve.tensor(np.ones(2, np.float32)).register_hook(lambda g: g)
    x = pve.tensor(np.ones(2, np.float32), requires_grad=True)
    with pytest.raises(RuntimeError, match="non-leaf"):
        (x * 2).register_post_accumulate_grad_hook(lambda t: None)
    x.register_hook(lambda g: pve.tensor(np.ones(3, np.float32)))
    with pytest.raises(RuntimeError, match="changed the size"):
        (x * 2).sum().backward()
    scale = _Scale(2.0)
    scale.register_full_backward_hook(lambda m, gi, go: gi[0])  # not a tuple
    with pytest.raises(RuntimeError, match="invalid number of grad_input"):
        scale(pve.tensor(np.ones(2, np.float32), requires_grad=True)).sum().backward()


def test_post_accumulate_grad_hook_sees_the_updated_grad():
    x = pve.tensor(np.ones(2, np.float32), requires_grad=True)
    seen = []
    x.register_post_accumulate_grad_hook(lambda t: seen.append(t.grad.numpy().copy()))
    (x * 3).sum().backward()
    (x * 3).sum().backward()
    np.testing.assert_array_equal(np.array(seen), [[3, 3], [6, 6]])


class _Scale(nn.Module):
    def __init__(self, k):
        super().__init__()
        self.k = k

    def forward(self, x):
        return x * self.k


def test_full_backward_hooks_by_hand():
    scale = _Scale(3.0)
    log = []
    scale.register_full_backward_pre_hook(
        lambda m, go: log.append(("pre", go[0].numpy().copy())) or (go[0] * 2,))

    def full(m, gi, go):
        log.append(("full", gi[0].numpy().copy(), go[0].numpy().copy()))
        return (gi[0] + 1,)

    scale.register_full_backward_hook(full)
    x = pve.tensor(np.ones(2, np.float32), requires_grad=True)
    (scale(x) * 5).sum().backward()
    # grad_output 5, doubled by the pre-hook to 10; grad_input 3 * 10 = 30, plus 1.
    assert log[0][0] == "pre"
    np.testing.assert_array_equal(log[0][1], [5, 5])
    np.testing.assert_array_equal(log[1][1], [30, 30])
    np.testing.assert_array_equal(log[1][2], [10, 10])
    np.testing.assert_array_equal(x.grad.numpy(), [31, 31])


def test_full_backward_hook_without_input_gradient_gets_none():
    conv = nn.Conv2d(1, 1, 1, bias=False)
    got = []
    conv.register_full_backward_hook(lambda m, gi, go: got.append((gi, go[0].shape)))
    conv(np.ones((1, 1, 2, 2), np.float32)).sum().backward()
    assert got == [((None,), (1, 1, 2, 2))]
    np.testing.assert_array_equal(conv.weight.grad.numpy(), np.full((1, 1, 1, 1), 4.0, np.float32))


def test_full_backward_hook_on_a_module_with_two_gradient_inputs_is_a_clear_error():
    class Add(nn.Module):
        def forward(self, a, b):
            return a + b

    add = Add()
    add.register_full_backward_hook(lambda m, gi, go: None)
    a = pve.tensor(np.ones(2, np.float32), requires_grad=True)
    with pytest.raises(NotImplementedError, match="more than one input"):
        add(a, a * 2)


def test_full_backward_hooks_match_torch():
    torch = pytest.importorskip("torch", reason="torch parity needs torch")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    tm = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
                             torch.nn.Conv2d(4, 2, 3))
    pm = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 3))
    pm.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})

    def run(model, xt):
        log = []
        def full(m, gi, go):
            log.append([None if g is None else g.detach().numpy().copy() for g in gi + go])
        model[0].register_full_backward_hook(full)
        model[2].register_full_backward_hook(full)
        model[1].register_full_backward_pre_hook(lambda m, go: (go[0] * 2,))
        model[1].register_full_backward_hook(lambda m, gi, go: (gi[0] * 0.5,))
        model(xt).sum().backward()
        return log, xt.grad.numpy(), model[0].weight.grad.detach().numpy()

    mine = run(pm, pve.tensor(x, requires_grad=True))
    theirs = run(tm, torch.tensor(x, requires_grad=True))
    assert len(mine[0]) == len(theirs[0]) == 2
    for a_row, b_row in zip(mine[0], theirs[0]):
        for a, b in zip(a_row, b_row):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(mine[1], theirs[1], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(mine[2], theirs[2], rtol=1e-4, atol=1e-4)


def test_grad_cam_on_an_eval_resnet_matches_torch():
    torch = pytest.importorskip("torch", reason="torch parity needs torch")
    from pyvision_engine.benchmarks.train import paired_models
    x = np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32)
    mine, theirs = paired_models("resnet18", num_classes=1000)  # same weights
    mine.eval()
    theirs.eval()

    def cam(model, xt):
        acts, grads = {}, {}
        model.layer4.register_forward_hook(lambda m, i, o: acts.__setitem__("a", o))
        model.layer4.register_full_backward_hook(lambda m, gi, go: grads.__setitem__("g", go[0]))
        model(xt)[0, 3].backward()
        a, g = acts["a"].detach().numpy(), grads["g"].detach().numpy()
        return (g.mean(axis=(2, 3), keepdims=True) * a).sum(1)

    ours = cam(mine, pve.tensor(x))
    ref = cam(theirs, torch.tensor(x))
    np.testing.assert_allclose(ours, ref, rtol=1e-3, atol=1e-4 * np.abs(ref).max())
