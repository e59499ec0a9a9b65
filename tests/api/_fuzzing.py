"""How this project runs schemathesis: the configuration, and the findings of a run.

Shared by the bounded run in the suite (``tests/api/test_fuzz.py``, in process) and the full
run (``python -m bench.fuzz``, against a real server), so that the two differ only in budget.

A run has two parts, because schemathesis' fixed parameter values apply to every phase, links
included: the *operation* part (examples, coverage, fuzzing) pins path parameters to the seeded
records (``Seeded.parameters``) so that each operation is reached past its 404; the *stateful*
part pins nothing and follows only the links of ``tests/api/_links.py`` (inferred links are
off: the ones schemathesis infers here join a list of API keys to their revocation, which would
let a run revoke the very key it authenticates with).
"""

from __future__ import annotations

from typing import Any

from schemathesis.engine import Status, events, from_schema
from schemathesis.schemas import BaseSchema

from tests.api._bodies import BODY_OPERATIONS
from tests.api._seed import Seeded

__all__ = ["ACCEPTANCE_CHECKS", "fuzz_config", "run_findings"]

# What issue 11 accepts: no 5xx, and every answer is one the OpenAPI document declares.
ACCEPTANCE_CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
)
OPERATION_PHASES = ("examples", "coverage", "fuzzing")
BODY_BUDGET = 3  # operations with meaningful bodies get this many times the examples


def fuzz_config(
    seeded: Seeded,
    *,
    headers: dict[str, str],
    stateful: bool,
    max_examples: int,
    max_steps: int,
    seed: int | None = None,
    checks: tuple[str, ...] | None = ACCEPTANCE_CHECKS,
    shrink: bool = True,
) -> dict[str, Any]:
    """A ``schemathesis.toml`` document as a dict, for the operation part or (``stateful``) the
    stateful part of a run. ``SchemathesisConfig.from_dict`` reads it; ``bench.fuzz`` writes it
    out for ``st run``. ``checks=None`` runs every check schemathesis has. Without ``seed``
    generation is derandomised (the same cases on every run, but Hypothesis stops early on the
    stateful part); with one, it is random from that seed, and reproducible with it. Without
    ``shrink`` a failing case is reported as found (shrinking one can take minutes)."""
    operations: dict[str, dict[str, Any]] = {}
    if not stateful:
        for label, values in seeded.parameters().items():
            operations.setdefault(label, {"include-name": label})["parameters"] = values
        for label in BODY_OPERATIONS:
            operations.setdefault(label, {"include-name": label})["generation"] = {
                "max-examples": max_examples * BODY_BUDGET
            }
    document: dict[str, Any] = {
        "cache": {"enabled": False},  # no crash cache under the working tree: every run alike
        "headers": headers,
        "generation": {
            "mode": "all",
            "max-examples": max_examples,
            "deterministic": seed is None,
            "no-shrink": not shrink,
            "database": "none",
        },
        "checks": (
            {"enabled": True}
            if checks is None
            else {"enabled": False, **{name: {"enabled": True} for name in checks}}
        ),
        "phases": {
            **{phase: {"enabled": not stateful} for phase in OPERATION_PHASES},
            "stateful": {
                "enabled": stateful,
                "max-steps": max_steps,
                "inference": {"algorithms": []},
            },
        },
        "operations": list(operations.values()),
    }
    if seed is not None:
        document["seed"] = seed
    return document


def run_findings(schema: BaseSchema) -> tuple[list[str], int]:
    """Run ``schema``'s enabled phases with the engine ``st run`` uses; returns every failed
    check and engine error (each with a curl command to reproduce it), any 401 to a request
    that carried the admin key (the run lost it, so the rest proved nothing; schemathesis' own
    requests without or with a wrong key are expected to get 401), and the cases run."""
    found: list[str] = []
    cases = 0
    key = (schema.config.headers or {}).get("Authorization")
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            cases += len(event.recorder.cases)
            refused = [
                event.recorder.cases[case_id].value
                for case_id, interaction in event.recorder.interactions.items()
                if interaction.response is not None
                and interaction.response.status_code == 401
                and _sent_authorization(interaction.request.headers) == key
            ]
            if refused:  # a 401 to the admin key itself: the run lost it
                first = f"{refused[0].method} {refused[0].formatted_path}"
                found.append(f"[{event.phase.value}] 401 after {first}: admin key revoked?")
            for checks in event.recorder.checks.values():
                for check in checks:
                    if check.status == Status.FAILURE and check.failure_info is not None:
                        failure = check.failure_info.failure
                        found.append(
                            f"[{event.phase.value}] {failure.operation or event.recorder.label}: "
                            f"{failure.title}\n{failure.message}\n"
                            f"{check.failure_info.code_sample}"
                        )
        elif isinstance(event, events.NonFatalError):
            found.append(f"[{event.phase}] {event.label}: {event.info.title}\n{event.info}")
        elif isinstance(event, events.FatalError):
            found.append(f"fatal: {event.exception!r}")
    return found, cases


def _sent_authorization(headers: Any) -> str | None:
    """The Authorization header a recorded request carried (values may be lists)."""
    for name, value in dict(headers).items():
        if name.lower() == "authorization":
            return value[0] if isinstance(value, list) else value
    return None
