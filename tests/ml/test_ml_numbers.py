"""``ml`` is safe on its own with any number (issue 19, part 4): called directly, without the
API's edge check, an integer of any size, NaN or an infinity in a predict row or a transform
spec raises the package's typed errors, never ``OverflowError``; and ``clip_outliers`` bounds
that overflow float64 are no crash either."""

from __future__ import annotations

import math
import sys

import pytest

from ml.artifacts import load_model
from ml.datasets import parse_dataset
from ml.errors import InvalidInput, InvalidTransform, NonNumericInput
from ml.training import train
from ml.transforms import TransformSpec, apply_transform

DATA = b"x1,x2,y\n1,2,3.5\n2,3,5.0\n3,5,7.5\n4,4,8.0\n5,7,11.5\n"
HUGE = [10**399, -(10**399), int(sys.float_info.max) + 1, 10**5000]  # 10**5000: past str()


def _id(value: object) -> str:
    """A test id (``str`` of an integer past 4,300 digits raises)."""
    if isinstance(value, int) and abs(value) > 10**20:
        return f"{'-' if value < 0 else ''}int{value.bit_length()}bits"
    return repr(value)


@pytest.fixture(scope="module")
def models() -> dict[str, object]:
    data = parse_dataset(DATA)
    out = {}
    for algorithm in ("linear_regression", "random_forest_regressor"):
        params = {"n_estimators": 3} if algorithm.startswith("random") else {}
        trained = train(data, algorithm=algorithm, target="y", test_size=0, params=params)
        out[algorithm] = load_model(trained.model_bytes, trained.model_hash)
    return out


@pytest.mark.parametrize("value", HUGE, ids=_id)
@pytest.mark.parametrize("algorithm", ["linear_regression", "random_forest_regressor"])
def test_a_huge_integer_in_a_row_is_invalid_input_not_overflow(models, algorithm, value):
    with pytest.raises(InvalidInput, match=r"input row 1: x1 = -?an integer of \d+ bits"):
        models[algorithm].predict([{"x1": 1, "x2": 1}, {"x1": value, "x2": 1}])


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_a_non_finite_float_in_a_row_is_non_numeric(models, value):
    with pytest.raises(NonNumericInput):
        models["linear_regression"].predict([{"x1": value, "x2": 1}])


def test_the_float32_message_says_the_truth_per_model(models):
    with pytest.raises(InvalidInput, match="that tree models compute in"):
        models["random_forest_regressor"].predict([{"x1": 1e39, "x2": 1}])
    with pytest.raises(InvalidInput, match="the range the service accepts") as refused:
        models["linear_regression"].predict([{"x1": 1e39, "x2": 1}])
    assert "tree" not in str(refused.value)


@pytest.mark.parametrize("value", [-0.0, 5e-324, -5e-324, 3.0e38, 10**38])
def test_ordinary_extremes_predict(models, value):
    for model in models.values():
        [output] = model.predict([{"x1": value, "x2": value}]).values
        assert math.isfinite(output)


@pytest.mark.parametrize("factor", [*HUGE, math.nan, math.inf, -0.0], ids=_id)
def test_a_clip_factor_that_is_no_positive_float64_is_invalid(factor):
    with pytest.raises(InvalidTransform, match="factor must be a positive number"):
        TransformSpec.from_json({"steps": [{"step": "clip_outliers", "factor": factor}]})


@pytest.mark.parametrize("value", [*HUGE, math.nan, math.inf, -math.inf], ids=_id)
def test_a_filter_value_beyond_float64_is_invalid(value):
    with pytest.raises(InvalidTransform, match="finite number within the float64 range"):
        TransformSpec.from_json(
            {"steps": [{"step": "filter_rows", "column": "x1", "op": "<", "value": value}]}
        )


@pytest.mark.parametrize("method", ["iqr", "zscore"])
@pytest.mark.parametrize("factor", [1e308, sys.float_info.max, 10**300, 5e-324], ids=_id)
def test_clip_bounds_past_float64_clip_nothing_and_do_not_crash(method, factor):
    """A bound past float64 is no bound on that side: every value lies within it."""
    data = parse_dataset(b"i,f\n1,0.5\n2,1.5\n3,2.5\n100,-40.25\n")
    spec = TransformSpec.from_json(
        {"steps": [{"step": "clip_outliers", "method": method, "factor": factor}]}
    )
    out = apply_transform(data, spec)
    if factor > 1:
        assert out == b"i,f\n1,0.5\n2,1.5\n3,2.5\n100,-40.25\n"
    else:  # a denormal factor clamps everything into the quartiles or onto the mean
        assert parse_dataset(out).row_count == 4


def test_clip_statistics_that_overflow_are_a_typed_refusal():
    """The mean of values near float64's largest overflows: there is nothing to clamp to."""
    data = parse_dataset(b"f\n1.7e308\n1.7e308\n1.0\n")
    spec = TransformSpec.from_json({"steps": [{"step": "clip_outliers", "method": "zscore"}]})
    with pytest.raises(InvalidTransform, match="overflow the float64 range"):
        apply_transform(data, spec)
