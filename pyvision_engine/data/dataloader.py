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
import itertools
import numbers
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as _FutureTimeout
from typing import Any, Callable, Deque, Iterator, List, Mapping, Optional, Sequence

import numpy as np

from pyvision_engine.data.dataset import Dataset, IterableDataset
from pyvision_engine.data.sampler import (
    BatchSampler, RandomSampler, SequentialSampler, _resolve_generator,
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


def default_collate(batch: Sequence[Any]) -> Any:
    """Stack a list of samples into a batch, as torch's default_collate.

    Arrays and Tensors stack along a new first dim (float -> float32 Tensor,
    int -> int64 Tensor; uint8 stays a numpy uint8 array); Python numbers become
    a 1-D Tensor; tuples, lists and dicts are collated field by field; strings
    are kept as a list."""
    if len(batch) == 0:
        raise ValueError("default_collate: empty batch")
    elem = batch[0]
    if isinstance(elem, Tensor):
        return Tensor._wrap(np.stack([b._data for b in batch]))
    if isinstance(elem, np.ndarray):
        stacked = np.stack(batch)
        return stacked if stacked.dtype == np.uint8 else Tensor(stacked)
    if isinstance(elem, (bool, np.bool_)):
        return Tensor._wrap(np.asarray(batch, dtype=np.bool_))
    if isinstance(elem, (numbers.Integral, np.integer)):
        return Tensor._wrap(np.asarray(batch, dtype=np.int64))
    if isinstance(elem, (numbers.Real, np.floating)):
        return Tensor._wrap(np.asarray(batch, dtype=np.float32))
    if isinstance(elem, (str, bytes)):
        return list(batch)
    if isinstance(elem, Mapping):
        return {key: default_collate([d[key] for d in batch]) for key in elem}
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):  # namedtuple
        return type(elem)(*(default_collate(s) for s in zip(*batch)))
    if isinstance(elem, (tuple, list)):
        size = len(elem)
        if any(len(e) != size for e in batch):
            raise RuntimeError("default_collate: each element in list of batch should be of "
                               "equal size")
        return [default_collate(samples) for samples in zip(*batch)]
    if hasattr(elem, "detach") and hasattr(elem, "numpy"):  # a torch tensor
        return default_collate([e.detach().cpu().numpy() for e in batch])
    raise TypeError(f"default_collate: batch must contain tensors, numpy arrays, numbers, dicts "
                    f"or lists; found {type(elem).__name__}")


def default_convert(data: Any) -> Any:
    """What a loader with ``batch_size=None`` yields per sample (torch's default_convert):
    numpy arrays and numpy scalars become Tensors (uint8 arrays stay numpy, as in
    :func:`default_collate`), tuples become lists, dicts and lists are converted
    element by element; anything else is returned as is."""
    if isinstance(data, Tensor):
        return data
    if isinstance(data, (np.ndarray, np.number, np.bool_)):
        if isinstance(data, np.ndarray) and data.dtype.kind in "OSU":
            return data
        if isinstance(data, np.ndarray) and data.dtype == np.uint8:
            return data
        return Tensor(np.asarray(data))
    if isinstance(data, Mapping):
        return {key: default_convert(data[key]) for key in data}
    if isinstance(data, tuple) and hasattr(data, "_fields"):  # namedtuple
        return type(data)(*(default_convert(d) for d in data))
    if isinstance(data, tuple):
        return [default_convert(d) for d in data]  # a list, as torch's
    if isinstance(data, list):
        return [default_convert(d) for d in data]
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
    - ``pin_memory`` is accepted and ignored (CPU only).
    - ``timeout`` (seconds, > 0) bounds the wait for one batch from a worker.
    - An exception in a worker is re-raised in the iterating thread.
    - A dataset with ``_fetch_batch`` (TensorDataset, the built-in image
      datasets) is gathered a whole batch at a time when ``collate_fn`` is None.
    """

    def __init__(self, dataset: Dataset, batch_size: Optional[int] = 1, shuffle: Optional[bool] = None,
                 sampler: Optional[Any] = None, batch_sampler: Optional[Any] = None,
                 num_workers: int = 0, collate_fn: Optional[Callable] = None,
                 pin_memory: bool = False, drop_last: bool = False, timeout: float = 0,
                 worker_init_fn: Optional[Callable[[int], None]] = None,
                 generator: Any = None, *, prefetch_factor: Optional[int] = None,
                 persistent_workers: bool = False) -> None:
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
        if isinstance(generator, (numbers.Integral, np.integer)) and not isinstance(generator, bool):
            generator = _resolve_generator(generator)
        elif generator is not None and not isinstance(generator, np.random.Generator):
            raise TypeError(f"DataLoader: generator must be a numpy.random.Generator, an int seed "
                            f"or None, got {type(generator).__name__}")
        self.dataset = dataset
        self.num_workers = int(num_workers)
        self.prefetch_factor = prefetch_factor
        self.pin_memory = pin_memory
        self.timeout = float(timeout)
        self.worker_init_fn = worker_init_fn
        self.generator = generator
        self.persistent_workers = persistent_workers
        self._is_iterable = isinstance(dataset, IterableDataset)

        if self._is_iterable:
            if shuffle or sampler is not None or batch_sampler is not None:
                raise ValueError("DataLoader with IterableDataset: expected unspecified shuffle, "
                                 "sampler and batch_sampler options")
        elif batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("batch_sampler option is mutually exclusive with batch_size, "
                                 "shuffle, sampler, and drop_last")
            batch_size, drop_last = None, False
        elif batch_size is None and drop_last:
            raise ValueError("batch_size=None option disables auto-batching and is mutually "
                             "exclusive with drop_last")
        if sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")
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
            raise TypeError("DataLoader over an IterableDataset has no len()")
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
            return self.collate_fn([self.dataset[i] for i in indices])
        finally:
            _local.rng = previous

    def _get_executor(self) -> ThreadPoolExecutor:
        if self._executor is not None:
            return self._executor
        counter = itertools.count()
        lock = threading.Lock()
        threads = self._threads

        def initializer() -> None:
            with lock:
                worker_id = next(counter)
            _local.worker_info = WorkerInfo(worker_id, threads, None, self.dataset)
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
            return self._iterate_stream(base_seed)
        source = iter(self.batch_sampler) if self._auto_collation else iter(self.sampler)
        if self._threads == 0:
            return self._iterate_sync(source, base_seed)
        return _ThreadedIter(self, source, base_seed)

    def _iterate_sync(self, source: Iterator[Any], base_seed: int) -> Iterator[Any]:
        for batch_index, indices in enumerate(source):
            yield self._fetch(indices, base_seed, batch_index)

    def _iterate_stream(self, base_seed: int) -> Iterator[Any]:
        # An IterableDataset is read in order in the calling thread.
        previous = getattr(_local, "rng", None)
        _local.rng = np.random.Generator(np.random.PCG64([base_seed, 0]))
        try:
            if not self._auto_collation:
                for sample in self.dataset:
                    yield self.collate_fn(sample)
                return
            batch: List[Any] = []
            for sample in self.dataset:
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
        self.executor = loader._get_executor()
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
