"""Saving and loading without pickle: safetensors files, written atomically.

- ``pve.save(state_dict, path)`` writes a plain safetensors file (tensor name ->
  array) that ``safetensors.numpy.load_file`` and ``safetensors.torch.load_file``
  read as they are.
- Anything nested (a training checkpoint: model, optimizer and scheduler state
  dicts, epoch, RNG state, metrics) is flattened: every array becomes one
  safetensors tensor named by its path (``optimizer/state/0/exp_avg``) and the
  rest of the structure (numbers, strings, lists, dicts with int keys, tuples)
  becomes JSON in the safetensors header under ``pve_checkpoint``.
- Every write goes to a temporary file in the same directory, is fsync'ed,
  renamed over the target with ``os.replace`` and the directory fsync'ed, so a
  crash or kill mid-save leaves either the old file or the new one, never a
  broken one.
- Reading checks the header before parsing: a truncated or damaged file, or a
  pickle / torch zip file named like a weights file, raises ``ValueError``
  naming the file. Nothing is ever unpickled.

safetensors is imported lazily (``import pyvision_engine`` stays light).
"""

from __future__ import annotations

import json
import math
import numbers
import os
import struct
import tempfile
from collections import OrderedDict
from typing import Any, Dict, Optional, Tuple, Union

import numpy as np

from pyvision_engine.tensor import Tensor

__all__ = ["save", "load", "save_checkpoint", "load_checkpoint", "read_metadata", "CheckpointError"]

PathLike = Union[str, "os.PathLike[str]"]
_META_KEY = "pve_checkpoint"
_FORMAT_VERSION = 1
_MAX_HEADER = 100 * 1024 * 1024


class CheckpointError(ValueError):
    """A weights or checkpoint file is damaged, truncated, or not a safetensors file."""


# ------------------------------------------------------------ array helpers
def _to_numpy(value: Any, where: str) -> np.ndarray:
    if isinstance(value, Tensor):
        return value._data
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "detach") and hasattr(value, "numpy"):  # a torch tensor
        return value.detach().cpu().numpy()
    raise TypeError(f"{where}: expected a tensor or numpy array, got {type(value).__name__}")


def _is_array(value: Any) -> bool:
    return isinstance(value, (Tensor, np.ndarray)) or (
        hasattr(value, "detach") and hasattr(value, "numpy") and hasattr(value, "shape"))


def _contig(a: np.ndarray, dtype: Any = None) -> np.ndarray:
    """C-contiguous copy if needed; unlike np.ascontiguousarray, keeps 0-d arrays 0-d."""
    return np.asarray(a, dtype=dtype, order="C")


def _from_numpy(a: np.ndarray) -> Any:
    """Engine tensors for float32/int64/bool; other floats -> float32, ints -> int64."""
    if a.dtype in (np.float32, np.int64, np.bool_):
        return Tensor._wrap(_contig(a))
    if a.dtype.kind == "f":
        return Tensor._wrap(_contig(a, np.float32))
    if a.dtype.kind in "iu":
        return Tensor._wrap(_contig(a, np.int64))
    return a


# --------------------------------------------------------- atomic writing
def _write_all(f: Any, data: bytes) -> None:
    """Write ``data`` to an open binary file (a seam for the crash-during-save test)."""
    f.write(data)


