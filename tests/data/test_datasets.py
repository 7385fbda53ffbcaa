"""Built-in digits and the on-disk readers, against files written by hand in each format."""

import gzip
import os
import struct
import sys

import numpy as np
import pytest

from pyvision_engine.data import DataLoader
from pyvision_engine.data import datasets as D


# ------------------------------------------------------------------ digits
def test_digits_shipped_split_and_values():
    assert os.path.isfile(os.path.join(D.DATASETS_DIR, "optdigits.csv.gz"))
    assert os.path.isfile(os.path.join(D.DATASETS_DIR, "LICENSE-optdigits.txt"))
    raw, labels = D.load_digits(raw=True)
    assert raw.shape == (1797, 8, 8) and raw.dtype == np.uint8 and raw.max() == 16
    assert np.bincount(labels).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    scaled, _ = D.load_digits()
    np.testing.assert_array_equal(scaled, np.round(raw * (255 / 16)).astype(np.uint8))
    # The first image of the UCI file, read independently of the loader.
    with gzip.open(os.path.join(D.DATASETS_DIR, "optdigits.csv.gz"), "rt") as f:
        first = [int(v) for v in f.readline().split(",")]
    assert raw[0].ravel().tolist() == first[:64] and labels[0] == first[64]
    train, test = D.Digits(train=True), D.Digits(train=False)
    assert (len(train), len(test)) == (1438, 359)
    tr_idx, te_idx = D.digits_split_indices()
    assert not set(tr_idx) & set(te_idx) and len(set(tr_idx) | set(te_idx)) == 1797
    assert np.all(np.bincount(test.targets) >= 34)  # stratified: every class in the test part
    tr2, te2 = D.digits_split_indices()
    assert np.array_equal(tr_idx, tr2) and np.array_equal(te_idx, te2)
    img, label = train[0]
    assert img.shape == (8, 8, 1) and img.dtype == np.uint8 and isinstance(label, int)
    x = train.data.astype(np.float64) / 255
    assert abs(x.mean() - D.Digits.MEAN[0]) < 1e-3 and abs(x.std() - D.Digits.STD[0]) < 1e-3


# --------------------------------------------------------------------- IDX
def write_idx(path, array, compress=False):
    codes = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C}
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + b"".join(
        struct.pack(">I", d) for d in array.shape)
    payload = header + array.tobytes()
    opener = gzip.open if compress else open
    with opener(path, "wb") as f:
        f.write(payload)


@pytest.mark.parametrize("compress", [False, True])
def test_mnist_idx_roundtrip(tmp_path, compress):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (7, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 7).astype(np.uint8)
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    ext = ".gz" if compress else ""
    write_idx(raw / f"t10k-images-idx3-ubyte{ext}", images, compress)
    write_idx(raw / f"t10k-labels-idx1-ubyte{ext}", labels, compress)
    ds = D.MNIST(str(tmp_path), train=False)
    assert len(ds) == 7
    np.testing.assert_array_equal(ds.data[..., 0], images)
    np.testing.assert_array_equal(ds.targets, labels)
    x, y = next(iter(DataLoader(ds, batch_size=7)))
    assert x.shape == (7, 28, 28, 1) and y.numpy().tolist() == labels.tolist()
    with pytest.raises(FileNotFoundError, match="train-images"):
        D.MNIST(str(tmp_path), train=True)


def test_idx_other_dtype_and_damaged_files(tmp_path):
    arr = np.arange(6, dtype=">i4").reshape(2, 3)
    write_idx(tmp_path / "a.idx", arr)
    np.testing.assert_array_equal(D.read_idx(str(tmp_path / "a.idx")), arr)
    data = (tmp_path / "a.idx").read_bytes()
    (tmp_path / "short.idx").write_bytes(data[:-3])
    with pytest.raises(ValueError, match="short.idx.*truncated"):
        D.read_idx(str(tmp_path / "short.idx"))
    (tmp_path / "bad.idx").write_bytes(b"\x01\x02\x03\x04rest")
    with pytest.raises(ValueError, match="bad magic"):
        D.read_idx(str(tmp_path / "bad.idx"))
    (tmp_path / "bad.gz").write_bytes(gzip.compress(data)[:-10])
    with pytest.raises(ValueError, match="bad.gz"):
        D.read_idx(str(tmp_path / "bad.gz"))



