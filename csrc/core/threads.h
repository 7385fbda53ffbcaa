// Thread count used by every OpenMP region in the kernels.
#pragma once

namespace pve {

// The count set by set_num_threads, or else the OpenMP default for the calling
// thread (which honours OMP_NUM_THREADS and threadpoolctl's limits).
int num_threads();
void set_num_threads(int n);
const char* openmp_runtime_name();

}  // namespace pve
