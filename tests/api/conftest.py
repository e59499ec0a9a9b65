"""Fixtures for the HTTP API: a real app on a persistent embedded chain in a temp directory."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings

SALES_CSV = "x1,x2,y\n100,200,5000\n200,300,6000\n300,400,7000\n"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", anchor_interval=3600, anchor_batch_size=10_000)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """A client holding the admin key the service created on first start."""
    with authorized_client(settings) as test_client:
        yield test_client


@contextmanager
def authorized_client(settings: Settings) -> Iterator[TestClient]:
    """A TestClient on an app for ``settings``, sending the service's admin key."""
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        test_client.headers["Authorization"] = f"Bearer {admin_key(settings.data_dir)}"
        yield test_client


def admin_key(data_dir: Path) -> str:
    """The admin API key a service writes to its data directory on first start."""
    return (data_dir / "admin.key").read_text().strip()


def upload(client: TestClient, csv: str | bytes = SALES_CSV, **form: str) -> Any:
    """POST a CSV; returns the response."""
    return client.post("/v1/datasets", files={"file": ("data.csv", csv)}, data=form)


def train(client: TestClient, dataset: str, **overrides: Any) -> Any:
    body = {"dataset": dataset, "algorithm": "linear_regression", "target": "y", "test_size": 0}
    return client.post("/v1/models", json={**body, **overrides})


def assert_problem(response: Any, status: int, type_suffix: str) -> dict[str, Any]:
    """The response is RFC 9457 problem+json with this status and type, and no stack trace."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    assert body["type"] == f"urn:provenance-ledger:problem:{type_suffix}", body
    assert "Traceback" not in response.text
    return body