def test_idx_dims_whose_product_overflows_int64_are_clear_errors(tmp_path):
    # 65536**4 == 2**64 wraps to 0 in int64; (2**32 - 1)**2 * 4 wraps negative.
    for name, dims, code, itemsize in (("wrap0.idx", [65536] * 4, 0x08, 1),
                                       ("neg.idx", [2 ** 32 - 1] * 2, 0x0C, 4)):
        path = tmp_path / name
        path.write_bytes(bytes([0, 0, code, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims))
        expected = itemsize
        for d in dims:
            expected *= d  # exact, in Python ints
        with pytest.raises(ValueError, match=name) as err:
            D.read_idx(str(path))
        assert f"expected {expected} for shape" in str(err.value), str(err.value)

def test_fashion_mnist_layout(tmp_path):
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    write_idx(raw / "train-images-idx3-ubyte", np.zeros((2, 28, 28), np.uint8))
    write_idx(raw / "train-labels-idx1-ubyte", np.array([3, 9], np.uint8))
    ds = D.FashionMNIST(str(tmp_path))
    assert ds.classes[9] == "Ankle boot" and ds.targets.tolist() == [3, 9]


# ------------------------------------------------------------------- CIFAR
def cifar_records(images_chw, labels_cols):
    rows = [bytes(int(v) for v in lab) + img.tobytes() for img, lab in zip(images_chw, labels_cols)]
    return b"".join(rows)


def test_cifar10_binary(tmp_path):
    rng = np.random.default_rng(1)
    base = tmp_path / "cifar-10-batches-bin"
    base.mkdir()
    all_imgs, all_labels = [], []
    for i in range(1, 6):
        imgs = rng.integers(0, 256, (2, 3, 32, 32), dtype=np.uint8)
        labels = rng.integers(0, 10, (2, 1))
        (base / f"data_batch_{i}.bin").write_bytes(cifar_records(imgs, labels))
        all_imgs.append(imgs)
        all_labels.append(labels[:, 0])
    test_imgs = rng.integers(0, 256, (3, 3, 32, 32), dtype=np.uint8)
    (base / "test_batch.bin").write_bytes(cifar_records(test_imgs, [[1], [2], [3]]))
    train = D.CIFAR10(str(tmp_path))
    assert len(train) == 10 and train.data.shape == (10, 32, 32, 3)
    np.testing.assert_array_equal(train.data, np.concatenate(all_imgs).transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(train.targets, np.concatenate(all_labels))
    test = D.CIFAR10(str(tmp_path), train=False)
    assert test.targets.tolist() == [1, 2, 3] and test.classes[0] == "airplane"
    (base / "test_batch.bin").write_bytes(cifar_records(test_imgs, [[1], [2], [3]])[:-7])
    with pytest.raises(ValueError, match="test_batch.bin.*truncated"):
        D.CIFAR10(str(tmp_path), train=False)


def test_cifar100_binary(tmp_path):
    rng = np.random.default_rng(2)
    imgs = rng.integers(0, 256, (4, 3, 32, 32), dtype=np.uint8)
    labels = [[1, 55], [2, 99], [0, 3], [19, 0]]
    (tmp_path / "test.bin").write_bytes(cifar_records(imgs, labels))
    fine = D.CIFAR100(str(tmp_path), train=False)
    coarse = D.CIFAR100(str(tmp_path), train=False, label="coarse")
    assert fine.targets.tolist() == [55, 99, 3, 0] and coarse.targets.tolist() == [1, 2, 0, 19]
    np.testing.assert_array_equal(fine.data[2], imgs[2].transpose(1, 2, 0))
    with pytest.raises(ValueError, match="fine"):
        D.CIFAR100(str(tmp_path), label="medium")


def test_missing_directories_are_clear_errors(tmp_path):
    for cls in (D.MNIST, D.CIFAR10, D.CIFAR100, D.ImageFolder):
        with pytest.raises(FileNotFoundError, match="nope"):
            cls(str(tmp_path / "nope"))


# ------------------------------------------------------------- ImageFolder
def test_image_folder(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(3)
    expected = {}
    for cls in ("dog", "cat"):
        (tmp_path / cls).mkdir()
        for i in range(2):
            arr = rng.integers(0, 256, (5, 6, 3), dtype=np.uint8)
            path = tmp_path / cls / f"{i}.png"
            Image.fromarray(arr).save(path)
            expected[str(path)] = arr
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    ds = D.ImageFolder(str(tmp_path))
    assert ds.classes == ["cat", "dog"] and len(ds) == 4 and ds.targets == [0, 0, 1, 1]
    for i, (path, target) in enumerate(ds.samples):
        img, y = ds[i]
        np.testing.assert_array_equal(img, expected[path])  # PNG is lossless
        assert y == target
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty"):
        D.ImageFolder(str(tmp_path))


def test_image_folder_without_pillow_says_how_to_install(tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImportError, match=r"pyvision-engine\[images\]"):
        D.ImageFolder(str(tmp_path))
