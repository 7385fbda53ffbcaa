"""Shared fixtures: run a test once per SIMD level this CPU supports."""

from __future__ import annotations

import os

import pytest

from pyvision_engine import _C

SUPPORTED_ISAS = list(_C.supported_isas())
# Under PVE_ISA (as .ci/run does per level) the kernel tests run at that level only.
TEST_ISAS = [os.environ["PVE_ISA"]] if os.environ.get("PVE_ISA") else SUPPORTED_ISAS


@pytest.fixture(params=TEST_ISAS)
def isa(request):
    """Switch the kernels to each supported ISA level in turn, then restore."""
    previous = _C.active_isa()
    _C.set_isa(request.param)
    try:
        yield request.param
    finally:
        _C.set_isa(previous)