def _fsync_dir(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # some filesystems/platforms do not allow opening a directory
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a mix:
    temp file in the same directory + fsync + os.replace + fsync of the directory."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"cannot save {path}: directory {directory} does not exist")
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            _write_all(f, data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(directory)


# -------------------------------------------------------- header checking
def _looks_like_pickle(head: bytes) -> bool:
    # Pickle protocols 2-5 start with PROTO (0x80) and the protocol number; a lone 0x80 is
    # also the low byte of a 128-byte (or 384, 640...) safetensors header length.
    return len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def _is_offset(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_file(path: str) -> Tuple[Dict[str, Any], int]:
    """Validate the safetensors framing by hand; return (parsed header, offset of the data).

    safetensors itself is memory safe; this gives errors that name the file and
    say what is wrong, and recognises pickles without ever unpickling them."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such file: {path}")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a directory, not a weights file")
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        header_len = struct.unpack("<Q", head)[0] if len(head) == 8 else 0
        fits = 0 < header_len <= _MAX_HEADER and 8 + header_len <= size
        raw = f.read(header_len) if fits else b""
    if not fits or raw[:1] != b"{":
        # Not safetensors framing: say what it is instead, without ever unpickling it.
        if _looks_like_pickle(head) or head[:4] == b"PK\x03\x04":
            kind = "a pickle" if head[:1] == b"\x80" else "a zip archive (torch.save format)"
            raise CheckpointError(
                f"{path} is {kind}, not a safetensors file; pyvision_engine never unpickles "
                "files (pickle can run code). Convert it with torch: "
                "safetensors.torch.save_file(torch.load(f, weights_only=True), 'model.safetensors')")
        if len(head) < 8:
            raise CheckpointError(f"{path}: truncated or empty file ({size} bytes), not a "
                                  "safetensors file")
        if not fits:
            raise CheckpointError(f"{path}: damaged or truncated safetensors file (header length "
                                  f"{header_len} does not fit in {size} bytes)")
        raise CheckpointError(f"{path}: damaged safetensors file (header is not a JSON object)")
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise CheckpointError(f"{path}: damaged safetensors file (header is not valid JSON)") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: damaged safetensors file (header is not a JSON object)")
    meta = header.get("__metadata__")
    if meta is not None and not (isinstance(meta, dict) and all(
            isinstance(v, str) for v in meta.values())):
        raise CheckpointError(f"{path}: damaged safetensors file (__metadata__ is not str -> str)")
    data_len = size - 8 - header_len
    end = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        shape = info.get("shape") if isinstance(info, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(map(_is_offset, offsets))
                and offsets[0] <= offsets[1] and isinstance(info.get("dtype"), str)
                and isinstance(shape, list) and all(map(_is_offset, shape))):
            raise CheckpointError(f"{path}: damaged safetensors file (bad entry for {name!r})")
        end = max(end, offsets[1])
    if end > data_len:
        raise CheckpointError(f"{path}: truncated safetensors file (tensors need {end} bytes of "
                              f"data, the file has {data_len})")
    return header, 8 + header_len


def _bf16_to_float32(path: str, data_start: int, info: Dict[str, Any]) -> np.ndarray:
    """numpy has no bfloat16: widen it exactly (bf16 is the top 16 bits of a float32)."""
    start, end = info["data_offsets"]
    with open(path, "rb") as f:
        f.seek(data_start + start)
        raw = np.frombuffer(f.read(end - start), dtype="<u2")
    return (raw.astype(np.uint32) << 16).view(np.float32).reshape(info["shape"])


def _read_safetensors(path: PathLike) -> Tuple["OrderedDict[str, np.ndarray]", Dict[str, str]]:
    path = os.fspath(path)
    header, data_start = _check_file(path)
    from safetensors import SafetensorError, safe_open

    try:
        # safe_open checks every entry's size against its dtype and shape before any read.
        with safe_open(path, framework="numpy") as f:
            arrays = {name: _bf16_to_float32(path, data_start, header[name])
                      if header[name]["dtype"] == "BF16" else f.get_tensor(name)
                      for name in f.keys()}
    except (SafetensorError, ValueError, TypeError, OSError) as e:
        raise CheckpointError(f"{path}: damaged safetensors file: {e}") from None
    metadata = header.get("__metadata__") or {}
    # Keep the file's order (safetensors returns them sorted by name).
    ordered = OrderedDict()
    for name in sorted((k for k in header if k != "__metadata__"),
                       key=lambda k: header[k]["data_offsets"][0]):
        ordered[name] = arrays[name]
    return ordered, metadata


def _serialize(arrays: Dict[str, np.ndarray], metadata: Optional[Dict[str, str]]) -> bytes:
    from safetensors.numpy import save as st_save

    contiguous = {k: _contig(v) for k, v in arrays.items()}
    return st_save(contiguous, metadata=metadata)


# ------------------------------------------------------ nested structures
class _Encoder:
    """Turns a nested structure into (JSON skeleton, {name: array})."""

    def __init__(self) -> None:
        self.arrays: "OrderedDict[str, np.ndarray]" = OrderedDict()

    def encode(self, obj: Any, path: str) -> Any:
        if _is_array(obj):
            name = path or "tensor"
            if name in self.arrays:
                raise ValueError(f"save: two values map to the tensor name {name!r}")
            self.arrays[name] = _contig(_to_numpy(obj, path))
            return {"__tensor__": name}
        if obj is None or isinstance(obj, (bool, str)):
            return obj
        if isinstance(obj, np.generic):
            obj = obj.item()
        if isinstance(obj, numbers.Integral):
            return int(obj)
        if isinstance(obj, numbers.Real):
            f = float(obj)
            return f if math.isfinite(f) else {"__float__": repr(f)}
        if isinstance(obj, dict):
            keys = list(obj.keys())
            if all(isinstance(k, str) and not k.startswith("__") and "/" not in k for k in keys):
                return {k: self.encode(v, f"{path}/{k}" if path else k) for k, v in obj.items()}
            items = []
            for k, v in obj.items():
                if not (k is None or isinstance(k, (str, bool, numbers.Integral, numbers.Real))):
                    raise TypeError(f"save: dict key {k!r} at {path or '<root>'} is not a str or number")
                key = k.item() if isinstance(k, np.generic) else k
                items.append([key, self.encode(v, f"{path}/{k}" if path else str(k))])
            return {"__items__": items}
        if isinstance(obj, tuple):
            return {"__tuple__": [self.encode(v, f"{path}/{i}") for i, v in enumerate(obj)]}
        if isinstance(obj, list):
            return [self.encode(v, f"{path}/{i}") for i, v in enumerate(obj)]
        raise TypeError(f"save: cannot store a {type(obj).__name__} at {path or '<root>'} "
                        "(tensors, numbers, strings, lists, tuples and dicts only; no pickle)")


def _decode(obj: Any, arrays: Dict[str, np.ndarray], path: str) -> Any:
    if isinstance(obj, list):
        return [_decode(v, arrays, path) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "__tensor__" in obj:
        name = obj["__tensor__"]
        if name not in arrays:
            raise CheckpointError(f"{path}: checkpoint refers to a missing tensor {name!r}")
        return _from_numpy(arrays[name])
    if "__float__" in obj:
        return float(obj["__float__"])
    if "__tuple__" in obj:
        return tuple(_decode(v, arrays, path) for v in obj["__tuple__"])
    if "__items__" in obj:
        return {k: _decode(v, arrays, path) for k, v in obj["__items__"]}
    return {k: _decode(v, arrays, path) for k, v in obj.items()}


def _is_flat_state_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and all(isinstance(k, str) and _is_array(v) for k, v in obj.items())


# ------------------------------------------------------------- public API
def save(obj: Any, path: PathLike, metadata: Optional[Dict[str, str]] = None) -> None:
    """Save a state_dict (name -> tensor) as a safetensors file, atomically.

    ``obj`` may also be nested (dicts, lists, tuples of tensors and numbers, e.g.
    an optimizer's state_dict or a whole checkpoint): it is then stored as
    tensors + JSON, and :func:`load` gives the same structure back.
    ``metadata`` (str -> str) goes into the safetensors header."""
    if metadata is not None and not (isinstance(metadata, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())):
        raise TypeError("save: metadata must be a dict of str -> str")
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"save: path must be a str or os.PathLike, got {type(path).__name__}")
    meta = {"format": "pt"}
    meta.update(metadata or {})
    if _is_flat_state_dict(obj):
        arrays = OrderedDict((k, _to_numpy(v, f"save: {k}")) for k, v in obj.items())
        for k, a in arrays.items():
            if a.dtype == object:
                raise TypeError(f"save: tensor {k!r} has dtype object")
    else:
        encoder = _Encoder()
        skeleton = encoder.encode(obj, "")
        arrays = encoder.arrays
        meta[_META_KEY] = json.dumps({"version": _FORMAT_VERSION, "data": skeleton},
                                     separators=(",", ":"))
    atomic_write_bytes(path, _serialize(arrays, meta))


def load(path: PathLike) -> Any:
    """Load a file written by :func:`save` (or any safetensors file).

    A plain safetensors file gives an ordered dict name -> ``pve.Tensor`` (float
    types as float32: float16 and bfloat16 are widened exactly, float64 rounded;
    integer types as int64), ready for ``load_state_dict``;
    a nested file gives back the structure that was saved. A damaged,
    truncated or pickle file raises :class:`CheckpointError` (a ValueError)."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"load: path must be a str or os.PathLike, got {type(path).__name__}")
    path = os.fspath(path)
    arrays, metadata = _read_safetensors(path)
    if _META_KEY in metadata:
        try:
            doc = json.loads(metadata[_META_KEY])
            data = doc["data"]
        except (ValueError, KeyError, TypeError, RecursionError):
            raise CheckpointError(f"{path}: damaged checkpoint metadata") from None
        try:
            return _decode(data, arrays, path)
        except CheckpointError:
            raise
        except (TypeError, ValueError, KeyError, AttributeError, RecursionError) as e:
            # e.g. an unhashable dict key or a "__float__" that is not a number
            raise CheckpointError(f"{path}: damaged checkpoint metadata "
                                  f"({type(e).__name__}: {e})") from None
    return OrderedDict((k, _from_numpy(v)) for k, v in arrays.items())


def read_metadata(path: PathLike) -> Dict[str, str]:
    """The str -> str metadata in a safetensors file's header (without reading the tensors)."""
    header, _ = _check_file(os.fspath(path))
    return dict(header.get("__metadata__") or {})


def save_checkpoint(path: PathLike, model: Any = None, optimizer: Any = None, scheduler: Any = None,
                    epoch: Optional[int] = None, metrics: Optional[Dict[str, Any]] = None,
                    extra: Optional[Dict[str, Any]] = None, rng: bool = True,
                    generators: Optional[Dict[str, np.random.Generator]] = None) -> None:
    """Save a full training checkpoint atomically (safetensors tensors + JSON metadata).

    Stores ``model.state_dict()``, ``optimizer.state_dict()``,
    ``scheduler.state_dict()``, ``epoch``, ``metrics``, ``extra``, the engine's
    RNG state (``rng=True``) and the states of named numpy ``generators``
    (e.g. a DataLoader's), so training resumes bit-identically."""
    state: Dict[str, Any] = {"format": "pyvision_engine.checkpoint"}
    if model is not None:
        state["model"] = model.state_dict()
    if optimizer is not None:
        state["optimizer"] = optimizer.state_dict()
    if scheduler is not None:
        state["scheduler"] = scheduler.state_dict()
    if epoch is not None:
        state["epoch"] = int(epoch)
    if metrics is not None:
        state["metrics"] = dict(metrics)
    if extra is not None:
        state["extra"] = dict(extra)
    if rng:
        from pyvision_engine.random import get_rng_state

        state["rng"] = get_rng_state()
    if generators:
        for name, g in generators.items():
            if not isinstance(g, np.random.Generator):
                raise TypeError(f"save_checkpoint: generator {name!r} is not a numpy Generator")
        state["generators"] = {name: g.bit_generator.state for name, g in generators.items()}
    save(state, path)


def load_checkpoint(path: PathLike, model: Any = None, optimizer: Any = None, scheduler: Any = None,
                    restore_rng: bool = True,
                    generators: Optional[Dict[str, np.random.Generator]] = None) -> Dict[str, Any]:
    """Load a checkpoint from :func:`save_checkpoint`; restore into the given objects.

    Returns the whole checkpoint dict (``epoch``, ``metrics``, ``extra`` ...)."""
    ckpt = load(path)
    name = os.fspath(path)
    if not isinstance(ckpt, dict) or ckpt.get("format") != "pyvision_engine.checkpoint":
        raise CheckpointError(f"{name}: not a pyvision_engine training checkpoint (a plain weights "
                              "file? load it with pve.load and model.load_state_dict)")
    for key, obj in (("model", model), ("optimizer", optimizer), ("scheduler", scheduler)):
        if obj is None:
            continue
        if key not in ckpt:
            raise CheckpointError(f"{name}: checkpoint has no {key} state")
        obj.load_state_dict(ckpt[key])
    if restore_rng and "rng" in ckpt:
        from pyvision_engine.random import set_rng_state

        set_rng_state(ckpt["rng"])
    if generators:
        saved = ckpt.get("generators", {})
        for gname, g in generators.items():
            if gname in saved:
                g.bit_generator.state = saved[gname]
    return ckpt
