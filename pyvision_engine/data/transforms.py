"""Image transforms with torchvision's names and arguments.

Per-image transforms take a uint8 (or float) numpy array laid out HWC (or HW),
as torchvision takes a PIL image, or a pve Tensor laid out CHW, as torchvision
takes a tensor. ``ToTensor`` turns HWC uint8 into a CHW float32 Tensor in
[0, 1]; ``Normalize`` then works on CHW.

``BatchAugment`` is the fast path: a whole (N, H, W, C) uint8 batch goes
through random crop + flip + ToTensor + Normalize in one Cython kernel (no GIL,
OpenMP over images). The DataLoader applies it per batch when a built-in
dataset has it as its transform.

Randomness comes from :func:`pyvision_engine.data.batch_generator`: a
per-batch generator inside a DataLoader (so results do not depend on worker
threads), the engine's generator (``pve.manual_seed``) elsewhere.
"""

from __future__ import annotations

import numbers
from typing import Any, Callable, Optional, Sequence, Tuple, Union

import numpy as np

from pyvision_engine.data._augment import crop_flip_normalize_batch
from pyvision_engine.data.dataloader import batch_generator
from pyvision_engine.nn import _f_shape
from pyvision_engine.tensor import Tensor

__all__ = ["Compose", "ToTensor", "Normalize", "RandomCrop", "RandomHorizontalFlip", "Resize",
           "CenterCrop", "Lambda", "BatchTransform", "BatchAugment"]

Size = Union[int, Sequence[int]]


def _pair(size: Size, name: str) -> Tuple[int, int]:
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        if size <= 0:
            raise ValueError(f"{name}: size must be positive, got {size}")
        return int(size), int(size)
    if isinstance(size, (tuple, list)) and len(size) in (1, 2):
        hw = (int(size[0]), int(size[-1]))
        if min(hw) <= 0:
            raise ValueError(f"{name}: size must be positive, got {tuple(size)}")
        return hw
    raise ValueError(f"{name}: size must be an int or a (h, w) sequence, got {size!r}")


def _image_array(img: Any, name: str) -> Tuple[np.ndarray, bool]:
    """(array laid out with H, W as axes 0, 1 and channels last, was_chw_tensor)."""
    if isinstance(img, Tensor):
        a = img._data
        if a.ndim == 2:
            return a[..., None], True
        if a.ndim != 3:
            raise ValueError(f"{name}: expected a CHW tensor, got shape {a.shape}")
        return np.transpose(a, (1, 2, 0)), True
    if isinstance(img, np.ndarray):
        if img.ndim not in (2, 3):
            raise ValueError(f"{name}: expected an HWC or HW image array, got shape {img.shape}")
        return img, False
    if hasattr(img, "mode") and hasattr(img, "size"):  # a PIL image
        return np.asarray(img), False
    raise TypeError(f"{name}: expected a numpy HWC image or a pve CHW Tensor, got "
                    f"{type(img).__name__}")


def _restore(a: np.ndarray, was_tensor: bool, original: Any) -> Any:
    if not was_tensor:
        return np.ascontiguousarray(a)
    if original.ndim == 2:
        return Tensor._wrap(np.ascontiguousarray(a[..., 0]))
    return Tensor._wrap(np.ascontiguousarray(np.transpose(a, (2, 0, 1))))


class Compose:
    """Apply transforms in order."""

    def __init__(self, transforms: Sequence[Callable[[Any], Any]]) -> None:
        self.transforms = list(transforms)
        for t in self.transforms:
            if not callable(t):
                raise TypeError(f"Compose: {t!r} is not callable")

    def __call__(self, img: Any) -> Any:
        for t in self.transforms:
            img = t(img)
        return img

    def __repr__(self) -> str:
        return "Compose(" + ", ".join(repr(t) for t in self.transforms) + ")"


class Lambda:
    """Apply a user function."""

    def __init__(self, lambd: Callable[[Any], Any]) -> None:
        if not callable(lambd):
            raise TypeError(f"Lambda: argument should be callable, got {type(lambd).__name__}")
        self.lambd = lambd

    def __call__(self, img: Any) -> Any:
        return self.lambd(img)


