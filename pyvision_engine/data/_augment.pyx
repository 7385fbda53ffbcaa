# cython: boundscheck=False, wraparound=False, cdivision=True, language_level=3
"""Per-batch image conversion kernels for the data pipeline (nogil, OpenMP)."""

# Typed memoryviews only (no numpy C API), so building needs no numpy headers.
import numpy as np
from cython.parallel cimport prange


def uint8_hwc_to_normalized_chw(const unsigned char[:, :, :, ::1] images,
                                const float[::1] mean, const float[::1] std,
                                int num_threads=1):
    """(N, H, W, C) uint8 images -> (N, C, H, W) float32, (x / 255 - mean[c]) / std[c].

    Matches torchvision's ToTensor() followed by Normalize(mean, std).
    """
    cdef Py_ssize_t n = images.shape[0], h = images.shape[1]
    cdef Py_ssize_t w = images.shape[2], c = images.shape[3]
    if mean.shape[0] != c or std.shape[0] != c:
        raise ValueError(
            f"uint8_hwc_to_normalized_chw: mean and std need {c} values (one per channel), "
            f"got {mean.shape[0]} and {std.shape[0]}")
    if num_threads < 1:
        raise ValueError(f"uint8_hwc_to_normalized_chw: num_threads must be >= 1, got {num_threads}")
    for ch in range(c):
        if not std[ch] > 0:
            raise ValueError(f"uint8_hwc_to_normalized_chw: std must be positive, got {std[ch]} "
                             f"for channel {ch}")
    out = np.empty((n, c, h, w), dtype=np.float32)
    cdef float[:, :, :, ::1] o = out
    cdef Py_ssize_t b, y, x, k
    cdef float v
    cdef float max_value = 255.0
    # Same float32 operations in the same order as ToTensor + Normalize.
    with nogil:
        for b in prange(n, num_threads=num_threads, schedule='static'):
            for k in range(c):
                for y in range(h):
                    for x in range(w):
                        v = images[b, y, x, k]
                        o[b, k, y, x] = (v / max_value - mean[k]) / std[k]
    return out


def crop_flip_normalize_batch(const unsigned char[:, :, :, ::1] images,
                              const int[::1] top, const int[::1] left,
                              const unsigned char[::1] flip, int out_h, int out_w,
                              const float[::1] mean, const float[::1] std,
                              const unsigned char[::1] fill, int num_threads=1):
    """Random-crop (with padding) + horizontal flip + ToTensor + Normalize, one batch at once.

    images: (N, H, W, C) uint8. For sample b the output window starts at source
    row top[b] and column left[b] (negative or past the edge = padding, filled
    with fill[c]); flip[b] != 0 mirrors the cropped window left-right. Returns
    (N, C, out_h, out_w) float32 with (x / 255 - mean[c]) / std[c], as torchvision's
    RandomCrop(padding) -> RandomHorizontalFlip -> ToTensor -> Normalize.
    The random choices are made by the caller, so the kernel is deterministic.
    """
    cdef Py_ssize_t n = images.shape[0], h = images.shape[1]
    cdef Py_ssize_t w = images.shape[2], c = images.shape[3]
    if top.shape[0] != n or left.shape[0] != n or flip.shape[0] != n:
        raise ValueError(
            f"crop_flip_normalize_batch: top, left and flip need {n} values (one per image), "
            f"got {top.shape[0]}, {left.shape[0]} and {flip.shape[0]}")
    if mean.shape[0] != c or std.shape[0] != c or fill.shape[0] != c:
        raise ValueError(
            f"crop_flip_normalize_batch: mean, std and fill need {c} values (one per channel), "
            f"got {mean.shape[0]}, {std.shape[0]} and {fill.shape[0]}")
    if out_h < 1 or out_w < 1:
        raise ValueError(f"crop_flip_normalize_batch: output size must be positive, got "
                         f"{out_h}x{out_w}")
    if num_threads < 1:
        raise ValueError(f"crop_flip_normalize_batch: num_threads must be >= 1, got {num_threads}")
    for ch in range(c):
        if not std[ch] > 0:
            raise ValueError(f"crop_flip_normalize_batch: std must be positive, got {std[ch]} "
                             f"for channel {ch}")
    out = np.empty((n, c, out_h, out_w), dtype=np.float32)
    cdef float[:, :, :, ::1] o = out
    cdef Py_ssize_t b, y, x, k, sy, sx
    cdef float v
    cdef float max_value = 255.0
    with nogil:
        for b in prange(n, num_threads=num_threads, schedule='static'):
            for k in range(c):
                for y in range(out_h):
                    sy = y + top[b]
                    for x in range(out_w):
                        if flip[b]:
                            sx = out_w - 1 - x + left[b]
                        else:
                            sx = x + left[b]
                        if sy >= 0 and sy < h and sx >= 0 and sx < w:
                            v = images[b, sy, sx, k]
                        else:
                            v = fill[k]
                        o[b, k, y, x] = (v / max_value - mean[k]) / std[k]
    return out
