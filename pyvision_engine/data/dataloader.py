"""DataLoader: batches, shuffling and background loading on threads.

torch's arguments and semantics where they mean something on a CPU engine.
Background loading uses threads, not processes: the engine's kernels (and the
Cython augment kernel) release the GIL, so a loader thread overlaps with the
training step without pickling anything across processes.

Reproducibility: at the start of each epoch the loader draws one base seed
from its generator (or the engine's, seeded by ``pve.manual_seed``); batch
``i`` of the epoch runs its transforms with a generator seeded by
``(base_seed, i)``. The batches are therefore the same whatever the number of
worker threads and whatever order they finish in.
"""

from __future__ import annotations

import collections
import collections.abc
import copy
import itertools
import numbers
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as _FutureTimeout
from typing import Any, Callable, Deque, Iterator, List, Mapping, Optional, Sequence

import numpy as np

from pyvision_engine.data.dataset import Dataset, IterableDataset
from pyvision_engine.data.sampler import (
    BatchSampler, RandomSampler, SequentialSampler, _is_torch_generator, _resolve_generator,
)
from pyvision_engine.tensor import Tensor

__all__ = ["DataLoader", "default_collate", "default_convert", "get_worker_info", "batch_generator"]

_local = threading.local()


def batch_generator() -> np.random.Generator:
    """The generator random transforms should draw from: the current batch's own
    generator inside a DataLoader, else the engine's default generator."""
    rng = getattr(_local, "rng", None)
    if rng is not None:
        return rng
    from pyvision_engine.random import default_generator

    return default_generator()


class WorkerInfo(collections.namedtuple("WorkerInfo", ["id", "num_workers", "seed", "dataset"])):
    """What ``get_worker_info()`` returns inside a loader thread."""


def get_worker_info() -> Optional[WorkerInfo]:
    """Inside a DataLoader worker thread: its id, the number of workers, the epoch's base
    seed and the dataset; None in the main thread."""
    return getattr(_local, "worker_info", None)


def _stack(arrays: Sequence[np.ndarray]) -> np.ndarray:
    shape = arrays[0].shape
    for i, a in enumerate(arrays):
        if a.shape != shape:
            raise RuntimeError(f"stack expects each tensor to be equal size, but got {list(shape)} at "
                               f"entry 0 and {list(a.shape)} at entry {i}")
    return np.stack(arrays)


def _rebuild_mapping(elem: Mapping, values: dict) -> Any:
    """torch's rule: a mutable mapping is copied and updated (keeps its type and extra
    attributes), an immutable one is rebuilt with its type, else a plain dict."""
    try:
        if isinstance(elem, collections.abc.MutableMapping):
            clone = copy.copy(elem)
            clone.update(values)
            return clone
        return type(elem)(values)
    except TypeError:
        return values


def _rebuild_sequence(elem: Sequence, values: List[Any]) -> Any:
    try:
        if isinstance(elem, collections.abc.MutableSequence):
            clone = copy.copy(elem)
            for i, v in enumerate(values):
                clone[i] = v
            return clone
        return type(elem)(values)
    except TypeError:
        return values


