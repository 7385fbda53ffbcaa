"""DataLoader, samplers, datasets and collation against plain Python/numpy expectations."""

import gc
import threading
import time

import numpy as np
import pytest

import pyvision_engine as pve
from pyvision_engine import data
from pyvision_engine.data import (
    BatchSampler, DataLoader, RandomSampler, SequentialSampler, Subset, TensorDataset,
    default_collate, random_split,
)


class RangeDataset(data.Dataset):
    """Item i is (float32 vector of i's, i); optionally sleeps or fails."""

    def __init__(self, n, fail_at=None, sleep=0.0):
        self.n, self.fail_at, self.sleep = n, fail_at, sleep

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if self.sleep:
            time.sleep(self.sleep)
        if i == self.fail_at:
            raise KeyError(f"broken sample {i}")
        return np.full(3, i, dtype=np.float32), i


class NoisyDataset(RangeDataset):
    """Draws from the loader's per-batch generator, like a random transform does."""

    def __getitem__(self, i):
        return np.float32(data.batch_generator().random()), i


def labels_of(loader):
    return [int(v) for _, y in loader for v in y.numpy()]


@pytest.mark.parametrize("num_workers", [0, 2])
@pytest.mark.parametrize("shuffle", [False, True])
def test_each_sample_once_per_epoch(num_workers, shuffle):
    loader = DataLoader(RangeDataset(103), batch_size=10, shuffle=shuffle, num_workers=num_workers)
    assert len(loader) == 11
    for _ in range(2):
        seen = labels_of(loader)
        assert sorted(seen) == list(range(103))
        if not shuffle:
            assert seen == list(range(103))


def test_drop_last_and_batch_shapes():
    loader = DataLoader(RangeDataset(25), batch_size=10, drop_last=True)
    batches = list(loader)
    assert len(loader) == len(batches) == 2
    x, y = batches[0]
    assert isinstance(x, pve.Tensor) and x.shape == (10, 3) and x.dtype == np.float32
    assert y.dtype == np.int64 and y.numpy().tolist() == list(range(10))


def test_shuffle_reproducible_with_seed_and_generator():
    ds = RangeDataset(50)
    pve.manual_seed(123)
    a = labels_of(DataLoader(ds, batch_size=7, shuffle=True))
    pve.manual_seed(123)
    b = labels_of(DataLoader(ds, batch_size=7, shuffle=True))
    assert a == b and a != list(range(50))
    c = labels_of(DataLoader(ds, batch_size=7, shuffle=True, generator=5))
    d = labels_of(DataLoader(ds, batch_size=7, shuffle=True, generator=np.random.default_rng(5)))
    assert c == d
    # Two epochs of one loader differ (a fresh permutation per epoch).
    loader = DataLoader(ds, batch_size=7, shuffle=True, generator=9)
    assert labels_of(loader) != labels_of(loader)


def test_random_draws_do_not_depend_on_worker_threads():
    ds = NoisyDataset(64)
    results = []
    for workers in (0, 1, 3):
        loader = DataLoader(ds, batch_size=5, shuffle=True, num_workers=workers, generator=42)
        results.append([(x.numpy().tolist(), y.numpy().tolist()) for x, y in loader])
    assert results[0] == results[1] == results[2]


def test_worker_exception_is_reraised_in_main_thread():
    loader = DataLoader(RangeDataset(40, fail_at=17), batch_size=4, num_workers=2)
    with pytest.raises(KeyError, match="broken sample 17"):
        for _ in loader:
            pass
    # the loader is still usable afterwards for a fresh epoch
    loader.dataset.fail_at = None
    assert sorted(labels_of(loader)) == list(range(40))


def test_early_break_shuts_threads_down():
    before = threading.active_count()
    loader = DataLoader(RangeDataset(200, sleep=0.001), batch_size=4, num_workers=3)
    for i, _ in enumerate(loader):
        if i == 2:
            break
    gc.collect()
    deadline = time.time() + 5
    while threading.active_count() > before and time.time() < deadline:
        time.sleep(0.02)
    assert threading.active_count() <= before


def test_timeout_raises_instead_of_hanging():
    loader = DataLoader(RangeDataset(4, sleep=0.5), batch_size=2, num_workers=1, timeout=0.05)
    with pytest.raises(RuntimeError, match="timed out"):
        next(iter(loader))


