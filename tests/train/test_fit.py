"""pve.train: bit-identical resume (also after SIGKILL), callbacks, evaluate and predict
against numpy computations."""

import textwrap

import numpy as np
import pytest

import pyvision_engine as pve
from pyvision_engine import nn
from pyvision_engine.data import DataLoader, TensorDataset
from pyvision_engine.train import EarlyStopping, ModelCheckpoint, evaluate, fit, predict
from subprocess_env import run_python

# The script below is shared by the in-process tests and the subprocess (kill) test.
SETUP = textwrap.dedent("""
    import numpy as np
    import pyvision_engine as pve
    from pyvision_engine import nn
    from pyvision_engine.data import DataLoader
    from pyvision_engine.data.datasets import Digits
    from pyvision_engine.data.transforms import BatchAugment

    def make_run(lr=0.05):
        pve.manual_seed(0)
        aug = BatchAugment(Digits.MEAN, Digits.STD, crop_size=8, padding=1, flip_p=0.0)
        train = DataLoader(Digits(True, transform=aug), batch_size=64, shuffle=True, num_workers=1)
        val = DataLoader(Digits(False, transform=BatchAugment(Digits.MEAN, Digits.STD)), batch_size=128)
        model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.Linear(32, 10))
        if hasattr(pve, "optim"):
            opt = pve.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
        else:
            opt = SimpleSGD(model.parameters(), lr)
        loss = nn.CrossEntropyLoss() if hasattr(nn, "CrossEntropyLoss") else cross_entropy
        return model, train, val, opt, loss

    class SimpleSGD:
        # stand-in until pve.optim is available; torch's state_dict layout
        def __init__(self, params, lr):
            self.params = list(params)
            self.param_groups = [{"lr": lr, "params": self.params}]
        def zero_grad(self):
            for p in self.params:
                p.grad = None
        def step(self):
            with pve.no_grad():
                for p in self.params:
                    p -= self.param_groups[0]["lr"] * p.grad
        def state_dict(self):
            return {"state": {}, "param_groups": [{"lr": self.param_groups[0]["lr"],
                                                   "params": list(range(len(self.params)))}]}
        def load_state_dict(self, s):
            self.param_groups[0]["lr"] = s["param_groups"][0]["lr"]

    def cross_entropy(out, y):
        z = out - pve.tensor(out.detach().numpy().max(axis=1, keepdims=True))
        logp = z - z.exp().sum(1, keepdim=True).log()
        onehot = np.zeros(out.shape, np.float32)
        onehot[np.arange(len(y)), y.numpy()] = 1
        return -(logp * pve.tensor(onehot)).sum() / len(y)
""")
namespace = {}
exec(SETUP, namespace)
make_run = namespace["make_run"]


def weights(model):
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}


def test_resume_is_bit_identical(tmp_path):
    model, train, val, opt, loss = make_run()
    full = fit(model, train, opt, loss, epochs=3, val_loader=val, progress=False)
    reference = weights(model)

    model, train, val, opt, loss = make_run()
    fit(model, train, opt, loss, epochs=1, val_loader=val, progress=False, checkpoint=str(tmp_path / "c"))
    model, train, val, opt, loss = make_run()   # a fresh process would start like this
    resumed = fit(model, train, opt, loss, epochs=3, val_loader=val, progress=False,
                  resume=str(tmp_path / "c"))
    for k, v in weights(model).items():
        np.testing.assert_array_equal(v, reference[k], err_msg=k)
    assert [h["loss"] for h in resumed] == [h["loss"] for h in full]
    assert full[-1]["val_accuracy"] > max(full[0]["val_accuracy"], 0.5)  # it learns


