"""Shared fixtures: run a test once per SIMD level this CPU supports."""

from __future__ import annotations

import pytest

from pyvision_engine import _C

SUPPORTED_ISAS = list(_C.supported_isas())


@pytest.fixture(params=SUPPORTED_ISAS)
def isa(request):
    """Switch the kernels to each supported ISA level in turn, then restore."""
    previous = _C.active_isa()
    _C.set_isa(request.param)
    try:
        yield request.param
    finally:
        _C.set_isa(previous)
