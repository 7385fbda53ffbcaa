"""pve.save / pve.load / checkpoints: format checked with the safetensors library and torch,
atomic writes, and damaged or malicious files handled in a subprocess that must survive."""

import json
import os
import pickle
import struct
import textwrap

import numpy as np
import pytest

import pyvision_engine as pve
from pyvision_engine import io as pio
from pyvision_engine import nn
from subprocess_env import run_python


def small_state_dict():
    rng = np.random.default_rng(0)
    return {
        "conv.weight": pve.tensor(rng.standard_normal((4, 3, 3, 3)).astype(np.float32)),
        "bn.num_batches_tracked": pve.tensor(np.array(7, dtype=np.int64)),
        "fc.bias": rng.standard_normal(5).astype(np.float32),   # numpy values are fine too
    }


def test_roundtrip_and_readable_by_safetensors(tmp_path):
    sd = small_state_dict()
    path = tmp_path / "w.safetensors"
    pve.save(sd, path)
    loaded = pve.load(path)
    assert set(loaded) == set(sd)
    for k, v in sd.items():
        want = np.asarray(v)
        assert isinstance(loaded[k], pve.Tensor) and loaded[k].shape == want.shape
        np.testing.assert_array_equal(loaded[k].numpy(), want)
    assert loaded["bn.num_batches_tracked"].shape == () and loaded["bn.num_batches_tracked"].dtype == np.int64
    from safetensors.numpy import load_file

    other = load_file(str(path))
    np.testing.assert_array_equal(other["conv.weight"], np.asarray(sd["conv.weight"]))


