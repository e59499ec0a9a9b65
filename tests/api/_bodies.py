"""Request bodies that get past validation, mixed into what schemathesis generates.

The OpenAPI document says what shape a body has, not what makes it meaningful: a predict row
needs the model's feature names, a cleaning step needs a real step name and column, a receipt
must be one the service signed. Generated from the schema alone, such bodies are refused with
422 and the code behind the validation is never reached. ``install_body_hooks`` registers
``flatmap_body`` hooks that, for those operations, draw either the generated body unchanged or
a meaningful one built around the seeded records (still with fuzzed numbers, columns, flags
and tampered fields), so both the refusals and the code behind them are exercised.

``register`` is ``schema.hook`` (hooks for one schema, in the test suite) or
``schemathesis.hook`` (global hooks, for a CLI run in the same process).
"""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

from ml.training import ALGORITHMS
from tests.api._seed import CLASSIFIER_CSV, FEATURES, REVOKED_CSV, TARGET, VICTIM_CSV, Seeded

__all__ = ["BODY_OPERATIONS", "EXTREMES", "install_body_hooks"]

COLUMNS = (*FEATURES, TARGET)
# Numbers at the edges of what JSON carries and float64 holds (issue 19): integers of 300 digits
# (within float64) and 400 (beyond it: a 422 at the edge), the largest finite values, minus
# zero and the smallest denormals. NaN and Infinity are not JSON, so the fuzzer never sends them
# (tests/api/test_api_numbers.py does, as Python's json writes them).
EXTREMES = st.sampled_from([
    10**299, -(10**299), 10**399, -(10**399), int(sys.float_info.max) + 1,
    sys.float_info.max, -sys.float_info.max, 1e308, 3.5e38, -0.0, 5e-324, -5e-324,
])  # fmt: skip
NUMBERS = st.one_of(
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    EXTREMES,
)
# Hyperparameters that every algorithm either has or refuses by name, each cheap at any value
# (no iteration counts or sizes: those are capped by ml.training, not fuzzed here).
PARAMS = st.fixed_dictionaries({}, optional={"alpha": EXTREMES, "tol": EXTREMES, "C": EXTREMES})
CELLS = st.one_of(NUMBERS, st.none(), st.text(max_size=8))
RECEIPT_FIELDS = (
    "receipt_id", "model_hash", "input_hash", "output", "output_hash", "issued_at", "service",
    "signature",
)  # fmt: skip


def _rows() -> st.SearchStrategy[list[dict[str, Any]]]:
    row = st.fixed_dictionaries({name: NUMBERS for name in FEATURES})
    return st.lists(row, min_size=1, max_size=4)


def _steps() -> st.SearchStrategy[list[dict[str, Any]]]:
    column = st.sampled_from(COLUMNS)
    columns = st.lists(column, min_size=1, max_size=len(COLUMNS), unique=True)
    step = st.one_of(
        st.fixed_dictionaries({"step": st.just("drop_duplicates")}, optional={"columns": columns}),
        st.fixed_dictionaries({"step": st.just("drop_missing")}, optional={"columns": columns}),
        st.fixed_dictionaries(
            {"step": st.just("clip_outliers")},
            optional={
                "method": st.sampled_from(["iqr", "zscore"]),
                "factor": st.floats(min_value=0.01, max_value=10) | EXTREMES,
                "columns": columns,
            },
        ),
        st.fixed_dictionaries({"step": st.just("select_columns"), "columns": columns}),
        st.fixed_dictionaries(
            {
                "step": st.just("filter_rows"),
                "column": column,
                "op": st.sampled_from(["==", "!=", "<", "<=", ">", ">="]),
                "value": CELLS,
            }
        ),
    )
    # Steps that are objects but not steps: a name or columns of any JSON type.
    junk = st.one_of(
        st.lists(CELLS, max_size=2), st.dictionaries(st.text(max_size=3), CELLS), CELLS
    )
    names = st.sampled_from(["drop_duplicates", "select_columns", "filter_rows", "clip_outliers"])
    malformed = st.fixed_dictionaries({"step": junk}) | st.fixed_dictionaries(
        {"step": names, "columns": junk, "column": junk}
    )
    return st.lists(step | malformed, min_size=1, max_size=4)


