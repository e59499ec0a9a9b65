"""Training says what it needs: the memory estimates hold up against what loading really takes.

tracemalloc counts every Python allocation made while a dataset is loaded; the estimate must not
be below it (it is the service's reason to refuse or to go ahead), and not absurdly above it.
"""

from __future__ import annotations

import random
import tracemalloc

import pytest

from ml import errors
from ml.datasets import Column, estimate_dataset_bytes, parse_dataset
from ml.training_memory import check_training_memory, estimate_training_bytes

random.seed(11)
SHAPES = {
    "numeric": lambda n: (
        "id,a,b,c,d\n"
        + "".join(f"{i},{i % 997},{(i * 7) % 1013},{i * 0.5},{i % 2}\n" for i in range(n))
    ),
    "floats": lambda n: (
        "a,b,c\n"
        + "".join(
            f"{random.random()!r},{random.random() * 1e6!r},{random.randint(-(10**12), 10**12)}\n"
            for _ in range(n)
        )
    ),
    "text": lambda n: (
        "id,s,t\n"
        + "".join(f"{i},{'x' * random.randint(0, 200)},héllo wörld {i}\n" for i in range(n))
    ),
    "small values": lambda n: "a,b,c\n" + "".join(f"{i % 3},{i % 5 == 0},\n" for i in range(n)),
}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_the_estimate_is_not_below_what_loading_takes(shape: str) -> None:
    data = SHAPES[shape](40_000).encode()
    tracemalloc.start()
    try:
        dataset = parse_dataset(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    estimate = estimate_dataset_bytes(dataset.columns, dataset.row_count, dataset.size)
    assert peak <= estimate <= 3 * peak + (16 << 20), (peak, estimate)


def test_training_is_refused_past_the_limit_with_the_estimate_and_the_setting() -> None:
    columns = [Column("x", "float"), Column("y", "integer"), Column("label", "string")]
    estimate = estimate_training_bytes(columns, 10_000_000, 400_000_000)
    assert estimate > estimate_dataset_bytes(columns, 10_000_000, 400_000_000)
    assert check_training_memory(
        columns, 10_000_000, 400_000_000, max_memory_bytes=estimate
    ) == estimate  # fmt: skip
    with pytest.raises(errors.MemoryLimitExceeded) as info:
        check_training_memory(columns, 10_000_000, 400_000_000, max_memory_bytes=estimate - 1)
    assert (info.value.limit, info.value.maximum, info.value.estimate) == (
        "max_memory_bytes", estimate - 1, estimate,
    )  # fmt: skip
    assert f"{estimate:,}" in str(info.value) and "max_memory_bytes" in str(info.value)
    assert isinstance(info.value, errors.TooLarge) and info.value.code == "memory-limit"
    fewer = estimate_training_bytes(columns, 10_000_000, 400_000_000, features=["x"])
    assert fewer < estimate