def test_kill_then_resume_equals_uninterrupted_run(tmp_path):
    ckpt, out_full, out_resumed = (str(tmp_path / n) for n in ("c.ckpt", "full.st", "resumed.st"))
    killer = textwrap.dedent(f"""
        import os, signal
        from pyvision_engine.train import Callback, fit
        class Kill(Callback):
            def on_epoch_end(self, state, epoch, logs):
                if epoch == 1:   # epoch 2 finished but not yet checkpointed: die hard
                    os.kill(os.getpid(), signal.SIGKILL)
        model, train, val, opt, loss = make_run()
        fit(model, train, opt, loss, epochs=3, progress=False, checkpoint={ckpt!r}, callbacks=[Kill()])
    """)
    proc = run_python(["-c", SETUP + killer], timeout=120)
    assert proc.returncode != 0  # killed
    resume = textwrap.dedent(f"""
        from pyvision_engine.train import fit
        model, train, val, opt, loss = make_run()
        fit(model, train, opt, loss, epochs=3, progress=False, checkpoint={ckpt!r}, resume={ckpt!r})
        pve.save(model.state_dict(), {out_resumed!r})
        model, train, val, opt, loss = make_run()
        fit(model, train, opt, loss, epochs=3, progress=False)
        pve.save(model.state_dict(), {out_full!r})
    """)
    proc = run_python(["-c", SETUP + resume], timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert pve.load(ckpt)["epoch"] == 3
    full, resumed = pve.load(out_full), pve.load(out_resumed)
    for k in full:
        np.testing.assert_array_equal(full[k].numpy(), resumed[k].numpy(), err_msg=k)


def test_early_stopping_and_best_checkpoint(tmp_path):
    model, train, val, opt, loss = make_run(lr=0.0)   # nothing improves after the first epoch
    best = ModelCheckpoint(str(tmp_path / "best.safetensors"), monitor="val_accuracy")
    stop = EarlyStopping(monitor="val_loss", patience=2)
    history = fit(model, train, opt, loss, epochs=10, val_loader=val, callbacks=[best, stop],
                  progress=False)
    assert len(history) == 3 and stop.stopped_epoch == 2
    assert best.saved == [str(tmp_path / "best.safetensors")] and best.best_epoch == 0
    model.load_state_dict(pve.load(tmp_path / "best.safetensors"))


def test_progress_bar_shows_loss_accuracy_and_throughput(capsys):
    model, train, val, opt, loss = make_run()
    fit(model, train, opt, loss, epochs=1, progress=True)
    err = capsys.readouterr().err
    assert "loss=" in err and "acc=" in err and "img_s=" in err and "epoch 1/1" in err


def test_evaluate_against_numpy():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((50, 7)).astype(np.float32)
    targets = rng.integers(0, 7, 50)
    loader = DataLoader(TensorDataset(logits, targets), batch_size=16)
    result = evaluate(lambda x: x, loader)
    pred = logits.argmax(1)
    assert result["n"] == 50
    assert result["accuracy"] == pytest.approx(np.mean(pred == targets))
    top5 = np.argsort(-logits, axis=1)[:, :5]
    assert result["top5"] == pytest.approx(np.mean([t in row for t, row in zip(targets, top5)]))
    cm = np.zeros((7, 7), np.int64)
    for t, p in zip(targets, pred):
        cm[t, p] += 1
    np.testing.assert_array_equal(result["confusion_matrix"], cm)


def test_predict_probabilities_and_topk():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((10, 4)).astype(np.float32)
    model = nn.Linear(4, 6)
    probs = predict(model, x, batch_size=3)
    logits = x @ model.weight.detach().numpy().T + model.bias.detach().numpy()
    e = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(probs, e / e.sum(1, keepdims=True), rtol=1e-5, atol=1e-6)
    p3, idx = predict(model, x, topk=3)
    np.testing.assert_array_equal(idx, np.argsort(-probs, axis=1, kind="stable")[:, :3])
    assert np.all(np.diff(p3, axis=1) <= 0)
    assert predict(model, DataLoader(TensorDataset(x), batch_size=4)).shape == (10, 6)


def test_fit_argument_errors():
    model, train, val, opt, loss = make_run()
    with pytest.raises(ValueError, match="epochs"):
        fit(model, train, opt, loss, epochs=-1)
    with pytest.raises(ValueError, match="clip_grad_norm"):
        fit(model, train, opt, loss, clip_grad_norm=0)
    with pytest.raises(TypeError, match="optimizer"):
        fit(model, train, object(), loss)
    with pytest.raises(TypeError, match="Callback"):
        fit(model, train, opt, loss, callbacks=[object()])


def test_resume_is_bit_identical_with_adam_lookahead_onecycle_and_clipping(tmp_path):
    from pyvision_engine.optim import Adam, Lookahead
    from pyvision_engine.optim.lr_scheduler import OneCycleLR

    def run(epochs, **kw):
        model, train, val, _, loss = make_run()
        inner = Adam(model.parameters(), lr=3e-3)
        opt = Lookahead(inner, k=3, alpha=0.5)
        sched = OneCycleLR(inner, max_lr=3e-3, total_steps=3 * len(train))
        fit(model, train, opt, loss, epochs=epochs, scheduler=sched, scheduler_step="batch",
            clip_grad_norm=1.0, progress=False, **kw)
        return weights(model), opt.state_dict()

    reference, ref_state = run(3)
    run(2, checkpoint=str(tmp_path / "c"))
    resumed, state = run(3, resume=str(tmp_path / "c"))
    for k in reference:
        np.testing.assert_array_equal(resumed[k], reference[k], err_msg=k)
    ckpt = pve.load(tmp_path / "c")
    assert set(ckpt) >= {"model", "optimizer", "scheduler", "epoch", "rng", "metrics", "extra"}


def test_resume_with_restore_best_weights_equals_uninterrupted_run(tmp_path):
    # monitor the training loss in 'max' mode: the first epoch is the best, so both runs must
    # end with epoch 1's weights, which the resumed run only has from the checkpoint.
    def stopper():
        return EarlyStopping(monitor="loss", mode="max", patience=100, restore_best_weights=True)

    model, train, val, opt, loss = make_run()
    after_first = {}

    class Grab(pve.train.Callback):
        def on_epoch_end(self, state, epoch, logs):
            if epoch == 0:
                after_first.update(weights(state.model))

    fit(model, train, opt, loss, epochs=3, callbacks=[stopper(), Grab()], progress=False)
    reference = weights(model)
    for k in reference:
        np.testing.assert_array_equal(reference[k], after_first[k], err_msg=k)

    ckpt = str(tmp_path / "c")
    model, train, val, opt, loss = make_run()
    fit(model, train, opt, loss, epochs=2, callbacks=[stopper()], progress=False, checkpoint=ckpt)
    saved = pve.load(ckpt)["extra"]["callbacks"][0]["best_weights"]
    assert all(isinstance(v, pve.Tensor) for v in saved.values())   # tensors, not JSON or pickle
    model, train, val, opt, loss = make_run()
    es = stopper()
    fit(model, train, opt, loss, epochs=3, callbacks=[es], progress=False, resume=ckpt)
    assert es.best_epoch == 0
    for k, v in weights(model).items():
        np.testing.assert_array_equal(v, reference[k], err_msg=k)


def test_onecycle_that_cannot_cover_the_epochs_fails_before_training(tmp_path):
    from pyvision_engine.optim.lr_scheduler import OneCycleLR

    def run(epochs, **kw):
        model, train, val, opt, loss = make_run()
        sched = OneCycleLR(opt, max_lr=0.05, total_steps=2 * len(train))
        fit(model, train, opt, loss, epochs=epochs, scheduler=sched, scheduler_step="batch",
            progress=False, **kw)
        return model

    ckpt = str(tmp_path / "c")
    run(2, checkpoint=ckpt)
    before = pve.load(ckpt)
    with pytest.raises(ValueError, match=r"OneCycleLR.*at most 2 epochs"):
        run(3, checkpoint=ckpt, resume=ckpt)
    after = pve.load(ckpt)   # nothing was trained, nothing was written
    assert after["epoch"] == 2
    for k, v in before["model"].items():
        np.testing.assert_array_equal(after["model"][k].numpy(), v.numpy(), err_msg=k)
    with pytest.raises(ValueError, match="at most 2 epochs"):
        run(3)   # a fresh run is checked too (torch would fail part-way through epoch 3)


def test_checkpoint_metadata_is_saved_and_kept_on_resume(tmp_path):
    ckpt = str(tmp_path / "c")
    model, train, val, opt, loss = make_run()
    fit(model, train, opt, loss, epochs=1, progress=False, checkpoint=ckpt,
        checkpoint_metadata={"pve_model": "x"})
    assert pve.load(ckpt)["extra"]["metadata"] == {"pve_model": "x"}
    model, train, val, opt, loss = make_run()
    fit(model, train, opt, loss, epochs=2, progress=False, checkpoint=ckpt, resume=ckpt)
    assert pve.load(ckpt)["extra"]["metadata"] == {"pve_model": "x"}