def default_collate(batch: Sequence[Any]) -> Any:
    """Stack a list of samples into a batch, with torch's default_collate rules.

    Tensors and numpy arrays stack along a new first dim (float -> float32 Tensor,
    integer -> int64 Tensor, bool -> bool Tensor; uint8 stays a numpy uint8 array, as the
    engine's tensors hold float32/int64 only); numpy arrays of strings or objects are a
    TypeError; Python and numpy numbers become a 1-D Tensor (ints mixed with floats give
    floats, as ``torch.tensor``); strings and bytes are left as given (a list, or the
    tuple ``zip`` makes of a field, as torch); mappings are collated key
    by key (keeping their type), namedtuples field by field, tuples into a list, other
    sequences into the same type; samples of unequal lengths are a RuntimeError."""
    if len(batch) == 0:
        raise ValueError("default_collate: empty batch")
    elem = batch[0]
    if isinstance(elem, Tensor):
        return Tensor._wrap(_stack([b._data if isinstance(b, Tensor) else np.asarray(b)
                                    for b in batch]))
    if isinstance(elem, np.ndarray):
        if elem.dtype.kind in "SaUOV":
            raise TypeError(f"default_collate: batch must contain tensors, numpy arrays, numbers, "
                            f"dicts or lists; found {elem.dtype}")
        stacked = _stack([np.asarray(b) for b in batch])
        return stacked if stacked.dtype == np.uint8 else Tensor(stacked)
    if isinstance(elem, (np.bool_, np.number)):
        return Tensor(np.asarray(batch))
    if isinstance(elem, (float, int)):  # bool is an int: torch.tensor(batch) infers the dtype
        arr = np.asarray(batch)
        if arr.dtype.kind == "b":
            return Tensor._wrap(arr)
        if arr.dtype.kind in "iu" and not isinstance(elem, float):
            return Tensor._wrap(arr.astype(np.int64))
        if arr.dtype.kind in "fiub":
            return Tensor._wrap(arr.astype(np.float32))
        raise TypeError(f"default_collate: numbers mixed with {arr.dtype} values in one field")
    if isinstance(elem, (str, bytes)):
        return batch  # as torch: unchanged (a tuple for a field of tuple samples)
    if isinstance(elem, Mapping):
        return _rebuild_mapping(elem, {key: default_collate([d[key] for d in batch]) for key in elem})
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):  # namedtuple
        return type(elem)(*(default_collate(s) for s in zip(*batch)))
    if isinstance(elem, collections.abc.Sequence):
        size = len(elem)
        if any(len(e) != size for e in batch):
            raise RuntimeError("each element in list of batch should be of equal size")
        columns = [default_collate(samples) for samples in zip(*batch)]
        if isinstance(elem, tuple):
            return columns  # a list, as torch's ("backwards compatibility")
        return _rebuild_sequence(elem, columns)
    if hasattr(elem, "detach") and hasattr(elem, "numpy"):  # a torch tensor
        return default_collate([e.detach().cpu().numpy() for e in batch])
    raise TypeError(f"default_collate: batch must contain tensors, numpy arrays, numbers, dicts "
                    f"or lists; found {type(elem)}")


def default_convert(data: Any) -> Any:
    """What a loader with ``batch_size=None`` yields per sample (torch's default_convert):
    numpy arrays and numpy scalars become Tensors (uint8 arrays stay numpy, as in
    :func:`default_collate`; arrays of strings or objects are left alone), tuples become
    lists, mappings and other sequences are converted element by element keeping their
    type; anything else is returned as is."""
    if isinstance(data, Tensor):
        return data
    if isinstance(data, (np.ndarray, np.number, np.bool_)):
        if isinstance(data, np.ndarray) and data.dtype.kind in "SaUOV":
            return data
        if isinstance(data, np.ndarray) and data.dtype == np.uint8:
            return data
        return Tensor(np.asarray(data))
    if isinstance(data, Mapping):
        return _rebuild_mapping(data, {key: default_convert(data[key]) for key in data})
    if isinstance(data, tuple) and hasattr(data, "_fields"):  # namedtuple
        return type(data)(*(default_convert(d) for d in data))
    if isinstance(data, tuple):
        return [default_convert(d) for d in data]  # a list, as torch's
    if isinstance(data, collections.abc.Sequence) and not isinstance(data, (str, bytes)):
        return _rebuild_sequence(data, [default_convert(d) for d in data])
    return data


