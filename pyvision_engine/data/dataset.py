"""Datasets: torch.utils.data's Dataset, TensorDataset, Subset, ConcatDataset, random_split.

A dataset may also define ``_fetch_batch(indices) -> batch`` (already
collated); the DataLoader uses it when no ``collate_fn`` is given, so a batch
of an in-memory dataset is one fancy-indexing gather instead of N Python calls.
"""

from __future__ import annotations

import bisect
import math
import numbers
from typing import Any, Generic, Iterable, List, Optional, Sequence, Tuple, TypeVar, Union

import numpy as np

from pyvision_engine.tensor import Tensor

__all__ = ["Dataset", "IterableDataset", "ChainDataset", "TensorDataset", "Subset",
           "ConcatDataset", "ArrayImageDataset", "random_split"]

T_co = TypeVar("T_co", covariant=True)


class Dataset(Generic[T_co]):
    """A map-style dataset: ``__getitem__(index)`` and ``__len__``."""

    def __getitem__(self, index: int) -> T_co:
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__")

    def __add__(self, other: "Dataset") -> "ConcatDataset":
        return ConcatDataset([self, other])


class IterableDataset(Dataset[T_co]):
    """A stream of samples (``__iter__``); the DataLoader batches it in order. ``a + b``
    chains two streams (:class:`ChainDataset`), as torch."""

    def __iter__(self):
        raise NotImplementedError(f"{type(self).__name__} must implement __iter__")

    def __add__(self, other: "Dataset") -> "ChainDataset":  # type: ignore[override]
        return ChainDataset([self, other])


class ChainDataset(IterableDataset):
    """Several IterableDatasets one after the other, lazily (torch's ChainDataset)."""

    def __init__(self, datasets: Iterable[Dataset]) -> None:
        self.datasets = datasets

    def __iter__(self):
        for d in self.datasets:
            if not isinstance(d, IterableDataset):
                raise TypeError("ChainDataset only supports IterableDataset")
            yield from d

    def __len__(self) -> int:
        total = 0
        for d in self.datasets:
            if not isinstance(d, IterableDataset):
                raise TypeError("ChainDataset only supports IterableDataset")
            total += len(d)  # type: ignore[arg-type]
        return total


def _as_numpy(value: Any, name: str) -> np.ndarray:
    if isinstance(value, Tensor):
        return value._data
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "detach") and hasattr(value, "numpy"):
        return value.detach().cpu().numpy()  # a torch tensor
    try:
        return np.asarray(value)
    except Exception:
        raise TypeError(f"{name}: expected tensors or arrays, got {type(value).__name__}") from None


class _SizeMismatchError(ValueError, AssertionError):
    """TensorDataset's size mismatch: torch raises AssertionError; a ValueError here too."""


class TensorDataset(Dataset):
    """Samples are the i-th rows of each tensor: ``TensorDataset(images, labels)``.

    The tensors (pve Tensors, numpy arrays or torch tensors) must share their
    first dimension. Items are pve Tensors (float32 / int64) or, for uint8
    arrays, numpy uint8 rows (the engine's tensors hold float32/int64 only).
    """

    def __init__(self, *tensors: Any) -> None:
        if not tensors:
            raise ValueError("TensorDataset: needs at least one tensor")
        arrays = [_as_numpy(t, "TensorDataset") for t in tensors]
        for i, a in enumerate(arrays):
            if a.ndim == 0:
                raise ValueError(f"TensorDataset: tensor {i} is 0-d; every tensor needs a first "
                                 "(sample) dimension")
        n = arrays[0].shape[0]
        sizes = [a.shape[0] for a in arrays]
        if any(s != n for s in sizes):
            raise _SizeMismatchError(
                "Size mismatch between tensors: TensorDataset's tensors must share their first "
                f"dim (size mismatch: first dims {sizes})")
        self.arrays: Tuple[np.ndarray, ...] = tuple(_engine_dtype(a) for a in arrays)
        self.tensors = tuple(_wrap(a) for a in self.arrays)

    def __len__(self) -> int:
        return self.arrays[0].shape[0]

    def __getitem__(self, index: Any) -> Tuple[Any, ...]:
        # torch indexes each tensor with ``index``: slices, lists and arrays of
        # indices (or a bool mask) give a tuple of batched rows.
        if isinstance(index, slice):
            return tuple(_wrap(np.ascontiguousarray(a[index])) for a in self.arrays)
        if isinstance(index, (list, np.ndarray)) or (isinstance(index, Tensor) and index.ndim > 0):
            idx = np.asarray(index._data if isinstance(index, Tensor) else index)
            if idx.dtype != np.bool_:
                if idx.size and idx.dtype.kind not in "iu":
                    raise TypeError(f"TensorDataset: index arrays must hold integers, got "
                                    f"{idx.dtype}")
                idx = idx.astype(np.int64)
                n = len(self)
                if idx.size and (idx.min() < -n or idx.max() >= n):
                    raise IndexError(f"TensorDataset: index out of range for a dataset of {n} "
                                     "samples")
            elif idx.shape != (len(self),):
                raise IndexError(f"TensorDataset: a mask of shape {idx.shape} for a dataset of "
                                 f"{len(self)} samples")
            return tuple(_wrap(np.ascontiguousarray(a[idx])) for a in self.arrays)
        index = _check_index(index, len(self), "TensorDataset")
        return tuple(_wrap(np.asarray(a[index], order="C")) for a in self.arrays)

    def _fetch_batch(self, indices: Sequence[int]) -> Tuple[Any, ...]:
        idx = np.asarray(indices, dtype=np.int64)
        return tuple(_wrap(np.take(a, idx, axis=0)) for a in self.arrays)


