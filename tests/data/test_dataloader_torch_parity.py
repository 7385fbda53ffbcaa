"""pve.data's DataLoader, samplers, datasets and collation against torch.utils.data.

Each test builds the same loader in both libraries and compares what a ported training
script would see: the errors for conflicting arguments, len(), the structure and values
of collated batches, the order of an IterableDataset read by several workers. Skipped
without torch. (pve's float batches are float32 where torch's Python floats give
float64: the engine's tensors are float32/int64.)
"""

import collections
import collections.abc

import numpy as np
import pytest

import pyvision_engine as pve
from pyvision_engine import data as pdata

torch = pytest.importorskip("torch")
tud = torch.utils.data


# ----------------------------------------------------------------- helpers

def plain(x):
    """A nested structure of Python containers and numpy arrays, for comparison."""
    if isinstance(x, pve.Tensor):
        return ("tensor", x.numpy().copy())
    if isinstance(x, torch.Tensor):
        return ("tensor", x.numpy().copy())
    if isinstance(x, np.ndarray):
        return ("tensor", x.copy())  # a uint8 batch stays numpy in pve
    if isinstance(x, tuple) and hasattr(x, "_fields"):
        return (type(x).__name__,) + tuple(plain(v) for v in x)
    if isinstance(x, collections.abc.Mapping):
        return (type(x).__name__, {k: plain(v) for k, v in x.items()})
    if isinstance(x, (list, tuple)) or (isinstance(x, collections.abc.Sequence)
                                        and not isinstance(x, (str, bytes))):
        return (type(x).__name__, [plain(v) for v in x])
    return x


def assert_same(a, b, path="batch"):
    if isinstance(a, tuple) and a and a[0] == "tensor":
        assert isinstance(b, tuple) and b[0] == "tensor", (path, a, b)
        x, y = a[1], b[1]
        assert x.shape == y.shape, (path, x.shape, y.shape)
        kind = {"f": "f", "i": "i", "u": "i", "b": "b"}
        assert kind[x.dtype.kind] == kind[y.dtype.kind], (path, x.dtype, y.dtype)
        np.testing.assert_allclose(x.astype(np.float64), y.astype(np.float64), rtol=1e-6, err_msg=path)
        return
    assert type(a) is type(b), (path, a, b)
    if isinstance(a, dict):
        assert list(a) == list(b), path
        for k in a:
            assert_same(a[k], b[k], f"{path}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), (path, a, b)
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{path}[{i}]")
    else:
        assert a == b, (path, a, b)


class ListDataset(pdata.Dataset, tud.Dataset):
    """A map-style dataset usable by both libraries."""

    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


Point = collections.namedtuple("Point", ["x", "y"])


class MyList(list):
    pass


class Frozen(collections.abc.Sequence):
    def __init__(self, items):
        self.items = list(items)

    def __getitem__(self, i):
        return self.items[i]

    def __len__(self):
        return len(self.items)

    def __eq__(self, other):
        return type(other) is Frozen and self.items == other.items


def sample(i):
    return {
        "img": np.full((2, 3), i, np.float32),
        "label": i,
        "weight": 0.5 * i,
        "flag": i % 2 == 0,
        "mixed": [1, 2.5, True][i % 3],
        "np_int": np.int32(i),
        "np_float": np.float32(i) / 4,
        "name": f"s{i}",
        "pair": (i, np.arange(2) + i),
        "point": Point(i, float(i)),
        "od": collections.OrderedDict([("b", i), ("a", [i, i + 1])]),
        "mylist": MyList([i, 2 * i]),
    }


# ------------------------------------------------------------------ collation

def test_default_collate_structures_equal_torch():
    items = [sample(i) for i in range(5)]
    ours = list(pdata.DataLoader(ListDataset(items), batch_size=2))
    theirs = list(tud.DataLoader(ListDataset(items), batch_size=2))
    assert len(ours) == len(theirs) == 3
    for a, b in zip(ours, theirs):
        assert_same(plain(a), plain(b))
    # mixed ints and floats collate to floats (torch.tensor), not truncated ints
    batch = pdata.default_collate([1, 2.5, 3])
    assert batch.numpy().tolist() == [1.0, 2.5, 3.0]
    assert pdata.default_collate([True, 2]).numpy().tolist() == [1, 2]


def test_default_collate_sequence_types_and_errors_as_torch():
    frozen = [Frozen([i, i + 1]) for i in range(3)]
    a, b = pdata.default_collate(frozen), tud.default_collate(frozen)
    assert type(a) is type(b) is Frozen
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.numpy(), y.numpy())
    with pytest.raises(RuntimeError, match="equal size"):
        pdata.default_collate([[1, 2], [3]])
    with pytest.raises(RuntimeError, match="equal size"):
        tud.default_collate([[1, 2], [3]])
    strings = [np.array(["a", "b"]), np.array(["c", "d"])]
    with pytest.raises(TypeError, match="found <U1"):
        pdata.default_collate(strings)
    with pytest.raises(TypeError, match="found <U1"):
        tud.default_collate(strings)
    with pytest.raises(RuntimeError, match="stack expects each tensor to be equal size"):
        pdata.default_collate([np.zeros(3, np.float32), np.zeros(4, np.float32)])
    with pytest.raises(TypeError, match="default_collate: batch must contain"):
        pdata.default_collate([object(), object()])


