"""Schemathesis against the service's own OpenAPI schema, over HTTP to a real server: whatever a
client sends, no 5xx, and every response matches what the schema declares (problem+json for
every error). Each operation gets a bounded number of generated requests."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from api.app import create_app
from api.devserver import ServiceProcess
from api.settings import Settings

EXAMPLES_PER_OPERATION = 12
# The schema is the app's own; it needs no server to read (only a scratch data directory).
SCHEMA = schemathesis.openapi.from_dict(
    create_app(Settings(data_dir=Path(tempfile.mkdtemp(prefix="schema-")))).openapi()
)
OPERATIONS = [
    result.ok() for result in SCHEMA.get_all_operations() if result.ok().path != "/rpc"
]  # JSON-RPC answers with its own error objects: see test_rpc_endpoint


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    data_dir = tmp_path_factory.mktemp("fuzz") / "data"
    env = {"PROVENANCE_ANCHOR_INTERVAL": "3600"}
    with ServiceProcess(data_dir, env=env) as server, server.client() as api:
        csv = "x1,x2,y\n1,2,3\n2,3,5\n4,1,6\n"
        api.post("/v1/datasets", files={"file": ("s.csv", csv)}).raise_for_status()
        yield server.url, server.headers


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda op: op.label)
def test_no_server_errors_and_responses_match_the_schema(operation, server):
    base_url, headers = server

    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def fuzz(case):
        response = case.call(base_url=base_url, headers=headers)
        case.validate_response(
            response,
            checks=[not_a_server_error, response_schema_conformance, content_type_conformance],
        )

    fuzz()
