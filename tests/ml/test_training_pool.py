"""ml.training_pool: trainings in warm worker processes, bounded in time and memory, that can
be stopped. Real processes throughout (no mocks): each limit is hit for real and the pool is
shown to go on serving afterwards."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ml.datasets import Limits, parse_dataset
from ml.errors import (
    DatasetChanged,
    InvalidParameter,
    ParameterCapExceeded,
    TrainingInterrupted,
    TrainingLimitExceeded,
)
from ml.hashing import to_hex
from ml.training import train
from ml.training_pool import DatasetFile, TrainingPool

CSV = b"x1,x2,y\n" + b"".join(f"{i},{i * 7 % 11},{i * 3 + i % 5}\n".encode() for i in range(300))
RIDGE = {"algorithm": "ridge", "target": "y", "params": {}, "test_size": 0.2, "seed": 1}
# An MLP that would run for minutes: wide layers, no early stop.
ENDLESS = {
    "algorithm": "mlp_regressor",
    "target": "y",
    "params": {
        "hidden_layer_sizes": [1024, 1024],
        "max_iter": 10_000,
        "tol": 0.0,
        "n_iter_no_change": 10_000,
    },
}
GiB = 1 << 30


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> DatasetFile:
    path = tmp_path_factory.mktemp("pool") / "data.csv"
    path.write_bytes(CSV)
    return DatasetFile(path, to_hex(parse_dataset(CSV).content_hash), Limits())


@pytest.fixture
def pool() -> Iterator[TrainingPool]:
    pool = TrainingPool(size=1)
    yield pool
    pool.close()


def _children(pool: TrainingPool) -> set[int]:
    return {w.process.pid for w in [*pool._idle, *pool._busy]}


def test_a_training_in_a_worker_equals_one_in_process(pool, dataset) -> None:
    trained = pool.train(dataset, RIDGE, time_limit=60, memory_limit=GiB)
    here = train(parse_dataset(CSV), **RIDGE)
    assert trained.model_bytes == here.model_bytes
    assert trained.model_hash == here.model_hash
    metadata, local = json.loads(trained.metadata_bytes), json.loads(here.metadata_bytes)
    # One thread either way; the environment may name the same kernels.
    assert {k: v for k, v in metadata.items() if k != "environment"} == {
        k: v for k, v in local.items() if k != "environment"
    }
    assert metadata["environment"]["threads"] == 1
    assert trained.estimator is None


def test_the_worker_stays_warm_between_jobs(pool, dataset) -> None:
    pool.train(dataset, RIDGE, time_limit=60, memory_limit=GiB)
    first = _children(pool)
    for seed in range(3):
        pool.train(dataset, {**RIDGE, "seed": seed}, time_limit=60, memory_limit=GiB)
    assert _children(pool) == first


def test_errors_come_back_typed_and_the_worker_goes_on(pool, dataset) -> None:
    with pytest.raises(InvalidParameter, match="alpha") as info:
        pool.train(dataset, {**RIDGE, "params": {"alpha": -1}}, time_limit=60, memory_limit=GiB)
    assert info.value.name == "alpha"
    with pytest.raises(ParameterCapExceeded) as capped:
        pool.train(
            dataset,
            {**RIDGE, "algorithm": "random_forest_regressor", "params": {"n_estimators": 10**32}},
            time_limit=60,
            memory_limit=GiB,
        )
    assert (capped.value.parameter, capped.value.cap) == ("n_estimators", 1_000)
    assert pool.train(dataset, RIDGE, time_limit=60, memory_limit=GiB).model_hash


def test_a_job_past_its_time_limit_is_killed_and_replaced(pool, dataset) -> None:
    pool.train(dataset, RIDGE, time_limit=60, memory_limit=GiB)
    (before,) = _children(pool)
    started = time.monotonic()
    with pytest.raises(TrainingLimitExceeded) as info:
        pool.train(dataset, ENDLESS, time_limit=1.5, memory_limit=GiB)
    assert time.monotonic() - started < 10
    assert info.value.limit == "training_time_limit"
    with pytest.raises(ProcessLookupError):
        os.kill(before, 0)  # the runaway process is gone
    assert pool.train(dataset, RIDGE, time_limit=60, memory_limit=GiB).model_hash


def test_a_job_past_its_memory_limit_fails_inside_its_worker(pool, dataset) -> None:
    wide = {**ENDLESS, "params": {"hidden_layer_sizes": [1024] * 8, "max_iter": 5}}
    with pytest.raises(TrainingLimitExceeded) as info:
        pool.train(dataset, wide, time_limit=60, memory_limit=16 << 20)
    assert info.value.limit == "max_memory_bytes"
    assert pool.train(dataset, RIDGE, time_limit=60, memory_limit=GiB).model_hash


def test_a_worker_that_dies_mid_job_answers_interrupted(pool, dataset) -> None:
    pool.train(dataset, RIDGE, time_limit=60, memory_limit=GiB)
    (pid,) = _children(pool)
    threading.Timer(1.0, os.kill, (pid, signal.SIGKILL)).start()
    with pytest.raises(TrainingInterrupted, match="signal 9"):
        pool.train(dataset, ENDLESS, time_limit=60, memory_limit=GiB)
    assert pool.train(dataset, RIDGE, time_limit=60, memory_limit=GiB).model_hash


class Owner:
    """A job's owner, as a service is (the pool holds owners by weak reference)."""


