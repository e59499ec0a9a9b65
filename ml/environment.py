"""The numeric environment a model was trained in: what decides its last bits.

Why it is recorded: a fitted model's floats depend on more than its inputs. OpenBLAS picks its
kernels by CPU (``SkylakeX`` with AVX-512, ``Haswell``/``Zen`` with AVX2, ``Sandybridge``,
``Prescott``…, or whatever ``OPENBLAS_CORETYPE`` forces when the library loads), numpy picks
its SIMD loops by CPU too, and the thread count changes summation order. Two honest trainings
on different machines can therefore give model files that differ in the last bits. The training
metadata records this environment, so that a retrain is held to ``identical`` only where the
environment is the same, and to ``equivalent within a tolerance`` elsewhere
(:mod:`ml.reproduce`).
"""

from __future__ import annotations

import platform
from collections.abc import Mapping
from typing import Any

from threadpoolctl import threadpool_info

__all__ = ["describe_environment", "library_versions", "numeric_environment"]


def numeric_environment() -> dict[str, Any]:
    """This process's numeric environment, as plain JSON values (sorted, so it hashes stably).

    ``blas``: every BLAS library loaded (numpy's and scipy's each bring one), with its version
    and the kernel set it runs; ``numpy_simd``: the SIMD extensions numpy dispatches to here;
    ``threads``: the thread count training runs with (always 1, see :mod:`ml._threads`).
    """
    # Imported here: the first call needs numpy, scipy and scikit-learn's native libraries
    # loaded, which importing :mod:`ml.training` does.
    import numpy as np

    blas = sorted(
        (
            {
                "library": str(info.get("prefix", "")),
                "api": str(info.get("internal_api", "")),
                "version": info.get("version"),
                "architecture": info.get("architecture"),
            }
            for info in threadpool_info()
            if info.get("user_api") == "blas"
        ),
        key=lambda item: (item["library"], str(item["version"])),
    )
    return {
        "machine": platform.machine(),
        "blas": blas,
        "numpy_simd": _numpy_simd(np),
        "threads": 1,
    }


def library_versions() -> dict[str, str]:
    """Versions that can change a trained model's bytes, recorded in the metadata."""
    import numpy as np
    import scipy
    import sklearn
    import skops

    return {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "skops": skops.__version__,
    }


def describe_environment(environment: Mapping[str, Any] | None) -> str:
    """One human line: ``x86_64, OpenBLAS 0.3.31 SkylakeX + 0.3.30 SkylakeX, numpy AVX512_ICL``."""
    if not isinstance(environment, Mapping):
        return "an unrecorded environment"
    kernels = " + ".join(
        f"{item.get('version')} {item.get('architecture')}"
        for item in environment.get("blas") or []
        if isinstance(item, Mapping)
    )
    simd = environment.get("numpy_simd") or []
    best = simd[-1] if isinstance(simd, list) and simd else "baseline"
    return f"{environment.get('machine')}, OpenBLAS {kernels or 'none'}, numpy {best}"


def _numpy_simd(np: Any) -> list[str]:
    """The dispatch targets numpy enables on this CPU (in numpy's own order, best last)."""
    try:
        from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
    except ImportError:  # numpy < 2
        return []
    return [name for name in __cpu_dispatch__ if __cpu_features__.get(name)]