class ToTensor:
    """HWC (or HW) image -> CHW float32 Tensor; uint8 is scaled to [0, 1] (x / 255)."""

    def __call__(self, pic: Any) -> Tensor:
        a, was_tensor = _image_array(pic, "ToTensor")
        if was_tensor:
            return pic
        if a.ndim == 2:
            a = a[..., None]
        chw = np.ascontiguousarray(np.transpose(a, (2, 0, 1)))
        if chw.dtype == np.uint8:
            return Tensor._wrap(chw.astype(np.float32) / np.float32(255))
        return Tensor._wrap(chw.astype(np.float32))

    def __repr__(self) -> str:
        return "ToTensor()"


class Normalize:
    """(x - mean[c]) / std[c] on a CHW (or NCHW) float tensor or array."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], inplace: bool = False) -> None:
        self.mean = np.asarray(mean, dtype=np.float32).reshape(-1)
        self.std = np.asarray(std, dtype=np.float32).reshape(-1)
        # torchvision broadcasts mean and std against each other (one value or one per channel)
        if self.mean.size != self.std.size and 1 not in (self.mean.size, self.std.size):
            raise ValueError(f"Normalize: mean and std need the same length (or one value), got "
                             f"{self.mean.size} and {self.std.size}")
        if np.any(self.std == 0):
            raise ValueError(f"Normalize: std evaluated to zero after conversion to float32, "
                             f"leading to division by zero (std={self.std.tolist()})")
        self.inplace = inplace

    def __call__(self, tensor: Any) -> Any:
        a = tensor._data if isinstance(tensor, Tensor) else np.asarray(tensor)
        if a.dtype.kind != "f":
            raise TypeError(f"Normalize: expected a float tensor (apply ToTensor first), got {a.dtype}")
        if a.ndim < 3:
            raise ValueError(f"Normalize: expected a CHW or NCHW tensor, got shape {a.shape}")
        c = a.shape[-3]
        if self.mean.size not in (1, c) or self.std.size not in (1, c):
            raise ValueError(f"Normalize: {self.mean.size} means and {self.std.size} stds for a "
                             f"tensor with {c} channels")
        shape = (-1, 1, 1)
        out = (a - self.mean.reshape(shape)) / self.std.reshape(shape)
        out = out.astype(np.float32, copy=False)
        if self.inplace and a.dtype == np.float32:
            a[...] = out
            return tensor
        return Tensor._wrap(np.ascontiguousarray(out)) if isinstance(tensor, Tensor) else out

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"


_PAD_MODES = ("constant", "edge", "reflect", "symmetric")


def _padding4(padding: Any, name: str) -> Tuple[int, int, int, int]:
    """torchvision's padding forms -> (left, top, right, bottom)."""
    if isinstance(padding, numbers.Integral):
        p = int(padding)
        pads = (p, p, p, p)
    elif isinstance(padding, (tuple, list)) and len(padding) == 2:
        pads = (int(padding[0]), int(padding[1]), int(padding[0]), int(padding[1]))
    elif isinstance(padding, (tuple, list)) and len(padding) == 4:
        pads = tuple(int(p) for p in padding)  # type: ignore[assignment]
    else:
        raise ValueError(f"{name}: padding must be an int or a sequence of 2 or 4 ints, got {padding!r}")
    if min(pads) < 0:
        raise ValueError(f"{name}: padding must be non-negative, got {padding!r}")
    return pads  # type: ignore[return-value]


class RandomCrop:
    """Crop a random ``size`` window, after optional padding (torchvision's semantics)."""

    def __init__(self, size: Size, padding: Any = None, pad_if_needed: bool = False,
                 fill: Union[int, float, Sequence[float]] = 0, padding_mode: str = "constant") -> None:
        self.size = _pair(size, "RandomCrop")
        self.padding = _padding4(padding, "RandomCrop") if padding is not None else None
        self.pad_if_needed = pad_if_needed
        if padding_mode not in _PAD_MODES:
            raise ValueError(f"RandomCrop: padding_mode must be one of {_PAD_MODES}, got {padding_mode!r}")
        self.fill = fill
        self.padding_mode = padding_mode

    def _pad(self, a: np.ndarray, left: int, top: int, right: int, bottom: int) -> np.ndarray:
        widths = ((top, bottom), (left, right)) + ((0, 0),) * (a.ndim - 2)
        if self.padding_mode != "constant":
            return np.pad(a, widths, mode=self.padding_mode)
        fill = np.asarray(self.fill, dtype=a.dtype)
        if fill.ndim == 0:
            return np.pad(a, widths, mode="constant", constant_values=fill.item())
        out = np.empty((a.shape[0] + top + bottom, a.shape[1] + left + right) + a.shape[2:], a.dtype)
        out[...] = fill
        out[top:top + a.shape[0], left:left + a.shape[1]] = a
        return out

    def __call__(self, img: Any) -> Any:
        a, was_tensor = _image_array(img, "RandomCrop")
        if self.padding is not None:
            a = self._pad(a, *self.padding)
        th, tw = self.size
        h, w = a.shape[:2]
        if self.pad_if_needed and w < tw:
            a = self._pad(a, tw - w, 0, tw - w, 0)
        if self.pad_if_needed and a.shape[0] < th:
            a = self._pad(a, 0, th - a.shape[0], 0, th - a.shape[0])
        h, w = a.shape[:2]
        if h < th or w < tw:
            raise ValueError(f"RandomCrop: required crop size {(th, tw)} is larger than the input "
                             f"image size {(h, w)}")
        rng = batch_generator()
        i = int(rng.integers(0, h - th + 1))
        j = int(rng.integers(0, w - tw + 1))
        return _restore(a[i:i + th, j:j + tw], was_tensor, img)

    def __repr__(self) -> str:
        return f"RandomCrop(size={self.size}, padding={self.padding})"