class DataLoader:
    """Iterate over a dataset in batches (torch.utils.data.DataLoader's arguments).

    - ``num_workers > 0``: that many background threads load batches, at most
      ``num_workers * prefetch_factor`` (default 2) batches ahead, in order.
      ``num_workers == 0`` with ``prefetch_factor`` set uses one background
      thread (torch refuses this combination; here it is the cheap way to overlap
      loading with compute). Otherwise batches load in the calling thread.
    - ``generator``: a numpy Generator or an int seed for shuffling and
      transforms (default: the engine's generator).
    - ``pin_memory`` is accepted and ignored (CPU only), as are
      ``pin_memory_device``, ``multiprocessing_context`` (validated as torch's; the
      workers are threads) and ``in_order`` (batches always come in order, which
      ``in_order=False`` allows too).
    - ``timeout`` (seconds, > 0) bounds the wait for one batch from a worker.
    - An ``IterableDataset`` with ``num_workers > 0`` is read as torch reads it: each
      worker thread iterates its own shallow copy of the dataset (``get_worker_info()``
      gives its id, ``num_workers``, seed and that copy, for sharding), batches it, and
      the loader yields the workers' batches round-robin; without sharding every worker
      yields the whole stream, exactly as in torch.
    - An exception in a worker is re-raised in the iterating thread.
    - A dataset with ``_fetch_batch`` (TensorDataset, the built-in image
      datasets) is gathered a whole batch at a time when ``collate_fn`` is None.
    """

    def __init__(self, dataset: Dataset, batch_size: Optional[int] = 1, shuffle: Optional[bool] = None,
                 sampler: Optional[Any] = None, batch_sampler: Optional[Any] = None,
                 num_workers: int = 0, collate_fn: Optional[Callable] = None,
                 pin_memory: bool = False, drop_last: bool = False, timeout: float = 0,
                 worker_init_fn: Optional[Callable[[int], None]] = None,
                 multiprocessing_context: Any = None, generator: Any = None, *,
                 prefetch_factor: Optional[int] = None, persistent_workers: bool = False,
                 pin_memory_device: str = "", in_order: bool = True) -> None:
        if not hasattr(dataset, "__getitem__") and not isinstance(dataset, IterableDataset):
            raise TypeError(f"DataLoader: dataset must be a Dataset (with __getitem__ and __len__), "
                            f"got {type(dataset).__name__}")
        if isinstance(num_workers, bool) or not isinstance(num_workers, numbers.Integral) \
                or num_workers < 0:
            raise ValueError("num_workers option should be non-negative; use num_workers=0 to "
                             "disable multithreading.")
        if not isinstance(timeout, numbers.Real) or timeout < 0:
            raise ValueError("timeout option should be non-negative")
        if prefetch_factor is not None and (not isinstance(prefetch_factor, numbers.Integral)
                                            or prefetch_factor < 1):
            raise ValueError(f"prefetch_factor must be a positive int, got {prefetch_factor!r}")
        if persistent_workers and num_workers == 0:
            raise ValueError("persistent_workers option needs num_workers > 0")
        if multiprocessing_context is not None:
            if num_workers == 0:
                raise ValueError("multiprocessing_context can only be used with multi-process "
                                 "loading (num_workers > 0), but got num_workers=0")
            if isinstance(multiprocessing_context, str) and multiprocessing_context not in (
                    "fork", "spawn", "forkserver"):
                raise ValueError("multiprocessing_context option should specify a valid start "
                                 "method in ['fork', 'spawn', 'forkserver'], but got "
                                 f"multiprocessing_context={multiprocessing_context!r}")
        if isinstance(generator, (numbers.Integral, np.integer)) and not isinstance(generator, bool):
            generator = _resolve_generator(generator)
        elif generator is not None and not isinstance(generator, np.random.Generator) \
                and not _is_torch_generator(generator):
            raise TypeError(f"DataLoader: generator must be a numpy.random.Generator, a "
                            f"torch.Generator, an int seed or None, got {type(generator).__name__}")
        self.dataset = dataset
        self.num_workers = int(num_workers)
        self.prefetch_factor = prefetch_factor
        self.pin_memory = pin_memory
        self.timeout = float(timeout)
        self.worker_init_fn = worker_init_fn
        self.generator = generator
        self.persistent_workers = persistent_workers
        self.multiprocessing_context = multiprocessing_context
        self.pin_memory_device = pin_memory_device
        self.in_order = in_order
        self._is_iterable = isinstance(dataset, IterableDataset)

        # torch's checks, in torch's order (so the same call raises the same error)
        if self._is_iterable:
            if shuffle not in (False, None):
                raise ValueError("DataLoader with IterableDataset: expected unspecified shuffle "
                                 f"option, but got shuffle={shuffle}")
            if sampler is not None:
                raise ValueError("DataLoader with IterableDataset: expected unspecified sampler "
                                 f"option, but got sampler={sampler}")
            if batch_sampler is not None:
                raise ValueError("DataLoader with IterableDataset: expected unspecified "
                                 f"batch_sampler option, but got batch_sampler={batch_sampler}")
        if sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("batch_sampler option is mutually exclusive with batch_size, "
                                 "shuffle, sampler, and drop_last")
            batch_size, drop_last = None, False
        elif batch_size is None and drop_last:
            raise ValueError("batch_size=None option disables auto-batching and is mutually "
                             "exclusive with drop_last")
        if batch_size is not None and (isinstance(batch_size, bool)
                                       or not isinstance(batch_size, numbers.Integral)
                                       or batch_size <= 0):
            raise ValueError(f"batch_size should be a positive integer value, but got "
                             f"batch_size={batch_size}")

        if sampler is None and not self._is_iterable:
            sampler = RandomSampler(dataset, generator=generator) if shuffle \
                else SequentialSampler(dataset)
        if batch_size is not None and batch_sampler is None and not self._is_iterable:
            batch_sampler = BatchSampler(sampler, batch_size, bool(drop_last))
        self.batch_size = batch_size
        self.drop_last = bool(drop_last)
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self._auto_collation = batch_sampler is not None or (self._is_iterable and batch_size is not None)
        if collate_fn is None:
            self._user_collate = False
            collate_fn = default_collate if self._auto_collation else default_convert
        else:
            self._user_collate = True
        self.collate_fn = collate_fn
        self._executor: Optional[ThreadPoolExecutor] = None

    # ---------------------------------------------------------------- sizes
    def __len__(self) -> int:
        if self._is_iterable:
            # torch: len(dataset), in batches when batching (a TypeError when the dataset has
            # no __len__); with num_workers > 0 an unsharded stream yields more than this
            if not hasattr(self.dataset, "__len__"):
                raise TypeError(f"object of type '{type(self.dataset).__name__}' has no len()")
            length = len(self.dataset)  # type: ignore[arg-type]
            if self.batch_size is not None:
                length = length // self.batch_size if self.drop_last \
                    else -(-length // self.batch_size)
            return length
        if self.batch_sampler is not None:
            return len(self.batch_sampler)
        return len(self.sampler)

    @property
    def _threads(self) -> int:
        if self.num_workers > 0:
            return self.num_workers
        return 1 if self.prefetch_factor is not None else 0

    # -------------------------------------------------------------- loading
    def _fetch(self, indices: Any, base_seed: int, batch_index: int) -> Any:
        """Load and collate one batch, with the batch's own generator for transforms."""
        previous = getattr(_local, "rng", None)
        _local.rng = np.random.Generator(np.random.PCG64([base_seed, batch_index]))
        try:
            if not self._auto_collation:
                return self.collate_fn(self.dataset[indices])
            if not self._user_collate:
                fetch = getattr(self.dataset, "_fetch_batch", None)
                if fetch is not None:
                    batch = fetch(indices)
                    if batch is not None:
                        # default_collate turns a batch of tuples into a list
                        if type(batch) is tuple:
                            batch = list(batch)
                        return batch
            getitems = getattr(self.dataset, "__getitems__", None)
            if getitems:  # torch's batched fetch hook
                return self.collate_fn(getitems(list(indices)))
            return self.collate_fn([self.dataset[i] for i in indices])
        finally:
            _local.rng = previous

    def _get_executor(self, base_seed: int) -> ThreadPoolExecutor:
        if self._executor is not None:
            return self._executor
        counter = itertools.count()
        lock = threading.Lock()
        threads = self._threads

        def initializer() -> None:
            with lock:
                worker_id = next(counter)
            # torch: seed = base_seed + worker_id (an int, e.g. for np.random.seed(seed % 2**32))
            _local.worker_info = WorkerInfo(worker_id, threads, base_seed + worker_id, self.dataset)
            if self.worker_init_fn is not None:
                self.worker_init_fn(worker_id)

        executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="pve-dataloader",
                                      initializer=initializer)
        if self.persistent_workers:
            self._executor = executor
        return executor

    def __iter__(self) -> Iterator[Any]:
        rng = _resolve_generator(self.generator)
        base_seed = int(rng.integers(0, 2 ** 63 - 1))
        if self._is_iterable:
            if self.num_workers > 0:
                return _StreamWorkersIter(self, base_seed)
            return self._iterate_stream(base_seed)
        source = iter(self.batch_sampler) if self._auto_collation else iter(self.sampler)
        if self._threads == 0:
            return self._iterate_sync(source, base_seed)
        return _ThreadedIter(self, source, base_seed)

    def _iterate_sync(self, source: Iterator[Any], base_seed: int) -> Iterator[Any]:
        for batch_index, indices in enumerate(source):
            yield self._fetch(indices, base_seed, batch_index)

    def _iterate_stream(self, base_seed: int, dataset: Any = None, seed_key: int = 0
                        ) -> Iterator[Any]:
        # An IterableDataset is read in order (in the calling thread, or in one worker)
        dataset = self.dataset if dataset is None else dataset
        previous = getattr(_local, "rng", None)
        _local.rng = np.random.Generator(np.random.PCG64([base_seed, seed_key]))
        try:
            if not self._auto_collation:
                for sample in dataset:
                    yield self.collate_fn(sample)
                return
            batch: List[Any] = []
            for sample in dataset:
                batch.append(sample)
                if len(batch) == self.batch_size:
                    yield self.collate_fn(batch)
                    batch = []
            if batch and not self.drop_last:
                yield self.collate_fn(batch)
        finally:
            _local.rng = previous

    def shutdown(self) -> None:
        """Stop persistent worker threads (they also stop at interpreter exit)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def __del__(self) -> None:
        try:
            if self._executor is not None:
                self._executor.shutdown(wait=False, cancel_futures=True)
        except Exception:
            pass


class _ThreadedIter:
    """Keeps up to ``threads * prefetch_factor`` batches in flight; yields them in order."""

    def __init__(self, loader: DataLoader, source: Iterator[Any], base_seed: int) -> None:
        self.loader = loader
        self.source = enumerate(source)
        self.base_seed = base_seed
        self.executor = loader._get_executor(base_seed)
        self.owns_executor = not loader.persistent_workers
        self.max_in_flight = loader._threads * (loader.prefetch_factor or 2)
        self.pending: Deque[Future] = collections.deque()
        self.exhausted = False
        self.closed = False
        self._fill()

    def _fill(self) -> None:
        while not self.exhausted and len(self.pending) < self.max_in_flight:
            try:
                batch_index, indices = next(self.source)
            except StopIteration:
                self.exhausted = True
                return
            self.pending.append(self.executor.submit(self.loader._fetch, indices, self.base_seed,
                                                     batch_index))

    def __iter__(self) -> "_ThreadedIter":
        return self

    def __next__(self) -> Any:
        if self.closed or not self.pending:
            self.close()
            raise StopIteration
        future = self.pending.popleft()
        try:
            result = future.result(timeout=self.loader.timeout or None)
        except _FutureTimeout:
            self.close()
            raise RuntimeError(f"DataLoader timed out after {self.loader.timeout:g} seconds "
                               "waiting for a batch from a worker thread") from None
        except BaseException:
            self.close()  # stop the other workers, then re-raise the worker's exception here
            raise
        self._fill()
        return result

    def __len__(self) -> int:
        return len(self.loader)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for f in self.pending:
            f.cancel()
        self.pending.clear()
        if self.owns_executor:
            self.executor.shutdown(wait=False, cancel_futures=True)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


_END = object()


class _StreamWorkersIter:
    """An IterableDataset with ``num_workers`` threads, as torch's worker processes: worker
    ``i`` calls ``worker_init_fn(i)`` and iterates its own copy of the dataset, batching it
    (its last partial batch is its own); the loader takes one batch from each live worker
    in turn. Each worker keeps at most ``prefetch_factor`` batches ready."""

    def __init__(self, loader: DataLoader, base_seed: int) -> None:
        import queue

        self.loader = loader
        self.n = loader.num_workers
        self.queues = [queue.Queue(maxsize=loader.prefetch_factor or 2) for _ in range(self.n)]
        self.stop = threading.Event()
        self.alive = list(range(self.n))
        self.turn = 0
        self.threads = []
        for worker_id in range(self.n):
            t = threading.Thread(target=self._work, args=(worker_id, base_seed), daemon=True,
                                 name=f"pve-dataloader-stream-{worker_id}")
            t.start()
            self.threads.append(t)

    def _put(self, q: Any, item: Any) -> bool:
        import queue

        while not self.stop.is_set():
            try:
                q.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _work(self, worker_id: int, base_seed: int) -> None:
        q = self.queues[worker_id]
        try:
            dataset = copy.copy(self.loader.dataset)
            _local.worker_info = WorkerInfo(worker_id, self.n, base_seed + worker_id, dataset)
            if self.loader.worker_init_fn is not None:
                self.loader.worker_init_fn(worker_id)
            for item in self.loader._iterate_stream(base_seed, dataset, seed_key=worker_id):
                if not self._put(q, (True, item)):
                    return
            self._put(q, (True, _END))
        except BaseException as exc:  # re-raised in the iterating thread
            self._put(q, (False, exc))

    def __iter__(self) -> "_StreamWorkersIter":
        return self

    def __next__(self) -> Any:
        import queue

        while self.alive:
            self.turn %= len(self.alive)
            worker_id = self.alive[self.turn]
            try:
                ok, item = self.queues[worker_id].get(timeout=self.loader.timeout or None)
            except queue.Empty:
                self.close()
                raise RuntimeError(f"DataLoader timed out after {self.loader.timeout:g} seconds "
                                   "waiting for a batch from a worker thread") from None
            if not ok:
                self.close()
                raise item
            if item is _END:
                self.alive.pop(self.turn)
                continue
            self.turn += 1
            return item
        self.close()
        raise StopIteration

    def close(self) -> None:
        self.stop.set()
        self.alive = []

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass
