"""Fixtures for the optimizer tests: ISA levels and the tests/ import path."""

from __future__ import annotations

import os
import sys

import pytest

_TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for path in (_TESTS, os.path.dirname(os.path.abspath(__file__))):
    if path not in sys.path:
        sys.path.insert(0, path)

from pyvision_engine import _C  # noqa: E402

OPTIM_ISAS = [os.environ["PVE_ISA"]] if os.environ.get("PVE_ISA") else list(_C.supported_isas())


@pytest.fixture(params=OPTIM_ISAS)
def optim_isa(request):
    """Run the test at each SIMD level this CPU supports, then restore the level."""
    previous = _C.active_isa()
    _C.set_isa(request.param)
    try:
        yield request.param
    finally:
        _C.set_isa(previous)
