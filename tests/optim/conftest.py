"""The optimizer tests share helper modules (problem, runner, configs) that sit
next to them; put this folder on sys.path so they import by name."""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
