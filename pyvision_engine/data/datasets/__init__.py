"""Built-in data and readers for data sets a user already has on disk.

- ``Digits``: the 1,797 8x8 handwritten digits of the UCI optdigits set, shipped
  inside the package (``optdigits.csv.gz``, CC BY 4.0, see
  ``LICENSE-optdigits.txt``); no download.
- ``MNIST`` / ``FashionMNIST``: IDX files, gzipped or not (torchvision's layout).
- ``CIFAR10`` / ``CIFAR100``: the binary versions (``cifar-10-batches-bin``,
  ``cifar-100-binary``).
- ``ImageFolder``: one directory per class of PNG/JPEG files (needs Pillow:
  ``pip install 'pyvision-engine[images]'``).

Images are uint8 arrays laid out (H, W, C); every dataset accepts torchvision's
``transform`` / ``target_transform``, and a ``BatchAugment`` transform is applied
per batch by the DataLoader (one Cython kernel call per batch).
"""

from __future__ import annotations

import gzip
import math
import os
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from pyvision_engine.data.dataset import ArrayImageDataset, Dataset, _check_index

__all__ = ["Digits", "load_digits", "MNIST", "FashionMNIST", "CIFAR10", "CIFAR100",
           "ImageFolder", "read_idx", "DATASETS_DIR"]

DATASETS_DIR = os.path.dirname(os.path.abspath(__file__))
_DIGITS_FILE = os.path.join(DATASETS_DIR, "optdigits.csv.gz")
_DIGITS_TEST_FRACTION = 0.2
_DIGITS_SPLIT_SEED = 20261129
_digits_cache: Dict[str, Any] = {}


# ------------------------------------------------------------------- digits
def load_digits(raw: bool = False) -> Tuple[np.ndarray, np.ndarray]:
    """All 1,797 digits: (images (1797, 8, 8) uint8, labels (1797,) int64).

    Pixel values are the original counts 0..16 when ``raw``, else scaled to
    0..255 (round(v * 255 / 16)) so the usual uint8 transforms apply."""
    if "all" not in _digits_cache:
        try:
            with gzip.open(_DIGITS_FILE, "rt") as f:
                table = np.loadtxt(f, delimiter=",", dtype=np.int64)
        except OSError as e:
            raise RuntimeError(f"built-in digits data {_DIGITS_FILE} is missing or damaged: {e}") from None
        if table.shape != (1797, 65):
            raise RuntimeError(f"built-in digits data {_DIGITS_FILE}: expected 1797 rows of 65 "
                               f"values, got {table.shape}")
        _digits_cache["all"] = (table[:, :64].reshape(-1, 8, 8).astype(np.uint8),
                                table[:, 64].astype(np.int64))
    images, labels = _digits_cache["all"]
    if not raw:
        images = np.round(images.astype(np.float32) * (255.0 / 16.0)).astype(np.uint8)
    return images.copy(), labels.copy()


def digits_split_indices() -> Tuple[np.ndarray, np.ndarray]:
    """The fixed, stratified train/test split of the digits: 20% of each class is test."""
    _, labels = load_digits(raw=True)
    rng = np.random.Generator(np.random.PCG64(_DIGITS_SPLIT_SEED))
    train, test = [], []
    for c in range(10):
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(idx.size)]
        n_test = int(round(idx.size * _DIGITS_TEST_FRACTION))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


class Digits(ArrayImageDataset):
    """The UCI optdigits 8x8 digits shipped with the package (1x8x8, 10 classes).

    ``train=True``: 1,438 images; ``train=False``: the 359 held-out images (a fixed
    stratified split, the same on every machine). Items are (uint8 (8, 8, 1)
    image scaled to 0..255, label) before ``transform``. ``MEAN`` / ``STD`` are
    the training split's pixel statistics on the [0, 1] scale.
    """

    MEAN = (0.3055,)
    STD = (0.3760,)

    def __init__(self, train: bool = True, transform: Optional[Callable] = None,
                 target_transform: Optional[Callable] = None) -> None:
        images, labels = load_digits()
        train_idx, test_idx = digits_split_indices()
        idx = train_idx if train else test_idx
        super().__init__(images[idx][..., None], labels[idx], transform, target_transform,
                         classes=[str(i) for i in range(10)])
        self.train = train


