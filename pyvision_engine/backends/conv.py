"""Which convolution algorithm runs, and how to see or override the choice.

The rule (``choose_algorithm``), in order:

1. ``depthwise``  groups == in_channels > 1 and out_channels a multiple of it
   (depthwise and channel multipliers): direct SIMD kernel, any kernel size.
2. ``pointwise``  1x1 kernel without padding: a GEMM straight on the input
   (stride 2 gathers the strided pixels; no im2col). In eval mode (groups 1)
   the weights are packed once into row panels read as one stream, and
   strided layers then gather each image's pixels for the same kernel.
3. ``winograd``   3x3, stride 1, dilation 1, groups 1, at least
   ``WINOGRAD_MIN_CHANNELS`` input and output channels: F(4x4, 3x3), 4x fewer
   multiplies than direct. Except: forward and backward-data (packed weights
   or not) with at most ``WINOGRAD_F2_MAX_PIXELS`` output pixels (N*H*W; the
   input's for backward-data) and at least ``WINOGRAD_F2_MIN_WEIGHTS`` channel
   pairs, with the SIMD levels listed there (ResNet's 512-channel layers at
   7x7, batch 1), runs ``winograd_f2``: F(2x2, 3x3), 2.25x fewer multiplies than
   direct, whose transformed weights are 16/9 of the plain ones where
   F(4x4, 3x3)'s 4x larger ones come from memory on every call (and, unpacked,
   are 4x as many to transform). Backward-weight
   (transformed input and output-gradient tiles, 36 GEMMs reducing over
   tiles, G^T M G per channel pair) needs at least ``WINOGRAD_BWD_MIN_TILES``
   4x4 output tiles in the batch.
   Unless the weights come packed (eval mode), each call transforms them,
   which costs about as much as ~100 output pixels of direct convolution per
   channel pair (measured); so layers with many channels and few pixels
   (ResNet's 512-channel layer at 7x7, batch 1) need
   ``WINOGRAD_UNPACKED_MIN_PIXELS`` (N*H*W of the output, or of the input for
   backward-data) to use it in forward and backward-data.
4. ``direct``     backward-weight of other stride-1 convolutions (that 5. does not
   take: dilated, fewer than ``PHASE_BACKWARD_MIN_CHANNELS`` channels, more
   than ``PHASE_MAX_TAPS`` taps, or the scalar build) with planes of at
   least ``DIRECT_MIN_SPAN`` padded output pixels: register-blocked dot
   products over zero-padded planes, no im2col (backward-weight only; small
   planes do better as one GEMM over im2col columns).
5. ``phase``      forward of stride-2 convolutions (dilation 1, groups 1, 2 to
   ``PHASE_MAX_TAPS`` taps, at least ``PHASE_MIN_CHANNELS`` input channels:
   ResNet's 3x3 downsampling layers, not RGB stems) with the AVX2 or AVX-512
   kernels (``PHASE_ISAS``): the input is split once into its stride phases
   (even/odd rows x even/odd columns, zero-padded), then a register-tiled
   implicit GEMM (output pixels x output-channel vectors, bias and ReLU
   fused) reads every tap as a run of one phase row, with no im2col. Unless
   the weights come packed (eval mode caches them), each call packs them,
   which costs about as much as ~100 output pixels of the convolution per
   channel pair (measured); so unpacked weights need
   ``PHASE_UNPACKED_MIN_PIXELS`` output pixels (N*H*W, per SIMD level). Measured 1.2-1.6x
   faster than im2col on ResNet's stride-2 layers, 1 and 2 threads, batch 1
   to 16.
   Backward passes of stride-1 and stride-2 convolutions (dilation 1, groups
   1, 2 to ``PHASE_MAX_TAPS`` taps, at least ``PHASE_BACKWARD_MIN_CHANNELS``
   input and output channels) with the AVX2 or AVX-512 kernels, where 3.
   (Winograd) does not take them: backward-data runs one stride-1
   correlation of the output gradient per input phase with the sub-kernel of
   that phase's taps (stride 1: the flipped kernel), written straight into
   the input gradient (no col2im); backward-weight runs an implicit GEMM
   over the pixels of the channel-minor phases. Measured against im2col
   (and ``direct``), 1 thread: ResNet-18's stride-2 layers at batch 1 and 8,
   backward-data 1.3-1.6x (AVX-512) and 1.03-1.2x (AVX2), backward-weight
   1.05-1.4x (AVX-512) and 1.03-1.2x (AVX2) except AVX2 at 7x7 outputs and
   batch 1 (256->512 and 512->512 @14: 0.92-0.94x, kept for simplicity: on 2
   threads there phase is 2x faster); 5x5 stride 1 and 2, 2x2 stride 2 and
   8 to 32 channels 1.2-3x; the unpacked 512-channel 3x3 layer at 7x7,
   batch 1, backward-data 1.1-1.4x. Fewer channels lose: 3- to 6-channel
   inputs (RGB stems, LeNet's 6->16) measured 0.4-0.8x in backward-data and
   0.75-0.96x in backward-weight (the input gradient's channels are
   backward-data's vector lanes).
   Forward of stride-1 convolutions that 3. does not take (5x5, 1x7 / 7x1,
   2x2, 3x3 with fewer than ``WINOGRAD_MIN_CHANNELS`` channels), on the same
   conditions, with output planes of at least ``PHASE_STRIDE1_MIN_PLANE``
   pixels, runs the same kernel with one phase: 1.2-1.55x faster than im2col
   on LeNet's, Inception's and 5x5 layers (measured, see the constant).
6. ``stem``       forward of image stems: groups 1, at most ``STEM_MAX_CHANNELS``
   input channels and at least ``STEM_MIN_TAPS`` taps (ResNet's 7x7 RGB
   stem), with the AVX2 or AVX-512 kernels (``STEM_ISAS``): direct, each tap
   one broadcast input value against 16 output channels' weights (im2col's
   GEMM is thin there: 147 products per output), the tile transposed into
   NCHW on its way out. Measured against im2col, 3->64 7x7 s2 @224, median
   of 40 interleaved runs: AVX-512 1 thread 1.08x at batch 1 and 1.29x at 8,
   2 threads 1.02x and 1.14x; AVX2 1.35x and 1.30x. Smaller kernels do not
   gain (3x3 and 5x5 RGB stems at 160-224: 0.9-1.0x at 1 thread) and small
   images lose (CIFAR's 3->16 3x3 @32: 0.55x, LeNet's 5x5: 0.24x).
   Before it, ``winograd_s2`` takes the forward of the 7x7 (and 8x8) stride-2
   stems (dilation 1, groups 1, at most ``STEM_MAX_CHANNELS`` input channels,
   ``WINOGRAD_S2_KERNELS``) with the SIMD levels of ``WINOGRAD_S2_ISAS``: the
   input's four stride phases make a 4x4 stride-1 convolution over 4C phase
   channels, run as Winograd F(3x3, 4x4) (the interpolation points and
   accuracy of F(4x4, 3x3)): 147 products per output and input channel become
   48 plus the transforms. Measured against ``stem``, ResNet's 3->64 7x7 s2
   @224 on AVX2 (Zen 2), 1 thread: 2.7 -> 1.75 ms at batch 1. It takes their
   backward-weight too (the same algorithm transposed: a GEMM over tiles per
   transformed element), against im2col 3.0 -> 1.6 ms at batch 1, 25.2 ->
   15.1 ms at batch 8 (1 thread).
7. ``im2col``     everything else: chunked im2col + GEMM with the epilogue fused.

Override it for tests or experiments (a forced family that cannot run a
shape or pass falls back to ``im2col``, never to an error: ``winograd_f2``
runs no backward-weight, ``direct`` backward-weight only, ``stem`` forward
only, ``winograd_s2`` no backward-data, and stride 2 with up to 8x8 taps)::

    with pve.backends.conv.force_algorithm("winograd"):
        y = F.conv2d(x, w, padding=1)

or set ``PVE_CONV_ALGORITHM=im2col`` in the environment (read at every
convolution, so setting it between calls takes effect). See the choice with
``pve.nn.functional.conv2d_algorithm(...)``, or set ``PVE_CONV_VERBOSE=1`` to
print every choice to stderr.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from typing import Iterator, Optional, Sequence, Tuple

from pyvision_engine import _C

__all__ = ["ALGORITHMS", "PASSES", "choose_algorithm", "force_algorithm", "forced_algorithm",
           "WINOGRAD_MIN_CHANNELS", "WINOGRAD_UNPACKED_MIN_PIXELS", "WINOGRAD_CHEAP_WEIGHTS",
           "WINOGRAD_BWD_MIN_TILES", "PHASE_MAX_TAPS", "PHASE_UNPACKED_MIN_PIXELS",
           "STEM_ISAS", "STEM_MAX_CHANNELS", "STEM_MIN_TAPS", "WINOGRAD_S2_ISAS",
           "WINOGRAD_S2_KERNELS",
           "WINOGRAD_F2_ISAS", "WINOGRAD_F2_MAX_PIXELS", "WINOGRAD_F2_MIN_WEIGHTS", "PHASE_ISAS",
           "PHASE_MIN_CHANNELS", "PHASE_BACKWARD_MIN_CHANNELS", "PHASE_STRIDE1_MIN_PLANE"]

ALGORITHMS = ("im2col", "pointwise", "depthwise", "winograd", "direct", "phase", "winograd_f2",
              "stem", "winograd_s2")
PASSES = ("forward", "backward_data", "backward_weight")

# Below this many channels the 36 per-tile GEMMs are too thin to pay for the
# transforms (measured with bench/bench_conv.py).
WINOGRAD_MIN_CHANNELS = 8
WINOGRAD_UNPACKED_MIN_PIXELS = 128
# Below this many channel pairs the weight transform is negligible anyway.
WINOGRAD_CHEAP_WEIGHTS = 64 * 64
DIRECT_MIN_SPAN = 256
# Backward-weight: below this many 4x4 output tiles (N * ceil(OH/4) * ceil(OW/4))
# the per-channel-pair transforms (36 x K x C values) outweigh the GEMMs they
# shrink (measured: ResNet-18's 512-channel 7x7 layer at batch 1, 4 tiles, is
# about even with im2col at 1 thread and 1.15x faster at 2).
WINOGRAD_BWD_MIN_TILES = 4
# The SIMD levels phase is chosen at: the scalar build (a reference for CPUs
# without AVX2) was faster on some layers and slower on others (64->64 @28:
# 0.66 vs 1.18 ms; 128->128 @14: 0.75 vs 0.52 ms), so it keeps im2col.
PHASE_ISAS = ("avx2", "avx512")
# The 7x7 stem (49 taps) keeps its own im2col-free rows path (measured as fast).
PHASE_MAX_TAPS = 25
# RGB stems (3 input channels: 27-75 products per output) spend a large part
# of each tile in its epilogue: 3->24/40/48 3x3 @224 and 3->24..48 5x5 @224
# measured 0.8-0.96x im2col (3->16 and 3->32 3x3 won); from 4 channels on
# phase was even or faster (4->24 @224 even, 4->32 @112 1.28x, 8->24 1.2x).
PHASE_MIN_CHANNELS = 4
# Backward passes on phase (5. above): input and output channels at least this.
PHASE_BACKWARD_MIN_CHANNELS = 8
# Stride-1 forward that Winograd does not take (5x5, 1x7 / 7x1, 2x2, 3x3 with
# 4-7 channels) runs phase too when each output plane has at least this many
# pixels. Measured against im2col (median of 5 interleaved runs, this
# session's Intel Xeon): AVX-512 1 thread 1.2-1.55x (LeNet's 6->16 5x5 @14
# b64 1.55x, Inception's 1x7/7x1 @17 1.2-1.5x, 5x5 @14-56 1.2-1.25x, 2x2 @28
# 1.07x), 2 threads 1.0-2.9x except 192->192 1x7 @17 b1 0.90x; AVX2 1 thread
# 1.07-1.6x except 128->192 7x1 0.98x. 8x8 planes lost at 384-448 channels
# (Inception's 1x3 / 3x1, b1: 0.64-0.93x).
PHASE_STRIDE1_MIN_PLANE = 96
# Unpacked weights, per SIMD level. AVX-512: at 49 output pixels (512 channels
# at 7x7, batch 1) packing them made phase ~5-10% slower than im2col; at 196 it
# is ~1.4x faster. AVX2 (Zen 2, flat 6-pixel tiles; medians of 7 interleaved
# runs, 8 distinct weight tensors in turn): 256->512 s2 at 7x7 1.7x faster
# than im2col on 1 thread and 1.6x on 2, at 6x6 2.0x / 1.8x, at 5x5 1.1x /
# 1.06x, at 4x4 0.8x / 0.75x.
PHASE_UNPACKED_MIN_PIXELS = {"avx2": 25, "avx512": 128}
# 3x3 stride 1, forward with packed weights, few output pixels and many channel
# pairs (ResNet's 512-channel layers at 7x7, batch 1): F(2x2, 3x3). There
# F(4x4, 3x3)'s transformed weights (36 floats per pair, 37.7 MB at 512 x 512:
# more than L3) stream from memory on every call for 4 tiles per image (and
# the phase family, which had these layers on AVX-512, does 2.25x the
# multiplies); F(2x2, 3x3)'s are 16 per pair, each used by 16 tiles.
# Measured, distinct weights per call as inside a model, ms per layer (median of
# interleaved runs; F2 / phase / F(4,3)):
#   AVX-512, 1 thread: 512->512 @7 b1 0.68 / 1.08 / 1.18; 256 @7 b1 0.17 / 0.28 /
#     0.31; 128 @7 b1 0.046 / 0.077 / 0.051; 64 @7 b1 0.013 / 0.020 / 0.012;
#     256 @10 b1 0.26 / - / 0.28-0.36; 512 @7 b2 1.35 / 2.05 / 1.30; 512 @7 b3
#     2.05 / - / 1.34; 256 @14 b1 0.52 / 0.99 / 0.45.
#   AVX-512, 2 threads: 512 @7 b1 0.42-0.47 / 0.55-0.57 / 0.81-0.90; 256 @7 b1
#     0.113 / 0.15 / 0.216; 128 @7 b1 0.028 / - / 0.028; 256 @10 b1 0.15 / - /
#     0.24; 512 @7 b2 0.70 / - / 0.98-1.02; 512 @7 b3 1.02-1.06 / - /
#     1.01-1.10; 256 @14 b1 0.27-0.28 / - / 0.23-0.25.
#   AVX2 (half the FMA width: F2 is compute-bound there), 1 thread: 512 @7 b1
#     1.21 / 2.44 / 1.17; 256 @7 b1 0.31 / 0.63 / 0.31; 128 @7 b1 0.080 / 0.16 /
#     0.054; 512 @7 b2 2.44 / - / 1.56. 2 threads: 512 @7 b1 0.68-0.71 / - /
#     0.87-1.03 (in 9 of 10 interleaved runs; one ran 0.99 / 0.76, as if one
#     core were shared); 256 @7 b1 0.19 / - / 0.20-0.24; 512 @7 b2 1.36-1.39 /
#     - / 0.94-0.99.
# So per SIMD level (where a thread count ties, the other decides): the most
# output pixels and the fewest channel pairs. The scalar build (a reference)
# keeps F(4x4, 3x3).
# Unpacked weights (training: transformed on every call) take the same rule:
# there the layers it picks ran im2col before, since F(4x4, 3x3) needs
# WINOGRAD_UNPACKED_MIN_PIXELS. Measured (session 27, Zen 5, interleaved
# medians of 15, ms; F2 / im2col / F(4,3)): AVX-512 1 thread 512 @7 b1 1.16 /
# 1.44 / 1.90, 256 @7 b1 0.23 / 0.31 / 0.30, 512 @7 b2 2.07 / 3.34 / 2.76, 128
# @7 b1 0.061 / 0.100 / 0.081, 256 @10 b1 0.33 / 0.82 / 0.41; 2 threads 512 @7
# b1 0.49 / 0.65 / 0.72, 512 @7 b2 0.81 / 1.20 / 0.85; AVX2 1 thread 512 @7 b1
# 2.41 / 3.21 / 2.38, 256 @7 b1 0.51 / 0.76 / 0.54, 2 threads 1.25 / 1.64 / 1.31.
# Backward-data (input pixels; transposed, flipped weights, always unpacked)
# likewise, where phase ran (session 27, ms; F2 / phase / F(4,3) / im2col):
# AVX-512 1 thread 512 @7 b1 1.29 / 1.58 / 1.44 / 2.02, 256 @7 b1 0.25 / 0.32 /
# 0.29 / 0.47, 512 @7 b2 1.73 / 2.55 / 1.56 / 3.78, 128 @7 b1 0.067 / 0.085 /
# 0.076, 256 @10 b1 0.33 / 0.55 / 0.38; 2 threads 512 @7 b1 0.63 / 0.82 / 0.75,
# 256 @7 b1 0.135 / 0.171 / 0.172, 512 @7 b2 0.89 / 1.30 / 0.83; AVX2 1 thread
# 512 @7 b1 1.84 / 3.01 / 1.58 (before the weight prefetch of
# transform_weight_block, which sped both Winograd families up there).
WINOGRAD_F2_MAX_PIXELS = {"avx512": 100, "avx2": 64}
WINOGRAD_F2_MIN_WEIGHTS = {"avx512": 128 * 128, "avx2": 256 * 256}
WINOGRAD_F2_ISAS = tuple(WINOGRAD_F2_MAX_PIXELS)
# 6. above: image stems (the scalar build keeps im2col; not measured there).
STEM_ISAS = ("avx2", "avx512")
STEM_MAX_CHANNELS = 4
STEM_MIN_TAPS = 49
# 6. above: Winograd over the stride phases, for the 7x7 (and 8x8) stride-2
# image stems (forward and backward-weight); measured only on AVX2 (the
# AVX-512 build runs it through generic lane shuffles, correct but unmeasured,
# so it keeps the stem family and im2col).
WINOGRAD_S2_ISAS = ("avx2",)
WINOGRAD_S2_KERNELS = (7, 8)


class _Forced(threading.local):
    def __init__(self) -> None:
        self.algorithm: Optional[str] = None


_forced = _Forced()

# os.environ.get costs ~0.5 us (key encoding, the Mapping machinery), a large
# part of a batch-1 layer's Python: forced_algorithm reads os.environ's own
# mapping instead, with its own key and value codecs (the same lookup).
_ENVIRON = os.environ
_ENV_DATA = getattr(_ENVIRON, "_data", None)
_ENV_KEY = _ENVIRON.encodekey("PVE_CONV_ALGORITHM") if _ENV_DATA is not None else None


def _check_name(name: str) -> str:
    if name not in ALGORITHMS:
        raise ValueError(f"unknown convolution algorithm {name!r}; choose from {ALGORITHMS}")
    return name


def forced_algorithm() -> Optional[str]:
    """The algorithm forced in this thread (``force_algorithm``) or by PVE_CONV_ALGORITHM
    (read now, at every call)."""
    forced = _forced.algorithm
    if forced is not None:
        return forced
    if _ENV_DATA is not None and os.environ is _ENVIRON:
        raw = _ENV_DATA.get(_ENV_KEY)
        env = None if raw is None else _ENVIRON.decodevalue(raw)
    else:  # (os.environ replaced, or a platform without the private mapping)
        env = os.environ.get("PVE_CONV_ALGORITHM")
    return _check_name(env) if env else None


@contextlib.contextmanager
def force_algorithm(name: Optional[str]) -> Iterator[None]:
    """Run every convolution in this thread with ``name`` (None: back to the rule)."""
    previous = _forced.algorithm
    _forced.algorithm = None if name is None else _check_name(name)
    try:
        yield
    finally:
        _forced.algorithm = previous


def choose_algorithm(pass_: str, input_shape: Sequence[int], weight_shape: Sequence[int],
                     stride: Tuple[int, int], padding: Tuple[int, int, int, int],
                     dilation: Tuple[int, int], groups: int, out_size: Tuple[int, int] = (0, 0),
                     weights_packed: bool = False, isa: Optional[str] = None) -> str:
    """The family the rule picks for one pass (``forward``, ``backward_data`` or
    ``backward_weight``); shapes are NCHW input and OIHW weight, padding is
    (top, bottom, left, right), out_size the output's (H, W); ``weights_packed``:
    Winograd or phase weights are already packed (the eval-mode cache); ``isa``:
    the SIMD level the kernels run at (default: the active one; ``phase`` and
    ``winograd_f2`` were measured at each). A forced algorithm wins."""
    forced = forced_algorithm()
    if forced is not None:
        return forced
    if isa is None:
        isa = _C.active_isa()
    in_channels = input_shape[1]
    out_channels, _, kernel_h, kernel_w = weight_shape
    if groups == in_channels and groups > 1 and out_channels % in_channels == 0:
        return "depthwise"
    if kernel_h == 1 and kernel_w == 1 and not any(padding):
        return "pointwise"
    if (kernel_h == 3 and kernel_w == 3 and stride == (1, 1)
            and dilation == (1, 1) and groups == 1
            and min(in_channels, out_channels) >= WINOGRAD_MIN_CHANNELS):
        if pass_ == "backward_weight":
            tiles = input_shape[0] * ((out_size[0] + 3) // 4) * ((out_size[1] + 3) // 4)
            if tiles >= WINOGRAD_BWD_MIN_TILES:
                return "winograd"
        else:
            if pass_ == "forward":
                pixels = input_shape[0] * out_size[0] * out_size[1]
            else:  # (backward data: a correlation over the input's pixels)
                pixels = input_shape[0] * input_shape[2] * input_shape[3]
            if (isa in WINOGRAD_F2_ISAS and pixels <= WINOGRAD_F2_MAX_PIXELS[isa]
                    and in_channels * out_channels >= WINOGRAD_F2_MIN_WEIGHTS[isa]):
                return "winograd_f2"
            if (weights_packed or in_channels * out_channels <= WINOGRAD_CHEAP_WEIGHTS
                    or pixels >= WINOGRAD_UNPACKED_MIN_PIXELS):
                return "winograd"
    if (pass_ != "forward" and isa in PHASE_ISAS and stride in ((1, 1), (2, 2))
            and dilation == (1, 1) and groups == 1
            and min(in_channels, out_channels) >= PHASE_BACKWARD_MIN_CHANNELS
            and 2 <= kernel_h * kernel_w <= PHASE_MAX_TAPS):
        return "phase"
    if (pass_ == "forward" and isa in PHASE_ISAS and dilation == (1, 1) and groups == 1
            and in_channels >= PHASE_MIN_CHANNELS and 2 <= kernel_h * kernel_w <= PHASE_MAX_TAPS):
        if stride == (2, 2) and (weights_packed or input_shape[0] * out_size[0] * out_size[1]
                                 >= PHASE_UNPACKED_MIN_PIXELS[isa]):
            return "phase"
        if stride == (1, 1) and out_size[0] * out_size[1] >= PHASE_STRIDE1_MIN_PLANE:
            return "phase"
    if (pass_ != "backward_data" and isa in WINOGRAD_S2_ISAS and stride == (2, 2)
            and dilation == (1, 1) and groups == 1 and in_channels <= STEM_MAX_CHANNELS
            and kernel_h in WINOGRAD_S2_KERNELS and kernel_w in WINOGRAD_S2_KERNELS):
        return "winograd_s2"
    if (pass_ == "forward" and isa in STEM_ISAS and groups == 1
            and in_channels <= STEM_MAX_CHANNELS and kernel_h * kernel_w >= STEM_MIN_TAPS):
        return "stem"
    if (pass_ == "backward_weight" and stride == (1, 1) and kernel_h * kernel_w <= 64
            and out_size[0] * (out_size[1] + (kernel_w - 1) * dilation[1]) >= DIRECT_MIN_SPAN):
        return "direct"
    return "im2col"


def _report(pass_: str, input_shape: Sequence[int], weight_shape: Sequence[int], name: str) -> None:
    if os.environ.get("PVE_CONV_VERBOSE"):
        print(f"pve conv2d {pass_}: input {tuple(input_shape)} weight {tuple(weight_shape)} "
              f"-> {name}", file=sys.stderr)