def test_batch_size_none_default_convert_equals_torch():
    items = [sample(i) for i in range(3)]
    ours = list(pdata.DataLoader(ListDataset(items), batch_size=None))
    theirs = list(tud.DataLoader(ListDataset(items), batch_size=None))
    for a, b in zip(ours, theirs):
        # python numbers and strings stay as they are; numpy values become tensors
        assert_same(plain(a), plain(b))


def test_getitems_is_used_for_batches_as_torch():
    class Batched(ListDataset):
        def __getitems__(self, indices):
            return [("batched", i) for i in indices]

    ds = Batched(list(range(5)))
    ours = [b for b in pdata.DataLoader(ds, batch_size=2)]
    theirs = [b for b in tud.DataLoader(ds, batch_size=2)]
    assert [(x[0], x[1].numpy().tolist()) for x in ours] == \
        [(x[0], x[1].numpy().tolist()) for x in theirs]


# ------------------------------------------------------------ argument checks

class Stream(pdata.IterableDataset, tud.IterableDataset):
    def __init__(self, n, with_len=True):
        self.n = n
        self.with_len = with_len

    def __iter__(self):
        return iter(range(self.n))

    def __len__(self):
        if not self.with_len:
            raise TypeError("no len")
        return self.n


MAP = ListDataset(list(range(10)))


def both_samplers(lib):
    return lib.SequentialSampler(MAP), lib.BatchSampler(lib.SequentialSampler(MAP), 3, False)


@pytest.mark.parametrize("case", [
    "sampler+shuffle", "batch_sampler+batch_size", "batch_sampler+shuffle", "batch_sampler+sampler",
    "batch_sampler+drop_last", "none+drop_last", "iter+shuffle", "iter+sampler", "iter+batch_sampler",
    "workers<0", "timeout<0", "persistent", "mp_context", "all_conflicts",
])
def test_argument_errors_equal_torch(case):
    def kwargs(lib):
        sampler, batch_sampler = both_samplers(lib)
        return {
            "sampler+shuffle": dict(dataset=MAP, sampler=sampler, shuffle=True),
            "batch_sampler+batch_size": dict(dataset=MAP, batch_sampler=batch_sampler, batch_size=4),
            "batch_sampler+shuffle": dict(dataset=MAP, batch_sampler=batch_sampler, shuffle=True),
            "batch_sampler+sampler": dict(dataset=MAP, batch_sampler=batch_sampler, sampler=sampler),
            "batch_sampler+drop_last": dict(dataset=MAP, batch_sampler=batch_sampler, drop_last=True),
            "none+drop_last": dict(dataset=MAP, batch_size=None, drop_last=True),
            "iter+shuffle": dict(dataset=Stream(4), shuffle=True),
            "iter+sampler": dict(dataset=Stream(4), sampler=[0, 1]),
            "iter+batch_sampler": dict(dataset=Stream(4), batch_sampler=[[0, 1]]),
            "workers<0": dict(dataset=MAP, num_workers=-1),
            "timeout<0": dict(dataset=MAP, timeout=-1),
            "persistent": dict(dataset=MAP, persistent_workers=True),
            "mp_context": dict(dataset=MAP, multiprocessing_context="spawn"),
            "all_conflicts": dict(dataset=MAP, sampler=sampler, shuffle=True, batch_sampler=batch_sampler),
        }[case]

    with pytest.raises(ValueError) as theirs:
        tud.DataLoader(**kwargs(tud))
    with pytest.raises(ValueError) as ours:
        pdata.DataLoader(**kwargs(pdata))
    msg = str(theirs.value)
    if case.startswith("iter+"):  # torch prints the object; compare the text before it
        msg = msg.split(" but got")[0]
    if case == "workers<0":
        msg = msg.split(";")[0]  # torch: "...multiprocessing", pve: "...multithreading"
    assert msg in str(ours.value)