def test_cancel_stops_one_owners_jobs_only(dataset) -> None:
    pool = TrainingPool(size=2)
    try:
        mine, theirs = Owner(), Owner()
        outcomes: dict[str, object] = {}

        def run(name: str, owner: object, request: dict) -> None:
            try:
                outcomes[name] = pool.train(
                    dataset, request, time_limit=60, memory_limit=GiB, owner=owner
                )
            except Exception as exc:
                outcomes[name] = exc

        threads = [
            threading.Thread(target=run, args=("mine", mine, ENDLESS)),
            threading.Thread(target=run, args=("theirs", theirs, RIDGE)),
        ]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 30
        while not any(w.owner is mine for w in list(pool._busy)):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        pool.cancel(mine)
        for thread in threads:
            thread.join(timeout=30)
        assert isinstance(outcomes["mine"], TrainingInterrupted)
        assert "stopping" in str(outcomes["mine"])
        assert not isinstance(outcomes["theirs"], Exception), outcomes["theirs"]
    finally:
        pool.close()


def test_a_cancelled_owner_starts_nothing_more_while_others_train(pool, dataset) -> None:
    stopped, other = Owner(), Owner()
    pool.cancel(stopped)  # as at SIGTERM, before its request reached the pool
    with pytest.raises(TrainingInterrupted, match="stopping"):
        pool.train(dataset, RIDGE, time_limit=60, memory_limit=GiB, owner=stopped)
    assert pool.train(dataset, RIDGE, time_limit=60, memory_limit=GiB, owner=other).model_hash


def test_close_refuses_new_jobs(dataset) -> None:
    pool = TrainingPool(size=1)
    pool.close()
    with pytest.raises(TrainingInterrupted):
        pool.train(dataset, RIDGE, time_limit=60, memory_limit=GiB)


def test_a_changed_file_is_refused_by_the_worker(pool, dataset, tmp_path: Path) -> None:
    changed = tmp_path / "changed.csv"
    changed.write_bytes(CSV.replace(b"0,0,0", b"0,0,1"))
    with pytest.raises(DatasetChanged):
        pool.train(
            DatasetFile(changed, dataset.content_hash, Limits()),
            RIDGE,
            time_limit=60,
            memory_limit=GiB,
        )


def test_workers_exit_when_their_parent_is_killed(tmp_path: Path) -> None:
    """A service killed with -9 leaves no training process behind (the worker watches its
    parent, even in the middle of a job)."""
    import subprocess
    import sys

    script = (
        "import sys, time\n"
        "from ml.training_pool import TrainingPool\n"
        "pool = TrainingPool(size=1)\n"
        "print(pool.environment() and [w.process.pid for w in pool._idle][0], flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert parent.stdout is not None
    worker = int(parent.stdout.readline())
    os.kill(worker, 0)
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while True:
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            break
        assert time.monotonic() < deadline, "the worker outlived its parent"
        time.sleep(0.1)


def test_a_process_holding_many_descriptors_still_trains(dataset) -> None:
    """A long-lived service holds many files and sockets: the pipe to a worker may get a
    descriptor past 1,024, which select() cannot watch (the pool polls)."""
    import resource

    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < 1_200:
        pytest.skip("this process may not open 1,200 files")
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1_100)]
    pool = TrainingPool(size=1)
    try:
        assert pool.train(dataset, RIDGE, time_limit=60, memory_limit=GiB).model_hash
    finally:
        pool.close()
        for fd in held:
            os.close(fd)


def test_a_worker_whose_service_went_away_exits_quietly() -> None:
    worker = subprocess.Popen(
        [sys.executable, "-m", "ml._worker"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert worker.stdout is not None
    worker.stdout.close()  # the service stopped before the worker said it was ready
    _, errors = worker.communicate(timeout=120)
    assert worker.returncode == 0 and b"Traceback" not in errors, errors.decode()
