"""Building the library's optional C++ kernels (``csrc/*.cpp``) once per machine, and caching them.

Both compiled kernels (Chamfer distances, k-medoids) are built here with the system compiler (``$CXX``,
``c++``, ``g++`` or ``clang++``) into a cache directory (``$DISPERSION_SCORE_CACHE``, else
``$XDG_CACHE_HOME/dispersion_score`` or ``~/.cache/dispersion_score``; a per-user temporary folder when that
is not writable), keyed by everything that changes the binary: the source, every file of ``csrc/`` it may
include, the flags, the compiler and its version, and the CPU identity (``-march=native`` code must not run
on another CPU). ``DISPERSION_SCORE_NO_COMPILE=1`` disables every build; callers then use their torch path.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)
K = TypeVar("K")

CSRC = Path(__file__).resolve().parent / "csrc"
# -ffp-contract=off: no fused multiply-add the source does not write, so every build rounds the same way.
COMMON_FLAGS = ("-O3", "-ffp-contract=off", "-std=c++17", "-shared", "-fPIC")

_versions: dict[str, str] = {}


class CompileError(RuntimeError):
    """The compiler rejected the source with the given flags."""


def cache_dir() -> Path:
    """Where built kernels are kept (see the module docstring)."""
    root = os.environ.get("DISPERSION_SCORE_CACHE")
    if root:
        return Path(root)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "dispersion_score"


def find_compiler() -> str | None:
    """The C++ compiler to use, or None."""
    for candidate in (os.environ.get("CXX"), "c++", "g++", "clang++"):
        if candidate and shutil.which(candidate):
            return shutil.which(candidate)
    return None


def machine_tag() -> str:
    """CPU identity for the cache key: architecture, model and instruction-set flags."""
    flags = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith(("flags", "Features", "model name")):
                    flags += line
    except OSError:
        flags = platform.processor()
    return platform.machine() + flags


# Flags that pick the instruction set of a compiled kernel (each source chooses its vector widths from the target
# macros): "native" is what the kernels load, "baseline" (the compiler's default target) where -march=native is
# refused; the others let tests and benchmarks build every body on one machine.
ISA_VARIANT_FLAGS: dict[str, tuple[str, ...]] = {
    "native": ("-march=native",),
    "avx512": ("-mavx512f", "-mavx2", "-mfma"),
    "avx2": ("-mavx2", "-mfma"),
    "baseline": (),
}
# The /proc/cpuinfo flag a variant's code needs to run (None: any CPU the compiler targets by default).
ISA_VARIANT_CPU_FLAG: dict[str, str | None] = {"native": None, "avx512": "avx512f", "avx2": "avx2", "baseline": None}


def cpu_has(flag: str | None) -> bool:
    """Whether /proc/cpuinfo lists ``flag`` (None: True); False where /proc/cpuinfo is unreadable."""
    if flag is None:
        return True
    return flag in machine_tag().split()


def load_variant_library(
    source: Path,
    variant: str,
    flags: Mapping[str, tuple[str, ...]],
    cpu_flags: Mapping[str, str | None],
    *,
    stem: str,
    abi_version: int,
    abi_symbol: str,
) -> tuple[ctypes.CDLL, Path]:
    """Build (or take from the cache) the instruction-set variant ``variant`` of a kernel's ``source`` and
    load it: the library and its path, its ABI version (``abi_symbol()``) checked against ``abi_version``.

    Raises:
        ValueError: a variant ``flags`` does not name. CompileError: the compiler rejected it. RuntimeError:
        the CPU lacks the variant's instructions (``cpu_flags``; running them would kill the process), no
        compiler or compilation disabled, or a stale build.
    """
    if variant not in flags:
        raise ValueError(f"variant must be one of {list(flags)}, got {variant!r}")
    if not cpu_has(cpu_flags[variant]):
        raise RuntimeError(f"this CPU lacks {cpu_flags[variant]}, which the {variant!r} variant needs")
    target = build_library(source.read_text(encoding="utf-8"), flags[variant], stem=stem, key=(str(abi_version),))
    library = ctypes.CDLL(str(target))
    if getattr(library, abi_symbol)() != abi_version:
        raise RuntimeError(f"stale kernel at {target} (ABI mismatch)")
    return library, target


def compiler_version(compiler: str) -> str:
    if compiler not in _versions:
        result = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=60)
        _versions[compiler] = result.stdout.strip()
    return _versions[compiler]


def build_library(source_text: str, flags: Sequence[str], *, stem: str, key: Sequence[str] = ()) -> Path:
    """The shared library of ``source_text`` (its ``#include "..."`` resolve in ``csrc/``) built with
    :data:`COMMON_FLAGS` + ``flags``, from the cache or compiled into it; ``key`` adds strings to the cache
    key (e.g. an ABI version).

    Raises:
        RuntimeError: builds disabled by ``DISPERSION_SCORE_NO_COMPILE``, or no compiler.
        CompileError: the compiler rejected the source (its message included).
    """
    if os.environ.get("DISPERSION_SCORE_NO_COMPILE", "") not in ("", "0"):
        raise RuntimeError("disabled by DISPERSION_SCORE_NO_COMPILE")
    compiler = find_compiler()
    if compiler is None:
        raise RuntimeError("no C++ compiler found (set $CXX or install g++/clang++)")
    included = [path.read_text(encoding="utf-8") for path in sorted(CSRC.glob("*.cpp"))]
    parts = [source_text, *included, " ".join((*COMMON_FLAGS, *flags)), compiler, compiler_version(compiler)]
    digest = hashlib.sha256("\n".join([*parts, machine_tag(), *key]).encode()).hexdigest()[:20]
    target = cache_dir() / f"{stem}_{digest}.so"
    if not target.exists():
        try:
            _compile(compiler, source_text, flags, target)
        except OSError:  # unwritable cache directory: build in a per-user temporary one instead
            user = getattr(os, "getuid", lambda: 0)()
            target = Path(tempfile.gettempdir()) / f"dispersion_score-{user}" / target.name
            if not target.exists():
                _compile(compiler, source_text, flags, target)
    return target


def _compile(compiler: str, source_text: str, flags: Sequence[str], target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        source = Path(tmp) / "source.cpp"
        source.write_text(source_text, encoding="utf-8")
        built = Path(tmp) / target.name
        command = [compiler, *COMMON_FLAGS, *flags, "-I", str(CSRC), str(source), "-o", str(built)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=300)
        if result.returncode != 0:
            first_line = compiler_version(compiler).splitlines()[:1]
            raise CompileError(
                f"compiling with {compiler} ({first_line}) and {' '.join(flags) or 'default flags'} failed: "
                f"{result.stderr[-2000:]}"
            )
        os.replace(built, target)  # atomic: concurrent builders never load a half-written file


class LazyKernel(Generic[K]):
    """A compiled kernel built and loaded on first use, once per process (thread-safe). :meth:`get` returns
    None when it is unavailable (no compiler, disabled, the build or its self-test failed), logging the
    reason once, and the callers use their torch path."""

    def __init__(self, build: Callable[[], K], what: str) -> None:
        self._build, self._what = build, what
        self._lock = threading.Lock()
        self._tried = False
        self._kernel: K | None = None
        self.reason: str | None = None  # why get() returned None

    def get(self) -> K | None:
        with self._lock:
            if not self._tried:
                try:
                    self._kernel = self._build()
                except Exception as error:  # noqa: BLE001 - any build/load failure means "use the torch path"
                    self.reason = str(error)
                    logger.warning("dispersion_score: compiled %s unavailable, using torch (%s)", self._what, error)
                self._tried = True
            return self._kernel

    def disable(self, reason: str) -> None:
        """Behave as if the kernel were unavailable (tests of the torch path)."""
        with self._lock:
            self._tried, self._kernel, self.reason = True, None, reason