def test_accepts_torch_only_keywords():
    loader = pdata.DataLoader(MAP, batch_size=4, num_workers=2, multiprocessing_context="fork",
                              pin_memory=True, pin_memory_device="", in_order=False,
                              prefetch_factor=3, timeout=5)
    assert [b.numpy().tolist() for b in loader] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    with pytest.raises(ValueError, match="valid start method"):
        pdata.DataLoader(MAP, num_workers=1, multiprocessing_context="threads")


# --------------------------------------------------------------------- len()

@pytest.mark.parametrize("kw", [dict(batch_size=3), dict(batch_size=3, drop_last=True),
                                dict(batch_size=None), dict(batch_size=20),
                                dict(batch_size=20, drop_last=True)])
@pytest.mark.parametrize("n", [0, 1, 10])
def test_len_equals_torch(kw, n):
    ds = ListDataset(list(range(n)))
    assert len(pdata.DataLoader(ds, **kw)) == len(tud.DataLoader(ds, **kw))
    assert len(pdata.DataLoader(Stream(n), **kw)) == len(tud.DataLoader(Stream(n), **kw))
    got = list(pdata.DataLoader(Stream(n), **kw))
    assert len(got) == len(list(tud.DataLoader(Stream(n), **kw)))


def test_len_of_stream_without_len_is_a_type_error_as_torch():
    with pytest.raises(TypeError):
        len(tud.DataLoader(Stream(3, with_len=False)))
    with pytest.raises(TypeError):
        len(pdata.DataLoader(Stream(3, with_len=False)))

    class NoLen(pdata.IterableDataset):
        def __iter__(self):
            return iter(range(3))

    with pytest.raises(TypeError, match="has no len"):
        len(pdata.DataLoader(NoLen()))
    assert [b.numpy().tolist() for b in pdata.DataLoader(NoLen(), batch_size=2)] == [[0, 1], [2]]


def test_batch_sampler_len_and_batches_equal_torch():
    for lib in (pdata, tud):
        bs = lib.BatchSampler(lib.SequentialSampler(MAP), 4, drop_last=False)
        loader = lib.DataLoader(MAP, batch_sampler=bs)
        assert len(loader) == 3
        assert [b.numpy().tolist() for b in loader] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
        assert loader.batch_size is None and loader.drop_last is False


# ---------------------------------------------------- IterableDataset + workers

class Sharded(pdata.IterableDataset, tud.IterableDataset):
    """torch's documented example 1: shard the range by get_worker_info() in __iter__."""

    def __init__(self, start, end, lib):
        self.start, self.end, self.lib = start, end, lib

    def __iter__(self):
        info = self.lib.get_worker_info()
        if info is None:
            return iter(range(self.start, self.end))
        per = int(np.ceil((self.end - self.start) / info.num_workers))
        lo = self.start + info.id * per
        return iter(range(lo, min(lo + per, self.end)))


class Plain(pdata.IterableDataset, tud.IterableDataset):
    def __init__(self, start, end):
        self.start, self.end = start, end

    def __iter__(self):
        return iter(range(self.start, self.end))


def _shard_in_init(lib):
    def worker_init_fn(worker_id):
        # torch's documented example 2: each worker edits ITS copy of the dataset
        info = lib.get_worker_info()
        ds = info.dataset
        lo, hi = ds.start, ds.end
        per = int(np.ceil((hi - lo) / info.num_workers))
        ds.start = lo + worker_id * per
        ds.end = min(ds.start + per, hi)
    return worker_init_fn


def _batches(loader):
    return [b.numpy().tolist() if hasattr(b, "numpy") else b for b in loader]


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("batch_size, drop_last", [(2, False), (4, True), (None, False)])
def test_iterable_dataset_with_workers_equals_torch(workers, batch_size, drop_last):
    kw = dict(batch_size=batch_size, drop_last=drop_last, num_workers=workers)
    # sharded in __iter__
    ours = _batches(pdata.DataLoader(Sharded(3, 14, pdata), **kw))
    theirs = _batches(tud.DataLoader(Sharded(3, 14, tud), **kw))
    assert ours == theirs
    # sharded in worker_init_fn through worker_info.dataset
    ours = _batches(pdata.DataLoader(Plain(0, 9), worker_init_fn=_shard_in_init(pdata), **kw))
    theirs = _batches(tud.DataLoader(Plain(0, 9), worker_init_fn=_shard_in_init(tud), **kw))
    assert ours == theirs
    ds = Plain(0, 9)
    list(pdata.DataLoader(ds, worker_init_fn=_shard_in_init(pdata), **kw))
    assert (ds.start, ds.end) == (0, 9)  # the workers edited their copies only
    # not sharded: every worker yields the whole stream, as torch
    assert _batches(pdata.DataLoader(Plain(0, 5), **kw)) == _batches(tud.DataLoader(Plain(0, 5), **kw))


