"""Configurations stored in tests/golden/conv2d.npz (made by torch 2.13)."""

# input shape, weight shape, stride, padding, dilation, groups, bias
CASES = [
    ((2, 8, 9, 9), (16, 8, 3, 3), 1, 1, 1, 1, True),          # winograd
    ((1, 3, 17, 15), (8, 3, 7, 7), 2, 3, 1, 1, False),        # stem-like im2col
    ((2, 12, 11, 11), (12, 1, 3, 3), 2, 1, 1, 12, True),      # depthwise s2
    ((2, 6, 10, 10), (12, 1, 5, 5), 1, "same", 1, 6, True),   # depthwise x2 'same'
    ((2, 16, 8, 8), (8, 16, 1, 1), 2, 0, 1, 1, True),         # pointwise s2
    ((1, 6, 9, 8), (4, 3, 2, 3), (1, 2), "valid", (2, 1), 2, True),  # grouped, even kernel
    ((1, 4, 7, 7), (5, 4, 4, 4), 1, "same", 2, 1, True),      # asymmetric 'same'
]
