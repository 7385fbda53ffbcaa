#!/usr/bin/env bash
# AddressSanitizer + UndefinedBehaviorSanitizer run of the test suite.
#
#   tools/sanitize.sh [pytest args...]        # default: the whole suite
#   PVE_ISA=scalar tools/sanitize.sh tests/conv
#
# Builds a separate copy of the extension (sanitized, -O1 debug info) in a clean
# clone of HEAD under $PVE_SAN_DIR (default /tmp/pve-sanitize), so the normal
# build next to the sources is untouched, then runs pytest there with the
# sanitizer runtimes preloaded (CPython itself is not instrumented). The first
# error stops the run with a stack trace. Leak checks are off: CPython keeps
# interned objects alive to the end. The build takes ~15 minutes on 2 cores.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
dir=${PVE_SAN_DIR:-/tmp/pve-sanitize}
if [ ! -d "$dir/.git" ]; then
  git clone -q "$repo" "$dir"
fi
git -C "$dir" fetch -q "$repo" HEAD
git -C "$dir" checkout -q --detach FETCH_HEAD
cd "$dir"
flags="-fsanitize=address,undefined -fno-omit-frame-pointer"
cython_cmake=$(python -c "import cython_cmake, os; print(os.path.join(os.path.dirname(cython_cmake.__file__), 'cmake'))")
cmake -S . -B build/sanitize -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS="$flags -fno-sanitize-recover=undefined" -DCMAKE_C_FLAGS="$flags" \
  -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=address,undefined" \
  -DCMAKE_MODULE_LINKER_FLAGS="-fsanitize=address,undefined" \
  -Dpybind11_DIR="$(python -m pybind11 --cmakedir)" -DCMAKE_MODULE_PATH="$cython_cmake" \
  -DPython_EXECUTABLE="$(command -v python)" >/dev/null
cmake --build build/sanitize -j "${PVE_BUILD_JOBS:-2}"
# The preloaded runtimes must be the compiler's own (ASan has to come first).
export LD_PRELOAD="$(c++ -print-file-name=libasan.so):$(c++ -print-file-name=libubsan.so)"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:halt_on_error=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# test_heap_tuning counts page faults, which the sanitizer's allocator changes.
PYTHONPATH="$dir" exec python -m pytest -q -p no:cacheprovider \
  --deselect tests/test_heap_tuning.py "${@:-tests}"