def test_iterable_worker_errors_and_info():
    class Failing(pdata.IterableDataset):
        def __iter__(self):
            yield 1
            raise KeyError("bad sample")

    with pytest.raises(KeyError, match="bad sample"):
        list(pdata.DataLoader(Failing(), batch_size=1, num_workers=2))
    infos = []

    class Info(pdata.IterableDataset):
        def __iter__(self):
            info = pdata.get_worker_info()
            infos.append((info.id, info.num_workers, isinstance(info.seed, int)))
            return iter([info.id])

    assert sorted(_batches(pdata.DataLoader(Info(), num_workers=2, batch_size=None))) == [0, 1]
    assert sorted(infos) == [(0, 2, True), (1, 2, True)]
    loader = pdata.DataLoader(Plain(0, 100), batch_size=1, num_workers=2)
    it = iter(loader)
    next(it)
    it.close()  # an early stop leaves no thread blocked


def test_map_style_worker_info_seed_is_an_int():
    seeds = []

    def init(worker_id):
        info = pdata.get_worker_info()
        seeds.append(info.seed - worker_id)
        np.random.default_rng(info.seed % 2 ** 32)  # the usual torch idiom works

    list(pdata.DataLoader(MAP, batch_size=2, num_workers=2, worker_init_fn=init))
    assert len(seeds) == 2 and len(set(seeds)) == 1 and isinstance(seeds[0], int)


def test_chain_dataset_equals_torch():
    ours = pdata.ChainDataset([Plain(0, 3), Plain(10, 12)])
    theirs = tud.ChainDataset([Plain(0, 3), Plain(10, 12)])
    assert list(ours) == list(theirs) == [0, 1, 2, 10, 11]
    assert list(Plain(0, 2) + Plain(5, 6)) == [0, 1, 5]
    assert _batches(pdata.DataLoader(ours, batch_size=2)) == _batches(tud.DataLoader(theirs, batch_size=2))


# ---------------------------------------------------------------- samplers

def test_weighted_random_sampler_as_torch():
    for bad, err in [(dict(num_samples=0), ValueError), (dict(num_samples=True), ValueError),
                     (dict(num_samples=3, replacement=1), ValueError)]:
        with pytest.raises(err) as theirs:
            tud.WeightedRandomSampler([1.0, 2.0], **bad)
        with pytest.raises(err) as ours:
            pdata.WeightedRandomSampler([1.0, 2.0], **bad)
        assert str(theirs.value) == str(ours.value)
    with pytest.raises(ValueError, match="weights should be a 1d sequence"):
        pdata.WeightedRandomSampler([[1.0, 2.0]], 2)
    s = pdata.WeightedRandomSampler([0.0, 1.0, 3.0, 0.0], 4000, generator=0)
    draws = np.array(list(s))
    assert len(s) == 4000 and set(draws.tolist()) == {1, 2}
    assert abs((draws == 2).mean() - 0.75) < 0.03
    once = list(pdata.WeightedRandomSampler([1, 1, 1, 5], 4, replacement=False, generator=1))
    assert sorted(once) == [0, 1, 2, 3]
    for lib in (pdata, tud):
        with pytest.raises(RuntimeError):
            list(lib.WeightedRandomSampler([1.0, 0.0, 1.0], 4, replacement=False))
        with pytest.raises(RuntimeError):
            list(lib.WeightedRandomSampler([1.0, -1.0], 1))
        # without replacement, zero-weight indices are drawn only after all the others
        draws = list(lib.WeightedRandomSampler([1.0, 0.0, 1.0, 0.0], 3, replacement=False))
        assert sorted(draws[:2]) == [0, 2] and draws[2] in (1, 3)
    loader = pdata.DataLoader(MAP, batch_size=5, sampler=pdata.WeightedRandomSampler(
        torch.tensor([0.0] * 9 + [1.0]), 10, generator=2))
    assert [b.numpy().tolist() for b in loader] == [[9] * 5, [9] * 5]


