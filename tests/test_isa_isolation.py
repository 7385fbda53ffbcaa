"""Only kernel code built for an ISA may use that ISA's registers.

Disassembles the installed extension and checks, function by function, that
zmm registers appear only in pve::avx512 functions and ymm registers only in
pve::avx2 / pve::avx512 ones. Baseline code (core, bindings, pybind11, shared
inline functions) using them would crash on an older CPU at import.
"""

import re
import shutil
import subprocess

import pytest

import pyvision_engine._C as native
import pyvision_engine.data._augment as augment

FUNCTION = re.compile(r"^[0-9a-f]+ <(.*)>:$")


def functions_using(path: str, register: str) -> set:
    objdump = shutil.which("objdump")
    if objdump is None:
        pytest.skip("objdump (binutils) not installed: ISA isolation of the binary not checked")
    text = subprocess.run([objdump, "-d", "-C", "--no-show-raw-insn", path], capture_output=True,
                          text=True, check=True).stdout
    current, found = None, set()
    for line in text.splitlines():
        m = FUNCTION.match(line)
        if m:
            current = m.group(1)
        elif current and f"%{register}" in line:
            found.add(current)
    return found


def in_namespace(function: str, isa: str) -> bool:
    """Whether a disassembled function lies in pve::<isa>; objdump leaves some long
    names (OpenMP outlines of lambdas in templates) mangled: _ZN3pve<len><isa>..."""
    return f"pve::{isa}::" in function or function.startswith(f"_ZN3pve{len(isa)}{isa}")


def test_zmm_only_in_avx512_kernels():
    offenders = {f for f in functions_using(native.__file__, "zmm")
                 if not in_namespace(f, "avx512")}
    assert not offenders, f"baseline functions use AVX-512 registers: {sorted(offenders)[:10]}"


def test_ymm_only_in_avx_kernels():
    offenders = {f for f in functions_using(native.__file__, "ymm")
                 if not in_namespace(f, "avx512") and not in_namespace(f, "avx2")}
    assert not offenders, f"baseline functions use AVX registers: {sorted(offenders)[:10]}"


def test_kernels_were_built_per_isa():
    assert any("pve::avx512::" in f for f in functions_using(native.__file__, "zmm"))


def test_cython_modules_are_baseline():
    assert not functions_using(augment.__file__, "ymm")