# --------------------------------------------------------------------- IDX
_IDX_TYPES = {0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"),
              0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def _read_maybe_gzip(path: str) -> bytes:
    with open(path, "rb") as f:
        head = f.read(2)
    try:
        if head == b"\x1f\x8b":
            with gzip.open(path, "rb") as g:
                return g.read()
        with open(path, "rb") as f:
            return f.read()
    except (OSError, EOFError) as e:
        raise ValueError(f"{path}: cannot read (damaged or truncated gzip?): {e}") from None


def read_idx(path: str) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzipped or not, into a numpy array."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"IDX file not found: {path}")
    data = _read_maybe_gzip(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise ValueError(f"{path}: not an IDX file (bad magic number)")
    dtype, ndim = _IDX_TYPES[data[2]], data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path}: truncated IDX header")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected = math.prod(shape) * dtype.itemsize  # Python ints: huge dims must not wrap
    if len(data) - header != expected:
        raise ValueError(f"{path}: IDX data has {len(data) - header} bytes, expected {expected} "
                         f"for shape {shape} (truncated or damaged file)")
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("=")) if dtype.byteorder == ">" else arr.copy()


def _find_file(dirs: Sequence[str], names: Sequence[str], what: str) -> str:
    for d in dirs:
        for name in names:
            for candidate in (name, name + ".gz"):
                p = os.path.join(d, candidate)
                if os.path.isfile(p):
                    return p
    raise FileNotFoundError(f"{what}: none of {', '.join(names)} (or .gz) found in "
                            f"{', '.join(dirs)}")


def _check_dir(root: Any, name: str) -> str:
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"{name}: root must be a path, got {type(root).__name__}")
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"{name}: directory not found: {root}")
    return root


class MNIST(ArrayImageDataset):
    """MNIST from IDX files in ``root`` (or ``root/MNIST/raw``, torchvision's layout).

    Looks for ``train-images-idx3-ubyte`` / ``train-labels-idx1-ubyte`` (``train``)
    or ``t10k-...`` (test), each optionally ``.gz``. Items: (uint8 (28, 28, 1), label)."""

    classes_names: Sequence[str] = [str(i) for i in range(10)]
    folder = "MNIST"

    def __init__(self, root: str, train: bool = True, transform: Optional[Callable] = None,
                 target_transform: Optional[Callable] = None) -> None:
        name = type(self).__name__
        root = _check_dir(root, name)
        dirs = [root, os.path.join(root, self.folder, "raw"), os.path.join(root, "raw")]
        prefix = "train" if train else "t10k"
        img_path = _find_file(dirs, [f"{prefix}-images-idx3-ubyte", f"{prefix}-images.idx3-ubyte"], name)
        lbl_path = _find_file(dirs, [f"{prefix}-labels-idx1-ubyte", f"{prefix}-labels.idx1-ubyte"], name)
        images, labels = read_idx(img_path), read_idx(lbl_path)
        if images.ndim != 3 or images.dtype != np.uint8:
            raise ValueError(f"{img_path}: expected uint8 images of shape (N, H, W), got "
                             f"{images.dtype} {images.shape}")
        if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
            raise ValueError(f"{lbl_path}: expected {images.shape[0]} labels, got shape {labels.shape}")
        super().__init__(images[..., None], labels.astype(np.int64), transform, target_transform,
                         classes=self.classes_names)
        self.train = train
        self.root = root


class FashionMNIST(MNIST):
    """Fashion-MNIST (same IDX layout as MNIST; ``root`` or ``root/FashionMNIST/raw``)."""

    classes_names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                     "Sneaker", "Bag", "Ankle boot"]
    folder = "FashionMNIST"


# ------------------------------------------------------------------- CIFAR
def _read_cifar_bin(path: str, label_bytes: int) -> Tuple[np.ndarray, np.ndarray]:
    record = label_bytes + 3072
    with open(path, "rb") as f:
        data = f.read()
    if len(data) == 0 or len(data) % record:
        raise ValueError(f"{path}: {len(data)} bytes is not a whole number of {record}-byte CIFAR "
                         f"records (truncated or not a CIFAR binary file)")
    rows = np.frombuffer(data, dtype=np.uint8).reshape(-1, record)
    images = rows[:, label_bytes:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), rows[:, :label_bytes].astype(np.int64)


def _read_names(path: str) -> Optional[List[str]]:
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8", errors="replace") as f:
        return [line.strip() for line in f if line.strip()]


