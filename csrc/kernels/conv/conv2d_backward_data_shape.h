// Stride-1 backward-data as a forward correlation: the output gradient is the
// input, the input gradient the output, the kernel is flipped and the padding
// becomes (kernel - 1) * dilation - padding. The families that run it as a
// general forward (Winograd, the rows path) also swap the channel axes along
// with the weights; depthwise keeps them. Per-ISA namespace like the kernels
// that include it (after conv2d.h).
#pragma once

#include "kernels/conv/conv2d.h"

namespace pve {
namespace PVE_KERNEL_NS {

inline Conv2dShape backward_data_as_forward(const Conv2dShape& s, bool swap_channels = true) {
  Conv2dShape t = s;
  if (swap_channels) {
    t.in_channels = s.out_channels;
    t.out_channels = s.in_channels;
  }
  t.in_h = s.out_h;
  t.in_w = s.out_w;
  t.out_h = s.in_h;
  t.out_w = s.in_w;
  t.pad_top = (s.kernel_h - 1) * s.dilation_h - s.pad_top;
  t.pad_left = (s.kernel_w - 1) * s.dilation_w - s.pad_left;
  return t;
}

}  // namespace PVE_KERNEL_NS
}  // namespace pve
