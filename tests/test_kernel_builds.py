"""Both compiled kernels: every instruction-set variant compiles without warnings, and a variant that is
unknown or that this CPU cannot run is refused with the reason."""

from __future__ import annotations

import subprocess
from types import ModuleType

import pytest

from dispersion_score import _chamfer_kernel, _kmedoids_kernel, _native

COMPILER = _native.find_compiler()
pytestmark = pytest.mark.skipif(COMPILER is None, reason="no C++ compiler")

KERNELS: dict[str, ModuleType] = {"chamfer": _chamfer_kernel, "kmedoids": _kmedoids_kernel}
BUILDS = [
    (name, variant)
    for name, module in KERNELS.items()
    for variant, flag in module.VARIANT_CPU_FLAG.items()
    if _native.cpu_has(flag)
]


@pytest.mark.parametrize("name,variant", BUILDS)
def test_variant_compiles_without_warnings(name, variant):
    module = KERNELS[name]
    command = [COMPILER, *_native.COMMON_FLAGS, *module.VARIANT_FLAGS[variant]]
    command += ["-Wall", "-Wextra", "-fsyntax-only", str(module.SOURCE)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stderr == "", result.stderr[-3000:]


@pytest.mark.parametrize("name", KERNELS)
def test_unknown_or_unsupported_variants_are_refused(name, monkeypatch):
    module = KERNELS[name]
    with pytest.raises(ValueError, match="variant must be one of"):
        module.load_variant("sse9")
    monkeypatch.setitem(module.VARIANT_CPU_FLAG, "avx512", "no_such_cpu_flag")
    with pytest.raises(RuntimeError, match="lacks no_such_cpu_flag"):
        module.load_variant("avx512")