class CenterCrop:
    """Crop the centre ``size`` window (padding with 0 when the image is smaller)."""

    def __init__(self, size: Size) -> None:
        self.size = _pair(size, "CenterCrop")

    def __call__(self, img: Any) -> Any:
        a, was_tensor = _image_array(img, "CenterCrop")
        th, tw = self.size
        h, w = a.shape[:2]
        if th > h or tw > w:  # torchvision pads symmetrically with zeros first
            pt, pl = max(th - h, 0) // 2, max(tw - w, 0) // 2
            pb, pr = max(th - h, 0) - pt, max(tw - w, 0) - pl
            a = np.pad(a, ((pt, pb), (pl, pr)) + ((0, 0),) * (a.ndim - 2))
            h, w = a.shape[:2]
        top = int(round((h - th) / 2.0))
        left = int(round((w - tw) / 2.0))
        return _restore(a[top:top + th, left:left + tw], was_tensor, img)

    def __repr__(self) -> str:
        return f"CenterCrop(size={self.size})"


class RandomHorizontalFlip:
    """Mirror left-right with probability ``p``."""

    def __init__(self, p: float = 0.5) -> None:
        if not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"RandomHorizontalFlip: p must be in [0, 1], got {p}")
        self.p = float(p)

    def __call__(self, img: Any) -> Any:
        a, was_tensor = _image_array(img, "RandomHorizontalFlip")
        if batch_generator().random() < self.p:
            return _restore(a[:, ::-1], was_tensor, img)
        return img

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


def _interpolate_hwc(a: np.ndarray, out_h: int, out_w: int, antialias: bool,
                     mode: str = "bilinear") -> np.ndarray:
    """torch's ``interpolate(mode=mode, align_corners=False, antialias=...)`` of an
    (H, W, C) array, in float32 (nn.functional's own implementation)."""
    planes = np.ascontiguousarray(np.moveaxis(a, -1, 0)[None], dtype=np.float32)
    out = _f_shape.interpolate(Tensor._wrap(planes), size=(out_h, out_w), mode=mode,
                               align_corners=False, antialias=antialias)
    return np.moveaxis(out.numpy()[0], 0, -1)


