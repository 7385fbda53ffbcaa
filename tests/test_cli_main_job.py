"""pyvision-engine train / eval / predict / bench: end to end in subprocesses, and user errors
as one clear line with a non-zero exit and no traceback."""

import json

import numpy as np
import pytest

import pyvision_engine as pve
from subprocess_env import run_python

HAS_LAYERS = all(hasattr(pve.nn, n) for n in ("Conv2d", "BatchNorm2d", "MaxPool2d", "CrossEntropyLoss",
                                              "AdaptiveAvgPool2d", "Dropout"))


def cli(*args, timeout=300):
    return run_python(["-m", "pyvision_engine", *args], timeout=timeout)


def assert_one_line_error(proc, *fragments):
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(lines) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], proc.stderr


def test_train_errors_are_one_line(tmp_path):
    assert_one_line_error(cli("train", "--dataset", "mnist", str(tmp_path / "nope")),
                          "directory not found", "nope")
    assert_one_line_error(cli("train", "--model", "vgg99"), "unknown model 'vgg99'")
    assert_one_line_error(cli("train", "--optimizer", "lbfgs"), "unknown optimizer 'lbfgs'", "adam")
    assert_one_line_error(cli("train", "--dataset", "imagenet"), "unknown dataset")
    assert_one_line_error(cli("train", "--dataset", "cifar10"), "needs a directory")
    assert_one_line_error(cli("train", "--dataset", "cifar10", str(tmp_path)), "CIFAR10", "missing")


def test_corrupt_checkpoint_and_weights_are_one_line(tmp_path):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"\x00" * 5)
    assert_one_line_error(cli("train", "--resume", str(bad)), "bad.ckpt")
    assert_one_line_error(cli("train", "--resume", str(tmp_path / "missing.ckpt")), "not found")
    assert_one_line_error(cli("eval", "--weights", str(bad)), "bad.ckpt")
    pickled = tmp_path / "model.safetensors"
    pickled.write_bytes(b"\x80\x04\x95" + b"\x00" * 40)
    assert_one_line_error(cli("predict", "--weights", str(pickled), "x.png"), "pickle")


def test_bench_lists_the_new_benchmarks():
    assert_one_line_error(cli("bench", "nope"), "train", "infer")


