"""The engine's random number generator (weight init, dropout, shuffling).

One numpy PCG64 generator seeded by ``pve.manual_seed``; its state is a plain
dict of integers, so checkpoints store it as JSON, never with pickle.
"""

from __future__ import annotations

import threading
from typing import Any, Dict

import numpy as np

__all__ = ["manual_seed", "seed", "initial_seed", "default_generator", "get_rng_state",
           "set_rng_state"]

_lock = threading.Lock()
_state: Dict[str, Any] = {"seed": None, "generator": np.random.Generator(np.random.PCG64())}


def manual_seed(seed: int) -> np.random.Generator:
    """Seed the engine's generator; the same seed gives the same weights and batches.
    As torch's, a seed is a 64-bit integer: a negative one stands for its two's
    complement (-1 is 2**64 - 1), and one outside [-2**63, 2**64) is a ValueError."""
    seed = int(seed)
    if not -2 ** 63 <= seed < 2 ** 64:
        raise ValueError(f"Overflow when unpacking long long: manual_seed({seed}) needs a 64-bit seed")
    seed &= 0xFFFF_FFFF_FFFF_FFFF
    with _lock:
        _state["seed"] = seed
        _state["generator"] = np.random.Generator(np.random.PCG64(seed))
        return _state["generator"]


def seed() -> int:
    """Seed with fresh entropy; returns the seed used."""
    s = int(np.random.SeedSequence().entropy % (2 ** 63))
    manual_seed(s)
    return s


def initial_seed() -> int:
    return _state["seed"] if _state["seed"] is not None else -1


def default_generator() -> np.random.Generator:
    return _state["generator"]


def get_rng_state() -> Dict[str, Any]:
    """The generator's state as a JSON-serialisable dict."""
    return default_generator().bit_generator.state


def set_rng_state(state: Dict[str, Any]) -> None:
    if not isinstance(state, dict) or state.get("bit_generator") != "PCG64":
        raise ValueError("set_rng_state: expected a PCG64 state dict from get_rng_state()")
    generator = np.random.Generator(np.random.PCG64())
    generator.bit_generator.state = state
    with _lock:
        _state["generator"] = generator