def _engine_dtype(a: np.ndarray) -> np.ndarray:
    if a.dtype == np.uint8 or a.dtype in (np.float32, np.int64, np.bool_):
        return np.asarray(a, order="C")
    if a.dtype.kind == "f":
        return np.asarray(a, dtype=np.float32, order="C")
    if a.dtype.kind in "iu":
        return np.asarray(a, dtype=np.int64, order="C")
    if a.dtype.kind == "b":
        return np.asarray(a, order="C")
    raise TypeError(f"TensorDataset: unsupported dtype {a.dtype}")


def _wrap(a: np.ndarray) -> Any:
    """pve Tensor for float32/int64/bool data; uint8 stays a numpy array."""
    if a.dtype == np.uint8:
        return a
    return Tensor._wrap(np.asarray(a, order="C"))


def _check_index(index: Any, n: int, owner: str) -> int:
    if isinstance(index, Tensor):
        index = index.item()
    if not isinstance(index, (numbers.Integral, np.integer)):
        raise TypeError(f"{owner}: index must be an integer, got {type(index).__name__}")
    i = int(index)
    if not -n <= i < n:
        raise IndexError(f"{owner}: index {i} is out of range for a dataset of {n} samples")
    return i % n


class ArrayImageDataset(Dataset):
    """In-memory uint8 images (N, H, W, C) with integer class targets.

    ``transform`` is applied per image (a uint8 HWC array, as torchvision applies
    it to a PIL image); a :class:`~pyvision_engine.data.transforms.BatchTransform`
    (e.g. ``BatchAugment``) is instead applied once per batch by the DataLoader,
    in the Cython kernel. ``classes`` names the targets.
    """

    def __init__(self, images: np.ndarray, targets: Any, transform: Optional[Any] = None,
                 target_transform: Optional[Any] = None,
                 classes: Optional[Sequence[str]] = None) -> None:
        images = np.asarray(images)
        if images.dtype != np.uint8:
            raise TypeError(f"{type(self).__name__}: images must be uint8, got {images.dtype}")
        if images.ndim == 3:
            images = images[..., None]
        if images.ndim != 4:
            raise ValueError(f"{type(self).__name__}: images must be (N, H, W, C) or (N, H, W), "
                             f"got shape {images.shape}")
        targets = np.asarray(targets, dtype=np.int64).reshape(-1)
        if targets.shape[0] != images.shape[0]:
            raise ValueError(f"{type(self).__name__}: {images.shape[0]} images but "
                             f"{targets.shape[0]} targets")
        self.data = np.ascontiguousarray(images)
        self.targets = targets
        self.transform = transform
        self.target_transform = target_transform
        n_classes = int(targets.max()) + 1 if targets.size else 0
        self.classes = list(classes) if classes is not None else [str(i) for i in range(n_classes)]

    def __len__(self) -> int:
        return self.data.shape[0]

    def __getitem__(self, index: int) -> Tuple[Any, int]:
        i = _check_index(index, len(self), type(self).__name__)
        image: Any = self.data[i]
        target: Any = int(self.targets[i])
        if self.transform is not None:
            from pyvision_engine.data.transforms import BatchTransform

            if isinstance(self.transform, BatchTransform):
                image = self.transform(image[None])[0]
            else:
                image = self.transform(image)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return image, target

    def _fetch_batch(self, indices: Sequence[int]) -> Optional[Tuple[Any, Any]]:
        from pyvision_engine.data.transforms import BatchTransform

        if self.target_transform is not None or not (
                self.transform is None or isinstance(self.transform, BatchTransform)):
            return None  # per-sample path
        idx = np.asarray(indices, dtype=np.int64)
        images = np.take(self.data, idx, axis=0)
        targets = Tensor._wrap(np.take(self.targets, idx))
        if self.transform is not None:
            return self.transform(images), targets
        return images, targets


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``."""

    def __init__(self, dataset: Dataset, indices: Sequence[int]) -> None:
        self.dataset = dataset
        self.indices = [int(i) for i in indices]

    def __getitem__(self, idx: Any) -> Any:
        if isinstance(idx, list):  # torch: a list of indices is passed on as one list
            return self.dataset[[self.indices[i] for i in idx]]
        return self.dataset[self.indices[_check_index(idx, len(self), "Subset")]]

    def __len__(self) -> int:
        return len(self.indices)

    def _fetch_batch(self, indices: Sequence[int]) -> Any:
        fetch = getattr(self.dataset, "_fetch_batch", None)
        if fetch is None:
            return None
        return fetch([self.indices[i] for i in indices])


class _ConcatIterableError(TypeError, AssertionError):
    """torch asserts (AssertionError); a TypeError here too."""


class ConcatDataset(Dataset):
    """Several datasets one after the other."""

    def __init__(self, datasets: Iterable[Dataset]) -> None:
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("ConcatDataset: datasets should not be an empty iterable")
        self.cumulative_sizes: List[int] = []
        total = 0
        for d in self.datasets:
            if isinstance(d, IterableDataset):
                raise _ConcatIterableError("ConcatDataset does not support IterableDataset")
            total += len(d)
            self.cumulative_sizes.append(total)

    def __len__(self) -> int:
        return self.cumulative_sizes[-1]

    def __getitem__(self, idx: int) -> Any:
        idx = _check_index(idx, len(self), "ConcatDataset")
        which = bisect.bisect_right(self.cumulative_sizes, idx)
        start = self.cumulative_sizes[which - 1] if which > 0 else 0
        return self.datasets[which][idx - start]


def random_split(dataset: Dataset, lengths: Sequence[Union[int, float]],
                 generator: Optional[Any] = None) -> List[Subset]:
    """Split into non-overlapping Subsets of the given lengths, as torch.utils.data.random_split.

    As torch, ``lengths`` are fractions when they sum to 1 (each must lie in [0, 1]; the
    floors of ``n * fraction`` are topped up round-robin with the remainder), else counts
    that must sum to ``len(dataset)``. ``generator``: a numpy Generator, an int seed, a
    ``torch.Generator`` (then the permutation is ``torch.randperm(n, generator=...)``, so
    the split equals torch's for the same seed), or None (the engine's generator, seeded
    by ``pve.manual_seed``)."""
    import warnings

    from pyvision_engine.data.sampler import _is_torch_generator, _resolve_generator

    n = len(dataset)  # type: ignore[arg-type]
    lengths = list(lengths)
    if not lengths:
        raise ValueError("random_split: lengths must not be empty")
    if math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        counts: List[int] = []
        for i, frac in enumerate(lengths):
            if frac < 0 or frac > 1:
                raise ValueError(f"Fraction at index {i} is not between 0 and 1")
            counts.append(int(math.floor(n * frac)))
        for i in range(n - sum(counts)):  # distribute the remainder round-robin, as torch
            counts[i % len(counts)] += 1
        for i, length in enumerate(counts):
            if length == 0:
                warnings.warn(f"Length of split at index {i} is 0. This might result in an empty "
                              "dataset.", stacklevel=2)
        lengths = counts
    if sum(lengths) != n:
        raise ValueError("Sum of input lengths does not equal the length of the input dataset!")
    if any(int(x) != x or x < 0 for x in lengths):
        raise ValueError(f"random_split: lengths must be non-negative ints or fractions, got {lengths}")
    if _is_torch_generator(generator):
        import torch

        perm = torch.randperm(n, generator=generator).tolist()
    else:
        perm = _resolve_generator(generator).permutation(n).tolist()
    out, offset = [], 0
    for length in lengths:
        out.append(Subset(dataset, perm[offset:offset + int(length)]))
        offset += int(length)
    return out