def resize_bilinear(a: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Bilinear resize of an (H, W, C) array, half-pixel centres (align_corners=False), no
    antialiasing: torch's ``interpolate(mode='bilinear', align_corners=False,
    antialias=False)``. uint8 input is rounded back to uint8."""
    return _resize_plain(a, out_h, out_w, "bilinear")


def _resize_plain(a: np.ndarray, out_h: int, out_w: int, mode: str) -> np.ndarray:
    """``interpolate(mode, align_corners=False, antialias=False)`` of an (H, W, C) array;
    uint8 input rounded (and, for bicubic's overshoot, clipped) back to uint8."""
    out = _interpolate_hwc(a, out_h, out_w, antialias=False, mode=mode)
    if a.dtype == np.uint8:
        return np.clip(np.round(out), 0, 255).astype(np.uint8)
    return out.astype(a.dtype if a.dtype.kind == "f" else np.float32)


_PIL_PRECISION_BITS = 32 - 8 - 2


def _pil_pass(a: np.ndarray, axis: int, n_out: int, kind: str = "linear") -> np.ndarray:
    """One separable antialiased pass along ``axis`` (0 = rows, 1 = columns) of a uint8 HWC
    array as Pillow computes it: the filter's windows in float64 (interpolate's antialias
    windows, _f_shape._aa_window, which torch and Pillow share: ``kind`` "linear" is the
    triangle filter, "cubic" Pillow's bicubic with a = -0.5), quantised to 22-bit fixed
    point, accumulated in integers, rounded half up and clipped to 0..255, so the result
    equals Pillow's byte for byte."""
    index, w = _f_shape._aa_window(a.shape[axis], a.shape[axis] / n_out, n_out, kind,
                                   exact=True)
    shape = [1] * a.ndim
    shape[axis] = n_out
    one = float(1 << _PIL_PRECISION_BITS)
    k = np.where(w < 0, np.trunc(-0.5 + w * one), np.trunc(0.5 + w * one)).astype(np.int64)
    acc = np.full(a.shape[:axis] + (n_out,) + a.shape[axis + 1:],
                  1 << (_PIL_PRECISION_BITS - 1), dtype=np.int64)
    for t in range(index.shape[1]):
        acc += np.take(a, index[:, t], axis=axis).astype(np.int64) * k[:, t].reshape(shape)
    return np.clip(acc >> _PIL_PRECISION_BITS, 0, 255).astype(np.uint8)


def resize_bilinear_antialias(a: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Antialiased bilinear resize of an (H, W, C) array (torchvision's default,
    ``antialias=True``).

    uint8 input follows torchvision's PIL path (``PIL.Image.resize(BILINEAR)``):
    Pillow's two separable passes in 8-bit fixed point, each rounded to uint8, with
    Pillow 13's pass order (the vertical pass first when the height shrinks by more than
    twice as many pixels as the width, else the horizontal pass first) - identical to
    Pillow >= 13; Pillow < 13 always runs the horizontal pass first, so it can differ
    by 1 in a pixel. Other input follows the tensor path: ``interpolate(mode='bilinear',
    antialias=True)`` itself, in float32."""
    return _resize_antialias(a, out_h, out_w, "linear")


def resize_bicubic_antialias(a: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Antialiased bicubic resize of an (H, W, C) array (torchvision's ``Resize`` with
    ``InterpolationMode.BICUBIC``): uint8 input as ``PIL.Image.resize(BICUBIC)`` (Pillow's
    a = -0.5 filter, the same fixed-point passes and pass order as
    :func:`resize_bilinear_antialias`), other input as ``interpolate(mode='bicubic',
    antialias=True)`` in float32 (not clamped, as torch's float tensors)."""
    return _resize_antialias(a, out_h, out_w, "cubic")


def _resize_antialias(a: np.ndarray, out_h: int, out_w: int, kind: str) -> np.ndarray:
    if a.dtype != np.uint8:
        mode = "bilinear" if kind == "linear" else "bicubic"
        out = _interpolate_hwc(a, out_h, out_w, antialias=True, mode=mode)
        return out.astype(a.dtype if a.dtype.kind == "f" else np.float32)
    h, w = a.shape[:2]
    if out_h < h and (h - out_h) > 2 * (w - out_w):
        order = ((0, out_h), (1, out_w))
    else:
        order = ((1, out_w), (0, out_h))
    out = a
    for axis, n in order:
        if out.shape[axis] != n:
            out = _pil_pass(out, axis, n, kind)
    return a.copy() if out is a else out


def _nearest_index(n_in: int, n_out: int, pil: bool) -> np.ndarray:
    if pil:
        # Pillow's ImagingScaleAffine: x = scale / 2, then x += scale per output pixel
        # (accumulated in double), source = (int)x
        steps = np.full(n_out, n_in / n_out, dtype=np.float64)
        steps[0] *= 0.5
        src = np.add.accumulate(steps).astype(np.int64)
    else:
        # torch's nearest_idx: floorf(i * (float)in / out) in float32
        scale = np.float32(n_in) / np.float32(n_out)
        src = np.floor(np.arange(n_out, dtype=np.float32) * scale).astype(np.int64)
    return np.minimum(src, n_in - 1)


def _resize_nearest(a: np.ndarray, out_h: int, out_w: int, pil: bool) -> np.ndarray:
    """Nearest neighbour. ``pil``: Pillow's rule, source ~ floor((i + 0.5) * in / out)
    (torchvision's PIL path); else torch's ``interpolate(mode='nearest')``,
    source = floor(i * in / out) (torchvision's tensor path)."""
    return a[_nearest_index(a.shape[0], out_h, pil)][:, _nearest_index(a.shape[1], out_w, pil)]


class Resize:
    """Resize to ``size``: (h, w), or an int or a 1-element sequence for the shorter
    edge (aspect ratio kept, the longer edge capped at ``max_size``, as torchvision).

    As torchvision: a uint8 HWC array is treated as torchvision treats a PIL image
    (bilinear = Pillow's antialiased filter, byte-exact with Pillow >= 13; nearest =
    Pillow's nearest), a float array or a CHW Tensor as it treats a tensor
    (``interpolate`` with ``antialias=True`` by default; nearest = torch's
    ``mode='nearest'``). ``antialias=False`` gives plain bilinear (torch's
    ``antialias=False``) for every input - torchvision ignores it for PIL images, which
    are always antialiased. Bicubic likewise: Pillow's BICUBIC for uint8 HWC arrays
    (byte-exact with Pillow >= 13), ``interpolate(mode='bicubic', antialias=...)`` for
    the others, and plain bicubic with ``antialias=False``. Other modes are not
    implemented (ValueError).
    """

    def __init__(self, size: Size, interpolation: str = "bilinear", max_size: Optional[int] = None,
                 antialias: Optional[bool] = True) -> None:
        if isinstance(size, (tuple, list)) and len(size) == 1:
            size = size[0]  # torchvision: [n] means the shorter edge, like n
        if isinstance(size, numbers.Integral):
            if size <= 0:
                raise ValueError(f"Resize: size must be positive, got {size}")
            self.size: Union[int, Tuple[int, int]] = int(size)
            if max_size is not None and max_size <= size:
                raise ValueError(f"Resize: max_size = {max_size} must be strictly greater than the "
                                 f"requested size for the smaller edge size = {size}")
        else:
            self.size = _pair(size, "Resize")
            if max_size is not None:
                raise ValueError("Resize: max_size should only be passed if size specifies the length "
                                 "of the smaller edge, i.e. size should be an int or a sequence of length 1")
        interpolation = str(getattr(interpolation, "value", interpolation)).lower()
        if interpolation not in ("bilinear", "bicubic", "nearest"):
            raise ValueError(f"Resize: interpolation must be 'bilinear', 'bicubic' or 'nearest' "
                             f"(the others are not implemented), got {interpolation!r}")
        self.interpolation = interpolation
        self.max_size = max_size
        # torchvision: None means True since 0.17
        self.antialias = True if antialias is None else bool(antialias)

    def _output_size(self, h: int, w: int) -> Tuple[int, int]:
        if isinstance(self.size, tuple):
            return self.size
        short, long = (h, w) if h <= w else (w, h)
        new_short, new_long = self.size, int(self.size * long / short)
        if self.max_size is not None and new_long > self.max_size:
            new_short, new_long = int(self.max_size * new_short / new_long), self.max_size
        return (new_short, new_long) if h <= w else (new_long, new_short)

    def __call__(self, img: Any) -> Any:
        a, was_tensor = _image_array(img, "Resize")
        squeeze = a.ndim == 2
        if squeeze:
            a = a[..., None]
        oh, ow = self._output_size(*a.shape[:2])
        if (oh, ow) == a.shape[:2]:
            return img  # torchvision returns the input unchanged
        pil_like = a.dtype == np.uint8 and not was_tensor
        if self.interpolation == "nearest":
            out = _resize_nearest(a, oh, ow, pil=pil_like)
        elif self.antialias:
            kind = "linear" if self.interpolation == "bilinear" else "cubic"
            out = _resize_antialias(a, oh, ow, kind)
        else:
            out = _resize_plain(a, oh, ow, self.interpolation)
        if squeeze:
            out = out[..., 0]
        return _restore(out, was_tensor, img)

    def __repr__(self) -> str:
        return (f"Resize(size={self.size}, interpolation={self.interpolation}, "
                f"max_size={self.max_size}, antialias={self.antialias})")


class BatchTransform:
    """A transform applied to a whole (N, H, W, C) uint8 batch at once."""

    def __call__(self, images: np.ndarray) -> Any:
        raise NotImplementedError


class BatchAugment(BatchTransform):
    """RandomCrop(crop_size, padding, fill) -> RandomHorizontalFlip(flip_p) -> ToTensor ->
    Normalize(mean, std) for a uint8 (N, H, W, C) batch, in one Cython kernel.

    With ``crop_size=None`` and ``padding=0`` there is no crop; with ``flip_p=0`` no flip
    (then it is plain ToTensor + Normalize). Returns an (N, C, h, w) float32 Tensor.
    ``num_threads`` defaults to ``pve.get_num_threads()``.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], crop_size: Optional[Size] = None,
                 padding: int = 0, flip_p: float = 0.0, fill: Union[int, Sequence[int]] = 0,
                 num_threads: Optional[int] = None) -> None:
        self.mean = np.ascontiguousarray(mean, dtype=np.float32).reshape(-1)
        self.std = np.ascontiguousarray(std, dtype=np.float32).reshape(-1)
        if self.mean.shape != self.std.shape:
            raise ValueError("BatchAugment: mean and std need the same length")
        if np.any(~(self.std > 0)):
            raise ValueError(f"BatchAugment: std must be positive, got {self.std.tolist()}")
        self.crop_size = _pair(crop_size, "BatchAugment") if crop_size is not None else None
        if not isinstance(padding, numbers.Integral) or padding < 0:
            raise ValueError(f"BatchAugment: padding must be a non-negative int, got {padding!r}")
        self.padding = int(padding)
        if not 0.0 <= float(flip_p) <= 1.0:
            raise ValueError(f"BatchAugment: flip_p must be in [0, 1], got {flip_p}")
        self.flip_p = float(flip_p)
        fill_arr = np.asarray(fill).reshape(-1)
        if np.any(fill_arr < 0) or np.any(fill_arr > 255):
            raise ValueError(f"BatchAugment: fill must be in 0..255, got {fill!r}")
        self.fill = fill_arr.astype(np.uint8)
        if num_threads is not None and int(num_threads) < 1:
            raise ValueError(f"BatchAugment: num_threads must be >= 1, got {num_threads}")
        self.num_threads = num_threads

    def draw(self, n: int, h: int, w: int, rng: Optional[np.random.Generator] = None
             ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
        """The random choices for n images: (top, left, flip, out_h, out_w) in source pixels."""
        rng = batch_generator() if rng is None else rng
        p = self.padding
        oh, ow = self.crop_size if self.crop_size is not None else (h + 2 * p, w + 2 * p)
        if oh > h + 2 * p or ow > w + 2 * p:
            raise ValueError(f"BatchAugment: crop size {(oh, ow)} is larger than the padded image "
                             f"{(h + 2 * p, w + 2 * p)}")
        if self.crop_size is not None or p:
            top = rng.integers(0, h + 2 * p - oh + 1, size=n) - p
            left = rng.integers(0, w + 2 * p - ow + 1, size=n) - p
        else:
            top = np.zeros(n, np.int64)
            left = np.zeros(n, np.int64)
        flip = (rng.random(n) < self.flip_p) if self.flip_p > 0 else np.zeros(n, bool)
        return (top.astype(np.int32), left.astype(np.int32), flip.astype(np.uint8), int(oh), int(ow))

    def __call__(self, images: Any) -> Tensor:
        a = np.asarray(images)
        if a.dtype != np.uint8:
            raise TypeError(f"BatchAugment: expected a uint8 batch, got {a.dtype}")
        if a.ndim == 3:
            a = a[..., None]
        if a.ndim != 4:
            raise ValueError(f"BatchAugment: expected (N, H, W, C) images, got shape {a.shape}")
        n, h, w, c = a.shape
        mean, std, fill = self.mean, self.std, self.fill
        if mean.size == 1 and c > 1:
            mean, std = np.repeat(mean, c), np.repeat(std, c)
        if fill.size == 1:
            fill = np.repeat(fill, c)
        top, left, flip, oh, ow = self.draw(n, h, w)
        if self.num_threads is None:
            from pyvision_engine import get_num_threads

            threads = get_num_threads()
        else:
            threads = int(self.num_threads)
        out = crop_flip_normalize_batch(np.ascontiguousarray(a), top, left, flip, oh, ow,
                                        mean, std, np.ascontiguousarray(fill), max(1, threads))
        return Tensor._wrap(out)

    def __repr__(self) -> str:
        return (f"BatchAugment(crop_size={self.crop_size}, padding={self.padding}, "
                f"flip_p={self.flip_p}, mean={self.mean.tolist()}, std={self.std.tolist()})")
