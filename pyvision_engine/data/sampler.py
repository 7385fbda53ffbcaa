"""Samplers: the order in which a DataLoader visits a dataset (torch's names).

Randomness comes from a numpy ``Generator`` (``generator=``; an int is taken as
a seed) or, when none is given, from the engine's generator that
``pve.manual_seed`` seeds, so a seeded run visits the same order every time.
"""

from __future__ import annotations

import numbers
from typing import Any, Iterator, List, Optional, Sequence, Sized

import numpy as np

__all__ = ["Sampler", "SequentialSampler", "RandomSampler", "SubsetRandomSampler",
           "WeightedRandomSampler", "BatchSampler"]


def _resolve_generator(generator: Any) -> np.random.Generator:
    """The numpy Generator to draw from: the given one, a new one for an int seed,
    or the engine's default generator (read at call time, so manual_seed applies)."""
    if generator is None:
        from pyvision_engine.random import default_generator

        return default_generator()
    if isinstance(generator, np.random.Generator):
        return generator
    if isinstance(generator, (numbers.Integral, np.integer)) and not isinstance(generator, bool):
        return np.random.Generator(np.random.PCG64(int(generator)))
    if _is_torch_generator(generator):
        # a torch.Generator (ported code): draw one 64-bit seed from it, as torch's
        # DataLoader draws its base seed, so it advances and a seeded one repeats
        import torch

        seed = int(torch.empty((), dtype=torch.int64).random_(generator=generator).item())
        return np.random.Generator(np.random.PCG64(seed))
    raise TypeError(f"generator must be a numpy.random.Generator, a torch.Generator, an int seed "
                    f"or None, got {type(generator).__name__}")


def _is_torch_generator(generator: Any) -> bool:
    return type(generator).__module__.startswith("torch") and hasattr(generator, "manual_seed") \
        and hasattr(generator, "initial_seed")


class Sampler:
    """Base class: iterating yields dataset indices."""

    def __iter__(self) -> Iterator[int]:
        raise NotImplementedError

    def __len__(self) -> int:
        raise TypeError(f"{type(self).__name__} has no len()")


class SequentialSampler(Sampler):
    """0, 1, ..., len(data_source) - 1."""

    def __init__(self, data_source: Sized) -> None:
        self.data_source = data_source

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self.data_source)))

    def __len__(self) -> int:
        return len(self.data_source)


class RandomSampler(Sampler):
    """A fresh random permutation each epoch (or ``num_samples`` draws with replacement)."""

    def __init__(self, data_source: Sized, replacement: bool = False,
                 num_samples: Optional[int] = None, generator: Any = None) -> None:
        if not isinstance(replacement, bool):
            raise TypeError(f"replacement should be a boolean value, but got replacement={replacement}")
        if num_samples is not None and (not isinstance(num_samples, int) or num_samples <= 0):
            raise ValueError(f"num_samples should be a positive integer value, but got "
                             f"num_samples={num_samples}")
        self.data_source = data_source
        self.replacement = replacement
        self._num_samples = num_samples
        self.generator = generator if not isinstance(generator, (int, np.integer)) \
            else _resolve_generator(generator)

    @property
    def num_samples(self) -> int:
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __iter__(self) -> Iterator[int]:
        n = len(self.data_source)
        rng = _resolve_generator(self.generator)
        if self.replacement:
            return iter(rng.integers(0, n, size=self.num_samples).tolist())
        order: List[int] = []
        while len(order) < self.num_samples:  # num_samples > n repeats whole permutations
            order.extend(rng.permutation(n).tolist())
        return iter(order[:self.num_samples])

    def __len__(self) -> int:
        return self.num_samples


class SubsetRandomSampler(Sampler):
    """The given indices in a random order each epoch."""

    def __init__(self, indices: Sequence[int], generator: Any = None) -> None:
        self.indices = list(indices)
        self.generator = generator

    def __iter__(self) -> Iterator[int]:
        rng = _resolve_generator(self.generator)
        return iter([self.indices[i] for i in rng.permutation(len(self.indices))])

    def __len__(self) -> int:
        return len(self.indices)


class WeightedRandomSampler(Sampler):
    """``num_samples`` indices drawn from ``[0, len(weights))`` with probabilities proportional
    to ``weights`` (torch's ``torch.multinomial(weights, num_samples, replacement)``), with
    replacement by default. Without replacement ``num_samples`` may not exceed
    ``len(weights)`` (RuntimeError, as torch), and zero-weight indices come last."""

    def __init__(self, weights: Sequence[float], num_samples: int, replacement: bool = True,
                 generator: Any = None) -> None:
        if not isinstance(num_samples, int) or isinstance(num_samples, bool) or num_samples <= 0:
            raise ValueError(f"num_samples should be a positive integer value, but got "
                             f"num_samples={num_samples}")
        if not isinstance(replacement, bool):
            raise ValueError(f"replacement should be a boolean value, but got "
                             f"replacement={replacement}")
        if hasattr(weights, "detach") and hasattr(weights, "numpy"):
            weights = weights.detach().cpu().numpy()
        w = np.asarray(getattr(weights, "_data", weights), dtype=np.float64)
        if w.ndim != 1:
            raise ValueError(f"weights should be a 1d sequence but given weights have shape "
                             f"{tuple(w.shape)}")
        self.weights = w
        self.num_samples = num_samples
        self.replacement = replacement
        self.generator = generator

    def __iter__(self) -> Iterator[int]:
        w = self.weights
        if w.size == 0 or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise RuntimeError("invalid multinomial distribution (sum of probabilities <= 0, or "
                               "a weight that is negative, inf or nan)")
        if not self.replacement and self.num_samples > w.size:
            raise RuntimeError("cannot sample n_sample > prob_dist.size(-1) samples without "
                               "replacement")
        rng = _resolve_generator(self.generator)
        if self.replacement:
            return iter(rng.choice(w.size, size=self.num_samples, p=w / w.sum()).tolist())
        nonzero = np.flatnonzero(w)
        k = min(self.num_samples, nonzero.size)
        order = nonzero[rng.choice(nonzero.size, size=k, replace=False, p=w[nonzero] / w.sum())]
        if self.num_samples > k:  # torch then draws the zero-weight categories, uniformly
            order = np.concatenate([order, rng.permutation(np.flatnonzero(w == 0))[:self.num_samples - k]])
        return iter(order.tolist())

    def __len__(self) -> int:
        return self.num_samples


class BatchSampler(Sampler):
    """Groups a sampler's indices into lists of ``batch_size``."""

    def __init__(self, sampler: Any, batch_size: int, drop_last: bool) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) \
                or batch_size <= 0:
            raise ValueError(f"batch_size should be a positive integer value, but got "
                             f"batch_size={batch_size}")
        if not isinstance(drop_last, bool):
            raise ValueError(f"drop_last should be a boolean value, but got drop_last={drop_last}")
        self.sampler = sampler
        self.batch_size = int(batch_size)
        self.drop_last = drop_last

    def __iter__(self) -> Iterator[List[int]]:
        batch: List[Any] = []
        for idx in self.sampler:  # indices pass through as the sampler gives them (torch)
            batch.append(idx)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