def test_readable_by_torch_and_torch_files_load(tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file, save_file

    sd = small_state_dict()
    pve.save(sd, tmp_path / "w.safetensors")
    t = load_file(str(tmp_path / "w.safetensors"))
    assert t["bn.num_batches_tracked"].dtype == torch.int64
    np.testing.assert_array_equal(t["conv.weight"].numpy(), np.asarray(sd["conv.weight"]))
    lin = torch.nn.Linear(3, 2)
    save_file(lin.state_dict(), str(tmp_path / "t.safetensors"))
    mine = nn.Linear(3, 2)
    mine.load_state_dict(pve.load(tmp_path / "t.safetensors"))
    np.testing.assert_array_equal(mine.weight.detach().numpy(), lin.weight.detach().numpy())


def test_nested_structures_roundtrip(tmp_path):
    opt_state = {
        "state": {0: {"step": pve.tensor(np.array(3.0, np.float32)), "exp_avg": np.ones(4, np.float32)},
                  2: {"momentum_buffer": None}},
        "param_groups": [{"lr": 0.1 + 1e-17, "betas": (0.9, 0.999), "params": [0, 1, 2],
                          "nesterov": False, "eps": 1e-8, "inf": float("inf"), "name": "all"}],
    }
    pve.save({"optimizer": opt_state, "epoch": 4, "rng": pve.get_rng_state()}, tmp_path / "c.ckpt")
    back = pve.load(tmp_path / "c.ckpt")
    assert back["epoch"] == 4 and back["rng"] == pve.get_rng_state()
    group = back["optimizer"]["param_groups"][0]
    assert group["betas"] == (0.9, 0.999) and group["lr"] == 0.1 + 1e-17 and group["inf"] == float("inf")
    assert set(back["optimizer"]["state"]) == {0, 2}  # int keys survive
    np.testing.assert_array_equal(back["optimizer"]["state"][0]["exp_avg"].numpy(), np.ones(4))
    assert back["optimizer"]["state"][0]["step"].shape == ()
    with pytest.raises(TypeError, match="cannot store a object"):
        pve.save({"x": object()}, tmp_path / "bad.ckpt")


def test_checkpoint_restores_model_optimizer_and_rng(tmp_path):
    pve.manual_seed(1)
    model = nn.Linear(4, 3)

    class Counter:
        def __init__(self):
            self.n = 0

        def state_dict(self):
            return {"n": self.n}

        def load_state_dict(self, s):
            self.n = s["n"]

    opt = Counter()
    opt.n = 5
    pio.save_checkpoint(tmp_path / "ck", model=model, optimizer=opt, epoch=3, metrics={"acc": 0.5})
    expected_next = pve.random.default_generator().random()
    pve.manual_seed(99)
    model2, opt2 = nn.Linear(4, 3), Counter()
    ck = pio.load_checkpoint(tmp_path / "ck", model=model2, optimizer=opt2)
    assert ck["epoch"] == 3 and ck["metrics"] == {"acc": 0.5} and opt2.n == 5
    np.testing.assert_array_equal(model2.weight.detach().numpy(), model.weight.detach().numpy())
    assert pve.random.default_generator().random() == expected_next
    pve.save(model.state_dict(), tmp_path / "plain.safetensors")
    with pytest.raises(ValueError, match="not a pyvision_engine training checkpoint"):
        pio.load_checkpoint(tmp_path / "plain.safetensors")


def test_failure_mid_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    pve.save({"w": np.zeros(1000, np.float32)}, path)
    before = path.read_bytes()

    def half_then_die(f, data):
        f.write(data[: len(data) // 2])
        raise KeyboardInterrupt("killed while saving")

    monkeypatch.setattr(pio, "_write_all", half_then_die)
    with pytest.raises(KeyboardInterrupt):
        pve.save({"w": np.ones(1000, np.float32)}, path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["last.ckpt"]  # no temp file left behind
    monkeypatch.undo()
    np.testing.assert_array_equal(pve.load(path)["w"].numpy(), np.zeros(1000))


def test_kill_during_save_in_a_subprocess_keeps_the_old_file(tmp_path):
    # SIGKILL between writing the temp file and the rename: no cleanup code runs at all.
    path = tmp_path / "w.safetensors"
    pve.save({"w": np.zeros(10, np.float32)}, path)
    code = textwrap.dedent(f"""
        import os, signal, numpy as np, pyvision_engine as pve
        from pyvision_engine import io as pio
        real = os.replace
        def die(*a):
            os.kill(os.getpid(), signal.SIGKILL)
        pio.os.replace = die
        pve.save({{"w": np.ones(10, np.float32)}}, {str(path)!r})
    """)
    proc = run_python(["-c", code], timeout=60)
    assert proc.returncode != 0
    np.testing.assert_array_equal(pve.load(path)["w"].numpy(), np.zeros(10))


def damaged_files(tmp_path):
    good = tmp_path / "good.safetensors"
    pve.save({"a": np.arange(100, dtype=np.float32), "b": np.ones((3, 3), np.float32)}, good)
    blob = good.read_bytes()
    (header_len,) = struct.unpack("<Q", blob[:8])
    files = {
        "truncated.safetensors": blob[: len(blob) - 37],
        "cut_header.safetensors": blob[: 8 + header_len // 2],
        "empty.safetensors": b"",
        "tiny.safetensors": b"\x01\x02",
        "huge_header.safetensors": struct.pack("<Q", 2 ** 62) + b"{}",
        "garbage_header.safetensors": struct.pack("<Q", 10) + b"\xff" * 10 + b"\x00" * 8,
        "bad_offsets.safetensors": (lambda h: struct.pack("<Q", len(h)) + h)(
            json.dumps({"a": {"dtype": "F32", "shape": [1000], "data_offsets": [0, 4000]}}).encode()),
        "flipped.safetensors": blob[:8] + bytes([blob[8] ^ 0x55]) + blob[9:],
    }
    paths = []
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
        paths.append(str(tmp_path / name))
    return paths


def test_damaged_files_raise_clear_errors_in_a_surviving_subprocess(tmp_path):
    paths = damaged_files(tmp_path)
    code = textwrap.dedent(f"""
        import pyvision_engine as pve
        for path in {paths!r}:
            try:
                pve.load(path)
            except ValueError as e:
                assert path in str(e), (path, str(e))
                print("OK", path)
            else:
                print("LOADED", path)
        print("survived")
    """)
    proc = run_python(["-c", code], timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("OK ") == len(paths), proc.stdout
    assert proc.stdout.strip().endswith("survived")


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_disguised_as_weights_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"weight": _Exploit(str(marker))}, protocol=4)
    disguised = tmp_path / "model.safetensors"
    disguised.write_bytes(payload)
    zipped = tmp_path / "model2.safetensors"
    zipped.write_bytes(b"PK\x03\x04" + payload)
    code = textwrap.dedent(f"""
        import pyvision_engine as pve
        for p in ({str(disguised)!r}, {str(zipped)!r}):
            try:
                pve.load(p)
            except ValueError as e:
                print("REFUSED", "pickle" in str(e) or "zip" in str(e))
    """)
    proc = run_python(["-c", code], timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["REFUSED", "True", "REFUSED", "True"]
    assert not marker.exists()


def test_argument_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        pve.load(tmp_path / "missing.safetensors")
    with pytest.raises(TypeError):
        pve.save({"a": np.zeros(1)}, 3)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        pve.save({"a": np.zeros(1)}, tmp_path / "no" / "dir.safetensors")
    with pytest.raises(TypeError, match="metadata"):
        pve.save({"a": np.zeros(1)}, tmp_path / "x", metadata={"a": 1})


def test_header_length_starting_with_pickle_byte_still_loads(tmp_path):
    # A header length whose low byte is 0x80 makes a valid file start like a pickle.
    for pad in range(0, 400):
        path = tmp_path / "w.safetensors"
        pve.save({"w": np.arange(3, dtype=np.float32)}, path, metadata={"pad": "x" * pad})
        if path.read_bytes()[:1] == b"\x80":
            break
    else:
        pytest.skip("no padding gave a 0x80 first byte")
    np.testing.assert_array_equal(pve.load(path)["w"].numpy(), np.arange(3))


def _with_header(blob, edit):
    """``blob`` (a safetensors file) with its JSON header changed by ``edit(header)``."""
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    edit(header)
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + blob[8 + n:]


def test_truncated_file_whose_first_byte_is_0x80_is_not_called_a_pickle(tmp_path):
    from safetensors.numpy import load_file

    path = tmp_path / "h.safetensors"
    pve.save({"w" * 36: np.zeros(4, np.float32)}, path)
    blob = path.read_bytes()
    assert struct.unpack("<Q", blob[:8])[0] == 128  # low byte 0x80, like pickle's PROTO opcode
    path.write_bytes(blob[:100])
    with pytest.raises(Exception):
        load_file(str(path))  # the safetensors library refuses it too
    with pytest.raises(pio.CheckpointError, match="truncated") as err:
        pve.load(path)
    assert "pickle" not in str(err.value) and str(path) in str(err.value)
    for protocol in (2, 3, 5):  # real pickles are still recognised as such
        path.write_bytes(pickle.dumps({"w": 1}, protocol=protocol))
        with pytest.raises(pio.CheckpointError, match="is a pickle"):
            pve.load(path)


def test_damaged_headers_and_checkpoint_metadata_name_the_file(tmp_path):
    good = tmp_path / "good.safetensors"
    pve.save({"a": np.arange(4, dtype=np.float32)}, good)
    blob = good.read_bytes()

    def meta(doc):
        return lambda h: h.update({"__metadata__": {"pve_checkpoint": json.dumps(doc)}})

    cases = {
        "offsets_str": lambda h: h["a"].update(data_offsets=["a", "b"]),
        "offsets_negative": lambda h: h["a"].update(data_offsets=[-4, 16]),
        "shape_str": lambda h: h["a"].update(shape=["4"]),
        "items_unhashable_key": meta({"version": 1, "data": {"__items__": [[[1], 2]]}}),
        "float_not_a_number": meta({"version": 1, "data": {"__float__": "abc"}}),
        "tensor_name_list": meta({"version": 1, "data": {"__tensor__": [1]}}),
        "tuple_not_a_list": meta({"version": 1, "data": {"__tuple__": 5}}),
    }
    for name, edit in cases.items():
        path = tmp_path / f"{name}.safetensors"
        path.write_bytes(_with_header(blob, edit))
        with pytest.raises(pio.CheckpointError) as err:
            pve.load(path)
        assert str(path) in str(err.value), (name, str(err.value))


def test_bfloat16_files_load_widened_to_float32_like_torch(tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(0)
    w = (torch.randn(3, 5, generator=g) * 100).to(torch.bfloat16)
    special = torch.tensor([0.0, -0.0, float("inf"), float("-inf"), 1e-40], dtype=torch.bfloat16)
    path = tmp_path / "bf16.safetensors"
    save_file({"w": w, "special": special, "f32": torch.arange(3.0)}, str(path))
    loaded = pve.load(path)
    for name, ref in (("w", w), ("special", special)):
        assert loaded[name].dtype == np.float32 and loaded[name].shape == tuple(ref.shape)
        np.testing.assert_array_equal(loaded[name].numpy(), ref.float().numpy())  # exact widening
        assert np.array_equal(np.signbit(loaded[name].numpy()), np.signbit(ref.float().numpy()))
    np.testing.assert_array_equal(loaded["f32"].numpy(), np.arange(3.0))
