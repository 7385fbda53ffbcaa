"""Layer tests: tests/layers on the import path (for layers_helpers); the ``isa``
fixture comes from tests/conftest.py."""

from __future__ import annotations

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