def _training(seeded: Seeded) -> st.SearchStrategy[dict[str, Any]]:
    """Every field is set, so that no generated one (random feature names or hyperparameters,
    which are refused outright) survives the overlay."""
    return st.fixed_dictionaries(
        {
            # Mostly the clean dataset; the raw one has a missing value, the revoked one is refused.
            "dataset": st.sampled_from([seeded.derived] * 3 + [seeded.dataset, seeded.revoked]),
            "algorithm": st.sampled_from(sorted(ALGORITHMS)),
            "target": st.sampled_from(COLUMNS),
            "features": st.none() | st.lists(st.sampled_from(COLUMNS), max_size=3, unique=True),
            # Edges too: a large test split leaves the training split few rows and classes.
            "test_size": st.sampled_from([0.9, 0.0, 0.5, 0.8])
            | st.floats(min_value=0, max_value=0.9)
            | EXTREMES,
            "params": st.just({}) | PARAMS,
            "seed": st.integers(0, 2**32 - 1) | EXTREMES,
        }
    )


def _render_csv(header: list[str], rows: list[list[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def _csv_files() -> st.SearchStrategy[str]:
    """Small CSV texts: known or fuzzed column names, numeric, boolean, empty or odd fields."""
    name = st.sampled_from(COLUMNS) | st.text(min_size=1, max_size=6)
    field = st.one_of(
        st.integers(-(10**6), 10**6).map(str),
        st.floats(allow_nan=False, allow_infinity=False).map(repr),
        st.sampled_from(["", "true", "False", "NaN", "1e400", "007", "x"]),
        st.text(max_size=6),
    )

    def table(width: int) -> st.SearchStrategy[str]:
        header = st.lists(name, min_size=width, max_size=width, unique=True)
        rows = st.lists(st.lists(field, min_size=width, max_size=width), min_size=1, max_size=6)
        return st.builds(_render_csv, header, rows)

    return st.integers(1, 4).flatmap(table)


def _receipts(seeded: Seeded) -> st.SearchStrategy[dict[str, Any]]:
    """The seeded receipt as the service gave it, without its anchoring, or with one field
    replaced by a fuzzed value."""
    anchored = seeded.receipt
    bare = {key: anchored[key] for key in RECEIPT_FIELDS}
    tampered = st.tuples(st.sampled_from(sorted(anchored)), CELLS).map(
        lambda change: {**anchored, change[0]: change[1]}
    )
    return st.sampled_from([anchored, bare]) | tampered


def _mixed(
    realistic: st.SearchStrategy[dict[str, Any]],
) -> Callable[[Any, Any], st.SearchStrategy[Any]]:
    """A ``flatmap_body`` hook: one body in four as generated, the others with ``realistic``
    fields laid over the generated ones (extra generated fields stay)."""

    def flatmap_body(context: Any, body: Any) -> st.SearchStrategy[Any]:
        if not isinstance(body, dict):
            return st.just(body)  # a negative case of another shape: sent as generated
        overlaid = realistic.map(lambda fields: {**body, **fields})
        # Hypothesis leans towards 0 (its "simplest" choice): 0 is the meaningful body.
        return st.integers(0, 3).flatmap(lambda n: st.just(body) if n == 3 else overlaid)

    return flatmap_body


def _realistic(seeded: Seeded) -> dict[str, st.SearchStrategy[dict[str, Any]]]:
    files = _csv_files() | st.sampled_from([CLASSIFIER_CSV, REVOKED_CSV, VICTIM_CSV])
    return {
        "POST /v1/datasets": st.fixed_dictionaries({"file": files}),
        "POST /v1/datasets/{content_hash}/derive": st.fixed_dictionaries({"steps": _steps()}),
        "POST /v1/models": _training(seeded),
        "POST /v1/models/{model_hash}/predict": st.fixed_dictionaries({"rows": _rows()}),
        "POST /v1/verify/receipt": st.fixed_dictionaries(
            {"receipt": _receipts(seeded)},
            optional={
                "input": st.sampled_from([None, seeded.receipt_input])
                | st.dictionaries(st.sampled_from(FEATURES), NUMBERS),
                "rerun": st.booleans(),
            },
        ),
        "POST /v1/verify/dataset": st.fixed_dictionaries({"file": files}),
    }


# The operations whose bodies get meaningful values mixed in.
BODY_OPERATIONS = (
    "POST /v1/datasets",
    "POST /v1/datasets/{content_hash}/derive",
    "POST /v1/models",
    "POST /v1/models/{model_hash}/predict",
    "POST /v1/verify/receipt",
    "POST /v1/verify/dataset",
)


def install_body_hooks(register: Callable[[str], Any], seeded: Seeded) -> None:
    """Mix meaningful bodies into the generated ones of ``BODY_OPERATIONS``."""
    realistic = _realistic(seeded)
    assert set(realistic) == set(BODY_OPERATIONS)
    for label, strategy in realistic.items():
        register("flatmap_body").apply_to(name=label)(_mixed(strategy))