@pytest.mark.skipif(not HAS_LAYERS, reason="needs the conv/layers modules")
def test_train_eval_predict_end_to_end(tmp_path):
    out = tmp_path / "digits.safetensors"
    ckpt = tmp_path / "last.ckpt"
    proc = cli("train", "--epochs", "2", "--quiet", "--out", str(out), "--checkpoint", str(ckpt),
               "--threads", "1", "--scheduler", "none")
    assert proc.returncode == 0, proc.stderr
    assert "test accuracy" in proc.stdout and "train images/s" in proc.stdout
    assert out.is_file() and ckpt.is_file()
    # resuming the finished run to 3 epochs trains exactly one more epoch (a constant learning
    # rate: a onecycle schedule is fixed to the epochs it was made for)
    proc = cli("train", "--epochs", "3", "--quiet", "--resume", str(ckpt), "--checkpoint", str(ckpt),
               "--scheduler", "none")
    assert proc.returncode == 0, proc.stderr
    assert "resumed from" in proc.stdout and "epoch 3/3" in proc.stdout and "epoch 2/3" not in proc.stdout
    proc = cli("eval", "--weights", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "top-1" in proc.stdout and "confusion matrix" in proc.stdout
    from pyvision_engine.data.datasets import Digits

    test = Digits(train=False)
    np.save(tmp_path / "x.npy", test.data[:3, :, :, 0])
    proc = cli("predict", "--weights", str(out), str(tmp_path / "x.npy"), "--topk", "2")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 3 and all("x.npy[" in line and "(" in line for line in lines)
    Image = pytest.importorskip("PIL.Image")
    Image.fromarray(test.data[0, :, :, 0]).resize((32, 32)).save(tmp_path / "d.png")
    proc = cli("predict", "--weights", str(out), str(tmp_path / "d.png"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(str(tmp_path / "d.png"))


@pytest.mark.skipif(not HAS_LAYERS, reason="needs the conv/layers modules")
def test_default_train_reaches_98_percent_quickly():
    # The promise for a fresh install: no arguments, under 60 s on 2 cores, >= 98%.
    import re
    import time

    t0 = time.perf_counter()
    proc = cli("train", "--quiet")
    elapsed = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stderr
    accuracy = float(re.search(r"test accuracy ([0-9.]+)%", proc.stdout).group(1))
    assert accuracy >= 98.0, proc.stdout
    assert elapsed < 60, elapsed


@pytest.mark.skipif(not HAS_LAYERS, reason="needs the conv/layers modules")
def test_eval_and_predict_accept_a_train_checkpoint(tmp_path):
    # the reference is the same run's `--out` weights, which eval/predict always accepted
    out, ckpt = tmp_path / "w.safetensors", tmp_path / "last.ckpt"
    proc = cli("train", "--epochs", "2", "--quiet", "--threads", "1", "--out", str(out),
               "--checkpoint", str(ckpt))
    assert proc.returncode == 0, proc.stderr
    results = []
    for weights in (out, ckpt):
        proc = cli("eval", "--weights", str(weights), "--quiet", "--json", str(weights) + ".json")
        assert proc.returncode == 0, proc.stderr
        results.append(json.loads((tmp_path / (weights.name + ".json")).read_text()))
    assert results[0] == results[1] and results[0]["n"] > 0
    from pyvision_engine.data.datasets import Digits

    np.save(tmp_path / "x.npy", Digits(train=False).data[:4, :, :, 0])
    outputs = [cli("predict", "--weights", str(w), str(tmp_path / "x.npy")) for w in (out, ckpt)]
    assert all(p.returncode == 0 for p in outputs), outputs[1].stderr
    assert outputs[0].stdout == outputs[1].stdout and outputs[0].stdout.count("x.npy[") == 4
    # onecycle is fixed to the epochs it was made for: a longer resume is one clear line up front
    assert_one_line_error(cli("train", "--epochs", "3", "--resume", str(ckpt), "--quiet"),
                          "OneCycleLR", "at most 2 epochs")
    assert pve.load(ckpt)["epoch"] == 2


@pytest.mark.skipif(not HAS_LAYERS, reason="needs the conv/layers modules")
def test_eval_errors_for_other_datasets_and_unfitting_files_are_short(tmp_path):
    from pyvision_engine.cli import DataSpec, _build_model, _weights_metadata

    spec = DataSpec("mnist", None, None)
    spec.channels, spec.size, spec.classes = 1, 28, [str(i) for i in range(10)]
    spec.mean, spec.std = (0.1307,), (0.3081,)
    mnist = tmp_path / "mnist.safetensors"
    pve.save(_build_model("small_cnn", spec, 10).state_dict(), mnist,
             metadata=_weights_metadata("small_cnn", spec))
    assert_one_line_error(cli("eval", "--weights", str(mnist)),
                          "trained on mnist", "--dataset mnist DIR")
    proc = cli("eval", "--weights", str(mnist), "--model", "resnet20")
    assert_one_line_error(proc, "does not fit model resnet20", "missing keys (", "more")
    assert len(proc.stderr.strip()) < 500, proc.stderr
    # a checkpoint from before checkpoints carried metadata: clear errors, no guessing
    old = tmp_path / "old.ckpt"
    from pyvision_engine.io import save_checkpoint

    save_checkpoint(old, model=pve.models.small_cnn(), epoch=1)
    assert_one_line_error(cli("eval", "--weights", str(old)), "old.ckpt", "pass --model")
    assert_one_line_error(cli("eval", "--weights", str(old), "--model", "small_cnn"),
                          "old.ckpt does not fit model small_cnn", "was assumed")
