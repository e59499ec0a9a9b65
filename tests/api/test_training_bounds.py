"""Issue 19: training cannot take the service down, and never claims a lineage that did not
happen.

* A hyperparameter past its cap is a 422 naming the parameter, the cap and the value sent.
* A runaway training (a real server process, a real runaway) is stopped at its time limit and
  answered with a problem naming the limit; ``/healthz`` answers meanwhile; SIGTERM stops
  ``provenance serve`` within 10 s in the middle of a training and leaves no training process.
* Two trainings on datasets that differ only in rows of the test split give the same model
  file: the second is a 409 naming the registered training, never a 200 with its lineage.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from sklearn.model_selection import train_test_split

from api.devserver import ServiceProcess
from tests.api.conftest import assert_problem, train, upload
from tests.ml.test_training_pool import ENDLESS

# 400 rows: wide enough that the MLP below runs for minutes.
ROWS = 400
BIG_CSV = "x1,x2,y\n" + "".join(f"{i},{i * 7 % 13},{i * 3 + i % 5}\n" for i in range(ROWS))
RUNAWAY = {**ENDLESS, "target": "y"}  # an MLP that would run for minutes on BIG_CSV


# --------------------------------------------------------------------------- caps


@pytest.mark.parametrize(
    ("algorithm", "params", "parameter", "cap"),
    [
        ("random_forest_regressor", {"n_estimators": 10**32 - 1}, "n_estimators", 1_000),
        ("random_forest_regressor", {"max_depth": 10**6}, "max_depth", 100),
        ("gradient_boosting_classifier", {"n_estimators": 5_001}, "n_estimators", 5_000),
        ("mlp_regressor", {"max_iter": 10**9}, "max_iter", 10_000),
        ("mlp_regressor", {"hidden_layer_sizes": [8, 4_096]}, "hidden_layer_sizes", 1_024),
        ("mlp_regressor", {"hidden_layer_sizes": [2] * 17}, "hidden_layer_sizes", 16),
        ("logistic_regression", {"max_iter": 10**12}, "max_iter", 100_000),
        ("ridge", {"max_iter": 100_001}, "max_iter", 100_000),
    ],
)  # fmt: skip
def test_a_hyperparameter_past_its_cap_is_refused_naming_it(
    client: TestClient, algorithm: str, params: dict[str, Any], parameter: str, cap: int
) -> None:
    dataset = upload(client, "x1,x2,y\n1,2,0\n2,3,1\n3,4,0\n4,5,1\n").json()["content_hash"]
    blocks = client.get("/v1/chain").json()["latest_block"]
    body = assert_problem(
        train(client, dataset, algorithm=algorithm, params=params), 422, "parameter-cap"
    )
    assert (body["parameter"], body["cap"]) == (parameter, cap)
    assert f"{cap:,}" in body["detail"] and parameter in body["detail"]
    assert client.get("/v1/chain").json()["latest_block"] == blocks  # nothing written


def test_values_within_the_caps_train(client: TestClient) -> None:
    dataset = upload(client, "x1,x2,y\n1,2,0\n2,3,1\n3,4,0\n4,5,1\n5,5,1\n").json()
    response = train(
        client,
        dataset["content_hash"],
        algorithm="random_forest_regressor",
        params={"n_estimators": 3, "max_depth": 100},
    )
    assert response.status_code == 201, response.text


# --------------------------------------------------------------------------- a real server


def _children(pid: int) -> set[int]:
    """The live child processes of ``pid`` (Linux /proc)."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found.update(int(child) for child in text)
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
def test_a_runaway_training_is_stopped_and_the_server_keeps_answering(tmp_path: Path) -> None:
    env = {"PROVENANCE_TRAINING_TIME_LIMIT": "3", "PROVENANCE_TRAINING_WORKERS": "1"}
    with ServiceProcess(tmp_path / "data", env=env) as server, server.client() as api:
        dataset = api.post("/v1/datasets", files={"file": ("big.csv", BIG_CSV)}).json()
        answers: dict[str, httpx.Response] = {}

        def runaway() -> None:
            answers["train"] = api.post(
                "/v1/models", json={**RUNAWAY, "dataset": dataset["content_hash"]}
            )

        started = time.monotonic()
        thread = threading.Thread(target=runaway)
        thread.start()
        time.sleep(1.0)
        while thread.is_alive():
            health = httpx.get(f"{server.url}/healthz", timeout=2)  # answers at once meanwhile
            assert health.status_code == 200
            time.sleep(0.2)
        thread.join()
        assert time.monotonic() - started < 30
        response = answers["train"]
        assert response.status_code == 422, response.text
        body = response.json()
        assert body["type"].endswith(":training-limit")
        assert body["limit"] == "training_time_limit"
        # The next training is served by a fresh worker.
        small = api.post(
            "/v1/models",
            json={"dataset": dataset["content_hash"], "algorithm": "ridge", "target": "y"},
        )
        assert small.status_code == 201, small.text


