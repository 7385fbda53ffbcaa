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
