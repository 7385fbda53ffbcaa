"""pve.backends: switches that choose how ops run (which algorithm), for debugging and tests."""

from pyvision_engine.backends import conv

__all__ = ["conv"]
