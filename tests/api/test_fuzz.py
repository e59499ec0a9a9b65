"""Schemathesis against the service's own OpenAPI document: whatever a client sends, no 5xx, and
every answer (problem+json for every error) has a status code, content type and body that the
document declares for that operation.

This is the bounded form of ``python -m bench.fuzz`` (the full run of issue 11), run by the same
engine as ``st run``: the app runs in process (ASGI) on a fresh data directory seeded with one
record of every kind (``tests/api/_seed.py``), the admin key goes with every request, path
parameters name the seeded records and bodies are mixed with meaningful ones
(``tests/api/_bodies.py``), so that operations are reached past their 404s and 422s.
``test_operation`` runs the examples, coverage and fuzzing phases on one operation at a time;
``test_stateful`` chains calls along the links of ``tests/api/_links.py``. Budgets are small, the
generation is deterministic (the same cases on every run), and nothing measures time.

The ``test_operation`` cases share one seeded app per test process: each writes only to records
of its own (a dataset to revoke, a key to delete) or to new ones, so their order does not matter.
"""

from __future__ import annotations

import math
import sys
import tempfile
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import find
from hypothesis import settings as hypothesis_settings
from schemathesis.config import SchemathesisConfig
from schemathesis.schemas import BaseSchema

from api.app import create_app
from api.settings import Settings
from bench.fuzz import server_errors, to_toml
from tests.api._bodies import _realistic, install_body_hooks
from tests.api._fuzzing import fuzz_config, run_findings
from tests.api._links import LINKS, with_links
from tests.api._seed import Seeded, seed
from tests.api.conftest import admin_key

EXAMPLES_PER_OPERATION = 8  # per phase; the coverage phase adds its own boundary cases
SCENARIOS = 20
STEPS_PER_SCENARIO = 8


def _document() -> dict[str, Any]:
    """The app's OpenAPI document; building it needs a data directory but no service."""
    with tempfile.TemporaryDirectory(prefix="openapi-") as tmp:
        return create_app(Settings(data_dir=Path(tmp) / "data")).openapi()


OPERATIONS = sorted(
    f"{method.upper()} {path}" for path, item in _document()["paths"].items() for method in item
)


class Seeding:
    """A seeded data directory: its settings, records, OpenAPI document and admin key header."""

    def __init__(
        self, settings: Settings, seeded: Seeded, openapi: dict[str, Any], headers: dict
    ) -> None:
        self.settings, self.seeded, self.openapi, self.headers = settings, seeded, openapi, headers

    def schema(self, *, stateful: bool) -> BaseSchema:
        """The document (with links) loaded for one part of a run, bound to a new app on the
        seeded data directory (a restart: an app object serves one lifespan)."""
        config = fuzz_config(
            self.seeded,
            headers=self.headers,
            stateful=stateful,
            max_examples=SCENARIOS if stateful else EXAMPLES_PER_OPERATION,
            max_steps=STEPS_PER_SCENARIO,
            shrink=False,  # a failure is reported as found: the test stays bounded
        )
        schema = schemathesis.openapi.from_dict(
            with_links(self.openapi), config=SchemathesisConfig.from_dict(config)
        )
        schema.app = create_app(self.settings)
        install_body_hooks(schema.hook, self.seeded)
        return schema


def _seeding(data_dir: Path) -> Seeding:
    """An app on a fresh data directory, seeded through its own API with the admin key."""
    settings = Settings(data_dir=data_dir, anchor_interval=3600, anchor_batch_size=10_000)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        headers = {"Authorization": f"Bearer {admin_key(data_dir)}"}  # written on first start
        client.headers.update(headers)
        seeded = seed(client)
        openapi = client.get("/openapi.json").json()
    # The service has stopped; schemathesis starts a new app's lifespan on its first request,
    # and its pytest plugin ends it after each test.
    return Seeding(settings, seeded, openapi, headers)


@pytest.fixture(scope="module")
def seeding(tmp_path_factory: pytest.TempPathFactory) -> Seeding:
    return _seeding(tmp_path_factory.mktemp("fuzz") / "data")