@pytest.mark.slow
def test_sigterm_stops_the_server_within_10_s_during_a_training(tmp_path: Path) -> None:
    env = {"PROVENANCE_TRAINING_TIME_LIMIT": "600", "PROVENANCE_TRAINING_WORKERS": "1"}
    server = ServiceProcess(tmp_path / "data", env=env)
    try:
        with server.client() as api:
            dataset = api.post("/v1/datasets", files={"file": ("big.csv", BIG_CSV)}).json()
            answers: dict[str, Any] = {}

            def runaway() -> None:
                try:
                    answers["train"] = api.post(
                        "/v1/models", json={**RUNAWAY, "dataset": dataset["content_hash"]}
                    )
                except httpx.HTTPError as exc:
                    answers["train"] = exc

            thread = threading.Thread(target=runaway, daemon=True)
            thread.start()
            deadline = time.monotonic() + 60
            workers: set[int] = set()
            while not workers:  # the training process is running the job
                assert time.monotonic() < deadline
                workers = _children(server.pid)
                time.sleep(0.2)
            time.sleep(2.0)
            assert thread.is_alive(), answers
            stopping = time.monotonic()
            code = server.stop(grace=30)
            took = time.monotonic() - stopping
            assert took < 10, f"provenance serve took {took:.1f} s to stop"
            assert code in (0, -15), server.log_tail()  # uvicorn re-raises the signal it caught
            deadline = time.monotonic() + 10
            while any(_alive(pid) for pid in workers):
                assert time.monotonic() < deadline, "a training process outlived the server"
                time.sleep(0.1)
            thread.join(timeout=10)
            answer = answers.get("train")
            assert isinstance(answer, httpx.Response), answer  # answered before it stopped
            assert answer.status_code == 503, answer.text
            assert answer.json()["type"].endswith(":training-interrupted")
    finally:
        server.stop(kill=True)


# --------------------------------------------------------------------------- lineage


def _split_test_rows(rows: int, test_size: float, seed: int) -> set[int]:
    """The rows ml.training holds out (the same call it makes, on row numbers)."""
    _, test = train_test_split(np.arange(rows), test_size=test_size, random_state=seed)
    return set(test.tolist())


def test_a_model_file_from_another_training_is_a_conflict_not_its_lineage(
    client: TestClient,
) -> None:
    rows = [(i, i * 7 % 13, i * 3 + i % 5) for i in range(40)]
    held_out = _split_test_rows(len(rows), 0.25, 7)
    first_csv = "x1,x2,y\n" + "".join(f"{a},{b},{c}\n" for a, b, c in rows)
    other_csv = "x1,x2,y\n" + "".join(
        f"{a},{b},{c + 1000 if i in held_out else c}\n" for i, (a, b, c) in enumerate(rows)
    )
    first = upload(client, first_csv, name="first").json()["content_hash"]
    other = upload(client, other_csv, name="other").json()["content_hash"]
    request = {"target": "y", "test_size": 0.25, "seed": 7}

    created = train(client, first, **request)
    assert created.status_code == 201, created.text
    model = created.json()

    again = train(client, first, **request)  # the identical request: the same record
    assert again.status_code == 200, again.text
    assert again.json()["model_hash"] == model["model_hash"]

    conflict = train(client, other, **request)  # other rows, only in the test split
    body = assert_problem(conflict, 409, "trained-from-other-inputs")
    assert model["model_hash"] in body["detail"]
    assert body["registered"]["datasets"] == [first]
    assert body["registered"]["seed"] == 7
    assert body["registered"]["metrics"] == model["metadata"]["metrics"]
    assert "another seed or test_size" in body["detail"]
    # The second dataset was never linked to the model.
    lineage = client.get(f"/v1/lineage/{other}", params={"direction": "down"}).json()
    assert model["model_hash"] not in {node["id"] for node in lineage["nodes"]}

    distinct = train(client, other, **{**request, "seed": 8})  # as the problem says
    assert distinct.status_code == 201, distinct.text
    assert distinct.json()["datasets"] == [other]
