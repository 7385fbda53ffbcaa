"""Run Python in a child process that imports the same pyvision_engine as this one."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from typing import Sequence

import pyvision_engine


def child_env(**overrides: str) -> dict:
    env = dict(os.environ)
    env.pop("PVE_ISA", None)
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(pyvision_engine.__file__)))
    env["PYTHONPATH"] = os.pathsep.join([package_root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env.update(overrides)
    return env


def run_python(args: Sequence[str], timeout: float = 300, **env_overrides: str) -> subprocess.CompletedProcess:
    """``python *args`` from a neutral directory (so no source tree shadows the package)."""
    return subprocess.run([sys.executable, *args], env=child_env(**env_overrides), cwd=tempfile.gettempdir(),
                          capture_output=True, text=True, timeout=timeout)