class CIFAR10(ArrayImageDataset):
    """CIFAR-10, binary version: ``root/cifar-10-batches-bin/data_batch_{1..5}.bin`` and
    ``test_batch.bin`` (or those files directly in ``root``). Items: (uint8 (32, 32, 3), label)."""

    def __init__(self, root: str, train: bool = True, transform: Optional[Callable] = None,
                 target_transform: Optional[Callable] = None) -> None:
        root = _check_dir(root, "CIFAR10")
        base = os.path.join(root, "cifar-10-batches-bin")
        base = base if os.path.isdir(base) else root
        names = [f"data_batch_{i}.bin" for i in range(1, 6)] if train else ["test_batch.bin"]
        paths = [os.path.join(base, n) for n in names]
        missing = [p for p in paths if not os.path.isfile(p)]
        if missing:
            raise FileNotFoundError(f"CIFAR10: missing {', '.join(missing)}")
        parts = [_read_cifar_bin(p, 1) for p in paths]
        images = np.concatenate([p[0] for p in parts])
        labels = np.concatenate([p[1][:, 0] for p in parts])
        if labels.max() > 9:
            raise ValueError(f"CIFAR10: labels above 9 in {base} (is this CIFAR-100?)")
        classes = _read_names(os.path.join(base, "batches.meta.txt")) or [
            "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
        super().__init__(images, labels, transform, target_transform, classes=classes)
        self.train = train


class CIFAR100(ArrayImageDataset):
    """CIFAR-100, binary version: ``root/cifar-100-binary/{train,test}.bin`` (or directly in
    ``root``). ``label='fine'`` (100 classes, default) or ``'coarse'`` (20 superclasses)."""

    def __init__(self, root: str, train: bool = True, transform: Optional[Callable] = None,
                 target_transform: Optional[Callable] = None, label: str = "fine") -> None:
        if label not in ("fine", "coarse"):
            raise ValueError(f"CIFAR100: label must be 'fine' or 'coarse', got {label!r}")
        root = _check_dir(root, "CIFAR100")
        base = os.path.join(root, "cifar-100-binary")
        base = base if os.path.isdir(base) else root
        path = os.path.join(base, "train.bin" if train else "test.bin")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"CIFAR100: missing {path}")
        images, labels = _read_cifar_bin(path, 2)
        column = 1 if label == "fine" else 0
        classes = _read_names(os.path.join(base, f"{label}_label_names.txt"))
        super().__init__(images, labels[:, column], transform, target_transform, classes=classes)
        self.train = train
        self.label = label


# ------------------------------------------------------------- image folder
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def _pil_image():
    try:
        from PIL import Image
    except ImportError:
        raise ImportError("reading image files needs Pillow: pip install 'pyvision-engine[images]' "
                          "(or pip install pillow)") from None
    return Image


def pil_loader(path: str) -> np.ndarray:
    """Read an image file as a uint8 (H, W, 3) RGB array (Pillow)."""
    Image = _pil_image()
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()
    except OSError as e:
        raise ValueError(f"{path}: cannot read image: {e}") from None


class ImageFolder(Dataset):
    """``root/<class>/<image>`` files; classes are the sorted directory names.

    Items: (image, class index) where the image is a uint8 (H, W, 3) RGB array
    before ``transform``. Needs Pillow (the ``[images]`` extra)."""

    def __init__(self, root: str, transform: Optional[Callable] = None,
                 target_transform: Optional[Callable] = None,
                 loader: Optional[Callable[[str], Any]] = None,
                 extensions: Optional[Sequence[str]] = IMG_EXTENSIONS,
                 is_valid_file: Optional[Callable[[str], bool]] = None) -> None:
        root = _check_dir(root, "ImageFolder")
        if loader is None:
            _pil_image()  # fail early, with the install hint, when Pillow is missing
            loader = pil_loader
        classes = sorted(e.name for e in os.scandir(root) if e.is_dir())
        if not classes:
            raise FileNotFoundError(f"ImageFolder: couldn't find any class folder in {root}")
        if is_valid_file is None:
            exts = tuple(e.lower() for e in (extensions or ()))
            is_valid_file = lambda p: p.lower().endswith(exts)  # noqa: E731
        samples: List[Tuple[str, int]] = []
        empty = []
        for idx, cls in enumerate(classes):
            found = 0
            for dirpath, _, files in sorted(os.walk(os.path.join(root, cls), followlinks=True)):
                for fname in sorted(files):
                    path = os.path.join(dirpath, fname)
                    if is_valid_file(path):
                        samples.append((path, idx))
                        found += 1
            if not found:
                empty.append(cls)
        if empty:
            raise FileNotFoundError(f"ImageFolder: found no valid file for the classes "
                                    f"{', '.join(empty)} in {root}")
        self.root = root
        self.classes = classes
        self.class_to_idx = {c: i for i, c in enumerate(classes)}
        self.samples = samples
        self.imgs = samples
        self.targets = [s[1] for s in samples]
        self.loader = loader
        self.transform = transform
        self.target_transform = target_transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> Tuple[Any, Any]:
        path, target = self.samples[_check_index(index, len(self), "ImageFolder")]
        sample: Any = self.loader(path)
        if self.transform is not None:
            sample = self.transform(sample)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return sample, target
