// Software prefetch cursors for kernels that stream large arrays from memory.
// Kernel sources only, like vec.h (each ISA build gets its own copy).
//
// One core here reads DRAM at ~38 GB/s at best (a plain read loop), and a
// loop that computes between its loads gets much less unless lines are
// requested well before they are used: the hardware prefetchers alone keep
// too few misses in flight, and they lose a stream at every short row. A
// cursor walks the same addresses as the kernel, `distance` bytes ahead, and
// issues one prefetch per 64-byte line; the kernel tells it where it is.
//
//   LinePrefetcher   one contiguous range, read front to back
//   RowsPrefetcher   a sequence of equal rows spread through memory (the
//                    rows of one channel of an NCHW tensor, then the next
//                    channel's); the cursor crosses from row to row
#pragma once

#ifndef PVE_KERNEL_NS
#error "csrc/simd/prefetch.h is for kernel sources compiled by pve_add_kernel"
#endif

#include <algorithm>
#include <cstdint>

namespace pve {
namespace PVE_KERNEL_NS {

constexpr int64_t kLineBytes = 64;

// Into L2 (prefetcht1), not L1: a prefetch into L1 holds one of the core's
// few line-fill buffers until its line arrives. A plain read loop over 128 MB
// from DRAM, a prefetch 8 KiB ahead per line, on the Intel Xeon bench
// machine (medians of 21 interleaved runs): hardware prefetchers alone 10.8
// GB/s on 1 thread / 23.1 on 2, into L1 12.4 / 26.3, into L2 13.0 / 28.3. The
// kernel's own load moves the line on to L1. AMD Zen treats the hints alike.
inline void prefetch_line(const void* p) { __builtin_prefetch(p, 0, 2); }

// Every line of the n floats at p (a span need not start on a line: its last
// float's line is requested too).
inline void prefetch_span(const float* p, int64_t n) {
  if (n <= 0) return;
  for (int64_t i = 0; i < n; i += kLineBytes / static_cast<int64_t>(sizeof(float)))
    prefetch_line(p + i);
  prefetch_line(p + n - 1);
}

class LinePrefetcher {
 public:
  // Lines of [begin, end); the first `distance` bytes are left to the kernel's
  // own loads (they are needed at once).
  LinePrefetcher(const void* begin, const void* end, int64_t distance)
      : next_(align_down(static_cast<const char*>(begin)) + distance),
        end_(static_cast<const char*>(end)),
        distance_(distance) {}
  // The kernel is about to read at `pos`: request the lines up to pos + distance.
  void ahead(const void* pos) {
    const char* target = std::min(static_cast<const char*>(pos) + distance_, end_);
    for (; next_ < target; next_ += kLineBytes) prefetch_line(next_);
  }

 private:
  static const char* align_down(const char* p) {
    return reinterpret_cast<const char*>(reinterpret_cast<uintptr_t>(p) & ~uintptr_t(kLineBytes - 1));
  }
  const char* next_ = nullptr;
  const char* end_ = nullptr;
  int64_t distance_ = 0;
};

// Rows k = 0 .. rows - 1 of row_bytes each; row k starts at
// base + (k % inner) * inner_stride + (k / inner) * outer_stride (bytes).
class RowsPrefetcher {
 public:
  RowsPrefetcher(const void* base, int64_t rows, int64_t row_bytes, int64_t inner,
                 int64_t inner_stride, int64_t outer_stride)
      : base_(static_cast<const char*>(base)), rows_(rows), row_bytes_(row_bytes), inner_(inner),
        inner_stride_(inner_stride), outer_stride_(outer_stride) {}
  // Request every line up to byte `pos` of the rows laid end to end
  // (row k's byte b is at k * row_bytes + b).
  void upto(int64_t pos) {
    while (row_ < rows_ && row_ * row_bytes_ + offset_ < pos) {
      const char* row = base_ + (row_ % inner_) * inner_stride_ + (row_ / inner_) * outer_stride_;
      prefetch_line(row + offset_);
      offset_ += kLineBytes;
      if (offset_ >= row_bytes_) {
        ++row_;
        offset_ = 0;
      }
    }
  }

 private:
  const char* base_;
  int64_t rows_, row_bytes_, inner_, inner_stride_, outer_stride_;
  int64_t row_ = 0, offset_ = 0;
};

}  // namespace PVE_KERNEL_NS
}  // namespace pve