def test_prefetch_thread_overlaps_loading_with_compute():
    # Loading sleeps 40 ms per batch, "compute" sleeps 40 ms: overlapped ~0.36 s, serial ~0.64 s.
    def run(**kw):
        loader = DataLoader(RangeDataset(8, sleep=0.04), batch_size=1, **kw)
        t0 = time.perf_counter()
        for _ in loader:
            time.sleep(0.04)
        return time.perf_counter() - t0

    serial = run()
    overlapped = run(prefetch_factor=2)
    assert overlapped < 0.8 * serial, (overlapped, serial)


def test_worker_init_fn_and_persistent_workers():
    ids = []
    lock = threading.Lock()

    def init(worker_id):
        with lock:
            ids.append(worker_id)

    loader = DataLoader(RangeDataset(30), batch_size=3, num_workers=2, worker_init_fn=init,
                        persistent_workers=True)
    for _ in range(3):
        assert sorted(labels_of(loader)) == list(range(30))
    loader.shutdown()
    assert sorted(ids) in ([0], [0, 1])  # threads start lazily; never more than 2, never restarted


def test_tensor_dataset_fast_path_equals_per_sample_path():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((37, 2, 3)).astype(np.float32)
    y = rng.integers(0, 5, 37)
    ds = TensorDataset(x, y)
    fast = list(DataLoader(ds, batch_size=8, shuffle=True, generator=1))
    slow = list(DataLoader(ds, batch_size=8, shuffle=True, generator=1, collate_fn=default_collate))
    assert len(fast) == len(slow) == 5
    for (xf, yf), (xs, ys) in zip(fast, slow):
        np.testing.assert_array_equal(xf.numpy(), xs.numpy())
        np.testing.assert_array_equal(yf.numpy(), ys.numpy())
    idx = np.concatenate([b[1].numpy() for b in fast])
    assert ds[3][0].shape == (2, 3) and int(ds[3][1].item()) == y[3]
    assert len(idx) == 37


def test_tensor_dataset_errors():
    with pytest.raises(ValueError, match="size mismatch"):
        TensorDataset(np.zeros((3, 2)), np.zeros(4))
    with pytest.raises(IndexError, match="out of range"):
        TensorDataset(np.zeros((3, 2)))[3]


def test_tensor_dataset_as_torch():
    x = np.arange(30, dtype=np.float32).reshape(10, 3)
    y = np.arange(10)
    ds = TensorDataset(x, y)
    # torch's TensorDataset raises AssertionError on a size mismatch
    with pytest.raises(AssertionError, match="Size mismatch between tensors"):
        TensorDataset(x, y[:4])
    # slices, lists, arrays and masks index every tensor, as torch's
    xs, ys = ds[1:3]
    np.testing.assert_array_equal(xs.numpy(), x[1:3])
    np.testing.assert_array_equal(ys.numpy(), y[1:3])
    xs, ys = ds[[4, 0, -1]]
    np.testing.assert_array_equal(xs.numpy(), x[[4, 0, -1]])
    np.testing.assert_array_equal(ys.numpy(), y[[4, 0, -1]])
    xs, _ = ds[np.arange(10) % 3 == 0]
    np.testing.assert_array_equal(xs.numpy(), x[::3])
    with pytest.raises(IndexError):
        ds[[0, 10]]
    # a batch of (x, y) samples is collated to a list [xb, yb], fast path or not
    for collate_fn in (None, default_collate):
        batches = list(DataLoader(ds, batch_size=4, collate_fn=collate_fn))
        assert all(type(b) is list and len(b) == 2 for b in batches)
        assert [len(b[1].numpy()) for b in batches] == [4, 4, 2]
    # batch_size=None: each sample converted as torch's default_convert (tuple -> list)
    first = next(iter(DataLoader(ds, batch_size=None)))
    assert type(first) is list and first[0].shape == (3,) and int(first[1].item()) == 0


def test_default_convert():
    from pyvision_engine.data import default_convert

    out = default_convert((np.ones(2, np.float32), {"k": np.int64(3)}, "s", 1.5))
    assert type(out) is list and isinstance(out[0], pve.Tensor)
    assert isinstance(out[1]["k"], pve.Tensor) and int(out[1]["k"].item()) == 3
    assert out[2] == "s" and out[3] == 1.5
    items = list(DataLoader([np.full(2, i, np.float32) for i in range(3)], batch_size=None))
    assert all(isinstance(i, pve.Tensor) for i in items)