@pytest.mark.parametrize("label", OPERATIONS)
def test_operation(label: str, seeding: Seeding) -> None:
    """Examples, coverage and fuzzing: no 5xx, and every answer as declared."""
    schema = seeding.schema(stateful=False)
    # `exclude`, not `include`: includes are OR-ed with the config's per-operation entries.
    found, cases = run_findings(schema.exclude(lambda ctx: ctx.operation.label != label))
    assert not found, "\n\n".join(found)
    assert cases > 0, f"nothing was generated for {label}"


def test_stateful(tmp_path: Path) -> None:
    """Calls chained along links (register, train, predict, verify, revoke, ...), on an app of
    its own: it may revoke any record it meets, seeded ones included."""
    found, cases = run_findings(_seeding(tmp_path / "data").schema(stateful=True))
    assert not found, "\n\n".join(found)
    assert cases > 0, "the stateful phase ran no scenario"


def test_the_seeded_values_and_links_still_name_operations(seeding: Seeding) -> None:
    """The tests above would pass vacuously if the seeded values or links named operations
    the document no longer has (a renamed path, say)."""
    for label in seeding.seeded.parameters():
        assert label in OPERATIONS, f"seeded values for {label}, which the document lacks"
    for method, path in LINKS:
        assert f"{method.upper()} {path}" in OPERATIONS, f"links from {method} {path}"


def test_the_full_runs_configuration_is_what_st_run_reads(seeding: Seeding) -> None:
    """``bench.fuzz`` hands ``st run`` these documents as TOML files."""
    for stateful in (False, True):
        document = fuzz_config(
            seeding.seeded, headers=seeding.headers, stateful=stateful, max_examples=5,
            max_steps=3, seed=1, checks=None,
        )  # fmt: skip
        text = to_toml(document)
        assert tomllib.loads(text) == document
        SchemathesisConfig.from_str(text)  # raises on anything `st run` would refuse


def test_the_fuzzed_bodies_carry_huge_integers_and_extremes(seeding: Seeding) -> None:
    """Issue 19: no 500 for any number a client can send. The meaningful bodies the fuzzer
    mixes in reach predict rows, hyperparameters, cleaning steps, test_size and seed with
    integers beyond float64, the largest finite floats, minus zero and denormals."""
    strategies = _realistic(seeding.seeded)
    beyond = int(sys.float_info.max) + 1

    def has(strategy: Any, found: Callable[[Any], bool]) -> None:
        find(strategy, found, settings=hypothesis_settings(max_examples=2_000, database=None))

    def numbers(document: Any) -> list[Any]:
        if isinstance(document, dict):
            return [n for value in document.values() for n in numbers(value)]
        if isinstance(document, list):
            return [n for value in document for n in numbers(value)]
        return [document] if isinstance(document, int | float) else []

    predict = strategies["POST /v1/models/{model_hash}/predict"]
    derive = strategies["POST /v1/datasets/{content_hash}/derive"]
    training = strategies["POST /v1/models"]
    has(predict, lambda body: any(abs(n) >= beyond for n in numbers(body)))
    has(predict, lambda body: any(n == 0 and math.copysign(1, n) < 0 for n in numbers(body)))
    has(derive, lambda body: any(s.get("factor") == 10**399 for s in body["steps"]))
    has(training, lambda body: any(abs(n) >= beyond for n in numbers(body["params"])))
    has(training, lambda body: body["seed"] == 5e-324)
    has(training, lambda body: body["test_size"] == sys.float_info.max)


def test_the_full_run_names_the_cause_of_each_server_error() -> None:
    traceback = (
        "ERROR:provenance.api:unhandled error\nTraceback (most recent call last):\n"
        '  File "/srv/api/routes/lineage.py", line 28, in get_lineage\n    f(x)\n'
        '  File "/venv/site-packages/lib.py", line 9, in f\n    raise x\n'
        "KeyError: 'tainted'\n"
    )
    log = f"INFO: started\n{traceback}INFO: 500 Internal Server Error\n{traceback}"
    cause = (
        "KeyError: 'tainted'\n      at File \"/srv/api/routes/lineage.py\", line 28, in get_lineage"
    )
    assert server_errors(log) == {cause: 2}