def test_random_sampler_options_as_torch():
    for lib in (pdata, tud):
        s = lib.RandomSampler(range(5), replacement=True, num_samples=12)
        draws = list(s)
        assert len(s) == 12 and len(draws) == 12 and set(draws) <= set(range(5))
        s = lib.RandomSampler(range(5), num_samples=12)  # > n without replacement: whole perms
        draws = list(s)
        assert sorted(draws[:5]) == sorted(draws[5:10]) == list(range(5)) and len(draws) == 12
        with pytest.raises(ValueError, match="num_samples should be a positive integer"):
            lib.RandomSampler(range(5), num_samples=0)
        with pytest.raises(TypeError, match="replacement should be a boolean"):
            lib.RandomSampler(range(5), replacement=0)
        assert list(lib.SequentialSampler(range(4))) == [0, 1, 2, 3]
        assert sorted(lib.SubsetRandomSampler([7, 3, 5])) == [3, 5, 7]


def test_batch_sampler_passes_indices_through_as_torch():
    keys = ["a", "b", "c"]
    assert list(pdata.BatchSampler(keys, 2, False)) == list(tud.BatchSampler(keys, 2, False)) \
        == [["a", "b"], ["c"]]
    for bad in [dict(batch_size=0, drop_last=False), dict(batch_size=2.0, drop_last=False),
                dict(batch_size=2, drop_last=1)]:
        with pytest.raises(ValueError) as theirs:
            tud.BatchSampler(keys, **bad)
        with pytest.raises(ValueError) as ours:
            pdata.BatchSampler(keys, **bad)
        assert str(theirs.value) == str(ours.value)


def test_torch_generator_is_accepted_and_advances():
    g = torch.Generator().manual_seed(0)
    a = [b.numpy().tolist() for b in pdata.DataLoader(MAP, batch_size=5, shuffle=True, generator=g)]
    g2 = torch.Generator().manual_seed(0)
    b = [b.numpy().tolist() for b in pdata.DataLoader(MAP, batch_size=5, shuffle=True, generator=g2)]
    assert a == b and sorted(sum(a, [])) == list(range(10))
    assert list(pdata.RandomSampler(MAP, generator=torch.Generator().manual_seed(3))) == \
        list(pdata.RandomSampler(MAP, generator=torch.Generator().manual_seed(3)))


def test_iterating_twice_gives_two_epochs():
    loader = pdata.DataLoader(ListDataset(list(range(30))), batch_size=7, shuffle=True, generator=4)
    e1 = sum((b.numpy().tolist() for b in loader), [])
    e2 = sum((b.numpy().tolist() for b in loader), [])
    assert sorted(e1) == sorted(e2) == list(range(30)) and e1 != e2
    it1, it2 = iter(loader), iter(loader)  # independent iterators, as torch's
    assert len(list(it1)) == len(list(it2)) == 5


# ------------------------------------------------------ datasets, random_split

@pytest.mark.filterwarnings("ignore:Length of split")
def test_random_split_equals_torch():
    ds = ListDataset(list(range(10)))
    for lengths in ([0.5, 0.3, 0.2], [0.34, 0.33, 0.33], [3, 7], [1], [0.25, 0.75], [0, 1]):
        ours = pdata.random_split(ds, lengths, generator=torch.Generator().manual_seed(42))
        theirs = tud.random_split(ds, lengths, generator=torch.Generator().manual_seed(42))
        assert [list(s.indices) for s in ours] == [list(s.indices) for s in theirs], lengths
    for bad in ([0.5, 0.6], [1.2, -0.2], [3, 3]):
        with pytest.raises(ValueError) as theirs:
            tud.random_split(ds, bad)
        with pytest.raises(ValueError) as ours:
            pdata.random_split(ds, bad)
        assert str(theirs.value) == str(ours.value)
    parts = pdata.random_split(ds, [0.7, 0.3], generator=0)
    assert sorted(parts[0].indices + parts[1].indices) == list(range(10))


def test_subset_and_concat_indexing_equal_torch():
    class Batchable(ListDataset):
        def __getitem__(self, i):
            if isinstance(i, list):
                return [self.items[j] for j in i]
            return self.items[i]

    base = Batchable(list(range(100, 110)))
    ours, theirs = pdata.Subset(base, [9, 2, 5]), tud.Subset(base, [9, 2, 5])
    assert ours[[0, 2]] == theirs[[0, 2]] == [109, 105]
    assert ours[-1] == theirs[-1] == 105
    a, b = ListDataset([0, 1, 2]), ListDataset([10, 11])
    ours, theirs = pdata.ConcatDataset([a, b]), tud.ConcatDataset([a, b])
    assert [ours[i] for i in range(-5, 5)] == [theirs[i] for i in range(-5, 5)]
    assert ours.cumulative_sizes == theirs.cumulative_sizes
    with pytest.raises(AssertionError):
        pdata.ConcatDataset([Plain(0, 2)])
    with pytest.raises(AssertionError):
        tud.ConcatDataset([Plain(0, 2)])