def test_default_collate_structures():
    batch = [{"a": 1, "b": np.ones(2, np.float32), "s": "x"}, {"a": 2, "b": np.zeros(2, np.float32), "s": "y"}]
    out = default_collate(batch)
    assert out["a"].numpy().tolist() == [1, 2] and out["a"].dtype == np.int64
    assert out["b"].shape == (2, 2) and out["s"] == ["x", "y"]
    u8 = default_collate([np.zeros((2, 2, 1), np.uint8)] * 3)
    assert isinstance(u8, np.ndarray) and u8.dtype == np.uint8 and u8.shape == (3, 2, 2, 1)
    with pytest.raises(TypeError):
        default_collate([object(), object()])


def test_batch_size_none_gives_single_samples():
    items = list(DataLoader(RangeDataset(3), batch_size=None))
    assert [i for _, i in items] == [0, 1, 2]


def test_samplers():
    ds = RangeDataset(10)
    assert list(SequentialSampler(ds)) == list(range(10))
    perm = list(RandomSampler(ds, generator=np.random.default_rng(0)))
    assert sorted(perm) == list(range(10))
    assert len(list(RandomSampler(ds, replacement=True, num_samples=25, generator=np.random.default_rng(0)))) == 25
    bs = BatchSampler(SequentialSampler(ds), 4, drop_last=False)
    assert list(bs) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]] and len(bs) == 3
    assert len(BatchSampler(SequentialSampler(ds), 4, drop_last=True)) == 2
    loader = DataLoader(ds, batch_sampler=bs)
    assert [y.numpy().tolist() for _, y in loader] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


@pytest.mark.parametrize("kwargs, match", [
    ({"batch_size": 0}, "batch_size"),
    ({"num_workers": -1}, "num_workers"),
    ({"sampler": [0, 1], "shuffle": True}, "mutually exclusive"),
    ({"batch_sampler": [[0]], "batch_size": 4}, "mutually exclusive"),
    ({"persistent_workers": True}, "num_workers"),
    ({"prefetch_factor": 0, "num_workers": 1}, "prefetch_factor"),
    ({"generator": "seed"}, "generator"),
])
def test_loader_argument_errors(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        DataLoader(RangeDataset(4), **kwargs)


def test_random_split_and_subset():
    ds = RangeDataset(20)
    a, b = random_split(ds, [15, 5], generator=3)
    assert len(a) == 15 and len(b) == 5
    assert sorted(a.indices + b.indices) == list(range(20))
    a2, _ = random_split(ds, [15, 5], generator=3)
    assert a.indices == a2.indices
    parts = random_split(ds, [0.5, 0.3, 0.2], generator=0)
    assert [len(p) for p in parts] == [10, 6, 4]
    with pytest.raises(ValueError, match="Sum of input lengths"):
        random_split(ds, [3, 4])
    sub = Subset(TensorDataset(np.arange(10, dtype=np.float32)), [9, 2])
    x, = next(iter(DataLoader(sub, batch_size=2)))
    assert x.numpy().tolist() == [9.0, 2.0]


def test_loader_structure_and_lengths_match_torch():
    torch = pytest.importorskip("torch")
    from torch.utils import data as tdata

    x = np.arange(30, dtype=np.float32).reshape(10, 3)
    y = np.arange(10)
    ours_ds = TensorDataset(x, y)
    theirs_ds = tdata.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    for batch_size in (1, 3, 4, 10, 11, None):
        for drop_last in (False, True):
            if batch_size is None and drop_last:
                continue
            ours = DataLoader(ours_ds, batch_size=batch_size, drop_last=drop_last)
            theirs = tdata.DataLoader(theirs_ds, batch_size=batch_size, drop_last=drop_last)
            assert len(ours) == len(theirs)
            got, want = list(ours), list(theirs)
            assert len(got) == len(want)
            for a, b in zip(got, want):
                assert type(a) is type(b)
                for u, v in zip(a, b):
                    np.testing.assert_array_equal(u.numpy(), v.numpy())
    with pytest.raises(ValueError):
        tdata.DataLoader(theirs_ds, sampler=tdata.SequentialSampler(theirs_ds), shuffle=True)
    with pytest.raises(ValueError):
        DataLoader(ours_ds, sampler=data.SequentialSampler(ours_ds), shuffle=True)
