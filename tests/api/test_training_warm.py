"""``PROVENANCE_TRAINING_WARM``: whether a service starts its training processes and loads
its model libraries with it.

Warm (the default), the first training does not wait for a process to import scikit-learn, nor
the first prediction for the service to import it; not warm, a service that never trains (a
replica that only serves predictions, most services the test suite starts) holds no training
process, one that never predicts never loads scikit-learn, and the first training or prediction
does what it needs. Whether scikit-learn is loaded is read from the process's memory map.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from api.devserver import ServiceProcess
from api.settings import Settings

CSV = "x1,x2,y\n1,2,3\n2,3,5\n3,5,8\n4,4,8\n"
TIMEOUT = 60.0


def _training_processes(pid: int) -> list[int]:
    """The processes ``pid`` started that run ``ml._worker`` (read from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        if parent == pid and b"ml._worker" in cmdline:
            found.append(int(stat.parent.name))
    return found


def _loaded_scikit_learn(pid: int) -> bool:
    """Whether the process has scikit-learn's compiled modules mapped (it imported it)."""
    return "/sklearn/" in Path(f"/proc/{pid}/maps").read_text()


def _wait_for(pid: int, count: int) -> list[int]:
    deadline = time.monotonic() + TIMEOUT
    while len(found := _training_processes(pid)) != count:
        assert time.monotonic() < deadline, f"{len(found)} training processes, not {count}"
        time.sleep(0.1)
    return found


def test_warm_is_the_default() -> None:
    assert Settings.model_fields["training_warm"].default is True


def test_a_warm_service_starts_its_training_processes_with_it(tmp_path: Path) -> None:
    env = {"PROVENANCE_TRAINING_WARM": "true", "PROVENANCE_TRAINING_WORKERS": "2"}
    with ServiceProcess(tmp_path / "data", env=env) as server:
        _wait_for(server.pid, 2)  # before any training was asked for
        assert _loaded_scikit_learn(server.pid)  # before it answered, before any model


def test_a_service_not_warm_starts_one_at_its_first_training(tmp_path: Path) -> None:
    env = {"PROVENANCE_TRAINING_WARM": "false", "PROVENANCE_TRAINING_WORKERS": "2"}
    with ServiceProcess(tmp_path / "data", env=env) as server, server.client() as client:
        time.sleep(2)  # a warm pool would be starting by now
        assert _training_processes(server.pid) == []
        assert not _loaded_scikit_learn(server.pid)
        upload = client.post("/v1/datasets", files={"file": ("d.csv", CSV)})
        assert upload.status_code == 201, upload.text
        body = {"dataset": upload.json()["content_hash"], "algorithm": "linear_regression",
                "target": "y", "test_size": 0}  # fmt: skip
        trained = client.post("/v1/models", json=body)
        assert trained.status_code == 201, trained.text
        _wait_for(server.pid, 1)  # the one the training needed, kept warm for the next
        model = trained.json()["model_hash"]
        predicted = client.post(f"/v1/models/{model}/predict", json={"rows": [{"x1": 1, "x2": 2}]})
        assert predicted.status_code == 200, predicted.text
        assert predicted.json()["predictions"] == [pytest.approx(3.0)]
        assert _loaded_scikit_learn(server.pid)
