"""Which JSON numbers a client may send: the one check, made once, at the edge.

Python's ``json``, which reads every request body, takes an integer of any length, and ``NaN``,
``Infinity`` and ``-Infinity``; a decimal too large for a double (``1e400``) reads as infinity.
None of these is a number the service can compute with (numpy, scikit-learn and the hashes of
canonical JSON all work in float64), and deep in a library they surface as ``OverflowError`` or
``ValueError``: 500s. So every request body (every ``XCreate``, see ``_common._Create``) is
walked once, before its fields are validated, and each number that is not a finite float64 is
refused with its path: a 422 ``number-out-of-range`` problem naming the field (the type is
declared in ``api/problems.py``, beside every other).

What passes is every finite float64, and every integer within ±1.7976931348623157e308
(:data:`FLOAT64_MAX`): ``-0.0`` and denormals such as ``5e-324`` are ordinary numbers. Narrower
ranges belong to whoever computes with the number, and are refused there with their own
problem: a field's declared bounds (``seed``, ``test_size``, ``offset``), an algorithm's (trees
compute in float32: ``ml.artifacts``), a hyperparameter's cap (``ml.training``).
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

from pydantic_core import InitErrorDetails, PydanticCustomError, ValidationError

__all__ = ["FLOAT64_MAX", "NUMBER_ERROR", "check_numbers", "loads", "number_problem"]

FLOAT64_MAX = sys.float_info.max
# The pydantic error type of a refused number; ``api/problems.py`` maps it to a problem type.
NUMBER_ERROR = "number_out_of_range"
# A body of many bad numbers is refused whole; its first few say why.
MAX_REPORTED = 20


def number_problem(value: Any) -> str | None:
    """Why ``value`` is not a number the service accepts, or None if it is (or is no number).

    Never converts an integer to a float (that is what overflows): integers and floats compare
    exactly in Python, whatever their size."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        if -FLOAT64_MAX <= value <= FLOAT64_MAX:
            return None
        sign = "-" if value < 0 else ""
        return (
            f"{sign}an integer beyond the float64 range (±{FLOAT64_MAX!r}); the service computes "
            "in float64"
        )
    if isinstance(value, float) and not math.isfinite(value):
        if math.isnan(value):
            return "NaN is not a number; send a finite number"
        spelled = "Infinity" if value > 0 else "-Infinity"
        return (
            f"{spelled} (or a number past ±{FLOAT64_MAX!r}, which JSON reads as it) is beyond "
            "the float64 range; send a finite number"
        )
    return None


def check_numbers(document: Any) -> Any:
    """Return ``document`` unchanged if every number in it (at any depth) is acceptable; else
    raise a pydantic ``ValidationError`` with one ``number_out_of_range`` error per refused
    number (the first :data:`MAX_REPORTED`, in document order), each at its path below
    ``document``. Raised from a validator, pydantic prefixes the paths with the field's own."""
    errors: list[InitErrorDetails] = []
    stack: list[tuple[tuple[str | int, ...], Any]] = [((), document)]
    while stack and len(errors) < MAX_REPORTED:
        loc, value = stack.pop()
        if isinstance(value, dict):
            items: list[tuple[str | int, Any]] = list(value.items())
        elif isinstance(value, list | tuple):
            items = list(enumerate(value))
        else:
            if (reason := number_problem(value)) is not None:
                error = PydanticCustomError(NUMBER_ERROR, "{reason}", {"reason": reason})
                errors.append(InitErrorDetails(type=error, loc=loc, input=_shown(value)))
            continue
        stack.extend(((*loc, key), child) for key, child in reversed(items))
    if errors:
        raise ValidationError.from_exception_data("numbers", errors)
    return document


def _shown(value: int | float) -> str | float:
    """A refused number as an error may carry it: a float as is, an integer by its size (a
    400-digit integer has no short form, and ``str`` refuses past 4,300 digits)."""
    if isinstance(value, float):
        return value
    return f"{'-' if value < 0 else ''}integer of {value.bit_length()} bits"


def loads(text: str | bytes) -> Any:
    """``json.loads`` for a body that is not a pydantic model (``POST /rpc``): a number that
    :func:`number_problem` refuses is a ``ValueError``, like any other JSON it cannot read.
    (``NaN`` and ``Infinity`` are not JSON at all; Python's ``json`` reads them by default.)"""
    return json.loads(text, parse_constant=_refused, parse_float=_float, parse_int=_int)


def _refused(literal: str) -> Any:
    raise ValueError(f"{literal} is not a JSON number")


def _float(literal: str) -> float:
    value = float(literal)
    if (reason := number_problem(value)) is not None:
        raise ValueError(reason)
    return value


def _int(literal: str) -> int:
    value = int(literal)
    if (reason := number_problem(value)) is not None:
        raise ValueError(reason)
    return value
