"""OpenBLAS kernel sets for tests that train under each (``OPENBLAS_CORETYPE``, read when the
library loads, so only in a new process): the CPU flags each needs, and whether this CPU has
them (forcing a kernel the CPU lacks would crash the process with an illegal instruction)."""

from __future__ import annotations

import platform
from functools import cache
from pathlib import Path

import pytest

__all__ = ["KERNELS", "kernel_params", "runnable"]

# The kernel sets named by issue 19, with the instruction sets their code uses.
KERNELS: dict[str, frozenset[str]] = {
    "SkylakeX": frozenset({"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"}),
    "Haswell": frozenset({"avx2", "fma"}),
    "Zen": frozenset({"avx2", "fma"}),
    "Prescott": frozenset({"pni"}),  # SSE3, as /proc/cpuinfo names it
}


@cache
def _cpu_flags() -> frozenset[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def runnable(kernel: str) -> bool:
    """Can this machine run OpenBLAS's ``kernel`` set?"""
    return platform.machine() == "x86_64" and KERNELS[kernel] <= _cpu_flags()


def kernel_params() -> list[object]:
    """Every kernel as a pytest parameter, skipped (with the reason) where the CPU lacks it."""
    return [
        pytest.param(
            kernel,
            marks=pytest.mark.skipif(
                not runnable(kernel), reason=f"this CPU cannot run OpenBLAS's {kernel} kernels"
            ),
        )
        for kernel in KERNELS
    ]
