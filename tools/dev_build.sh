#!/usr/bin/env bash
# Developer build: compiles the extension next to the Python sources, so
#   tools/dev_build.sh && PYTHONPATH=. python -m pytest
# works without reinstalling. Needs the build requirements installed
# (pip install scikit-build-core pybind11 cython cython-cmake ninja).
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${PVE_BUILD_DIR:-build/dev}
cython_cmake=$(python -c "import cython_cmake, os; print(os.path.join(os.path.dirname(cython_cmake.__file__), 'cmake'))")
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -Dpybind11_DIR="$(python -m pybind11 --cmakedir)" \
  -DCMAKE_MODULE_PATH="$cython_cmake" -DPython_EXECUTABLE="$(command -v python)" >/dev/null
cmake --build "$build_dir" -j "${PVE_BUILD_JOBS:-2}"
