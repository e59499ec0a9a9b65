"""The full schemathesis run of issue 11: ``python -m bench.fuzz`` (2 to 4 minutes on 2 cores
with the defaults; ``--max-examples 10 --scenarios 20`` for a quick look).

It starts the real service (``provenance serve``) on 127.0.0.1 with a fresh data directory,
seeds it through the API with one record of every kind (``tests/api/_seed.py``), and runs
``st run`` twice in this process over every operation of the service's own OpenAPI document
(links added, ``tests/api/_links.py``), with the admin key and the acceptance checks (no 5xx;
status code, content type and body as declared): once with the examples, coverage and fuzzing
phases, path parameters naming the seeded records, and once with the stateful phase, which
follows links (see ``tests/api/_fuzzing.py`` for why these are two runs). Bodies are mixed with
meaningful ones (``tests/api/_bodies.py``) so that operations are reached past their 422s;
``--schema-bodies`` turns that off, to show how much looser the schema is than the API.
``--checks all`` adds every other schemathesis check.

It prints schemathesis' own reports, then a summary: the answers per operation, the operations
whose 2xx answers declare no body schema (the schema check proves nothing for them) and, from
the server's log, the cause of every traceback (a 500 logs about two). The exit status is
schemathesis' (0: nothing found), the worse of the two runs.

This is not one of ``python -m bench``'s benchmarks: it measures nothing. It lives here because,
like them, it drives a real server from outside and is run by hand, not by the test suite; the
bounded form that the suite runs is ``tests/api/test_fuzz.py``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import schemathesis
from schemathesis.cli import schemathesis as schemathesis_cli

from api.devserver import ServiceProcess
from tests.api._bodies import install_body_hooks
from tests.api._fuzzing import ACCEPTANCE_CHECKS, fuzz_config
from tests.api._links import with_links
from tests.api._seed import seed

__all__ = ["main", "to_toml", "untyped_operations"]

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # JSON string escapes are TOML's too
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key)


def to_toml(document: dict[str, Any]) -> str:
    """``document`` as TOML, one top-level key per line (inline tables and arrays below it).

    The standard library reads TOML but does not write it; this covers the config's types."""
    return "".join(f"{_toml_key(key)} = {_toml_value(value)}\n" for key, value in document.items())


def untyped_operations(openapi: dict[str, Any]) -> list[str]:
    """Operations with a 2xx answer whose JSON body schema says nothing about its fields (or
    that declare no body at all): a schema check cannot fail for them."""
    found = []
    for path, item in openapi["paths"].items():
        for method, operation in item.items():
            for status, response in operation.get("responses", {}).items():
                if not status.startswith("2"):
                    continue
                content = response.get("content") or {}
                schemas = [c.get("schema") or {} for c in content.values()]
                if not schemas or all(_says_nothing(s) for s in schemas):
                    media = ", ".join(content) or "no content declared"
                    found.append(f"{method.upper()} {path} ({status}: {media})")
    return found


def _says_nothing(schema: dict[str, Any]) -> bool:
    return "$ref" not in schema and not schema.get("properties") and not schema.get("items")


def server_errors(log: str) -> Counter[str]:
    """The exception at the end of every traceback in a server log, with the project's last
    frame (not a library's), counted."""
    causes: Counter[str] = Counter()
    for block in log.split("Traceback (most recent call last):")[1:]:
        lines = [line for line in block.splitlines() if line.strip()]
        frames = [line.strip() for line in lines if line.lstrip().startswith("File ")]
        last_error = next(
            (line for line in lines if re.match(r"^[A-Za-z_][\w.]*(Error|Exception)\b", line)),
            lines[-1] if lines else "?",
        )
        ours = [frame for frame in frames if "site-packages" not in frame]  # the project's
        where = (ours or frames or ["?"])[-1]
        causes[f"{last_error.strip()[:300]}\n      at {where}"] += 1
    return causes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fuzz", description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)  # fmt: skip
    parser.add_argument("--max-examples", type=int, default=100, help="per operation and phase")
    parser.add_argument("--scenarios", type=int, default=200, help="stateful scenarios")
    parser.add_argument("--max-steps", type=int, default=20, help="per stateful scenario")
    parser.add_argument(
        "--seed",
        type=int,
        help="random generation from this seed (reproducible with it); by default the first "
        "run is derandomised, like the suite's, and the stateful one uses seed 1",
    )
    parser.add_argument("--no-stateful", action="store_true", help="skip the stateful part")
    parser.add_argument(
        "--checks", default=",".join(ACCEPTANCE_CHECKS), help="comma-separated, or 'all'"
    )
    parser.add_argument("--workers", default="1", help="schemathesis workers (or 'auto')")
    parser.add_argument(
        "--schema-bodies",
        action="store_true",
        help="send only bodies generated from the schema (shows how loose the schema is)",
    )
    parser.add_argument("--report-dir", type=Path, help="keep the JSON and NDJSON reports here")
    parser.add_argument("--tmp", type=Path, help="where the data directory goes")
    args = parser.parse_args(argv)
    checks = None if args.checks == "all" else tuple(c for c in args.checks.split(",") if c)

    with tempfile.TemporaryDirectory(prefix="provenance-fuzz-", dir=args.tmp) as tmp:
        work = Path(tmp)
        report_dir = args.report_dir or work / "reports"
        with ServiceProcess(work / "data") as server:
            with server.client() as api:
                seeded = seed(api)
                openapi = api.get("/openapi.json").raise_for_status().json()
            print(f"seeded {work / 'data'}:\n  {seeded}\n", flush=True)
            schema_path = work / "openapi.json"  # the app's document, with links added
            schema_path.write_text(json.dumps(with_links(openapi)))
            if not args.schema_bodies:
                install_body_hooks(schemathesis.hook, seeded)
            statuses = []
            for stateful in (False, True)[: 1 if args.no_stateful else 2]:
                config = fuzz_config(
                    seeded,
                    headers=server.headers,
                    stateful=stateful,
                    max_examples=args.scenarios if stateful else args.max_examples,
                    max_steps=args.max_steps,
                    seed=args.seed if args.seed is not None or not stateful else 1,
                    checks=checks,
                )
                part = "stateful" if stateful else "operations"
                print(f"\n# Part {part}: " + (
                    "calls chained along links" if stateful
                    else "examples, coverage and fuzzing, per operation"
                ), flush=True)  # fmt: skip
                config_path = work / f"schemathesis-{part}.toml"
                config_path.write_text(to_toml(config))
                statuses.append(
                    _run_cli(config_path, schema_path, server.url, args.workers, report_dir / part)
                )
            log = server.log_path.read_text(errors="replace")
            alive = _alive(server.url)
        tallies = {part.name: _tally(part) for part in sorted(report_dir.iterdir())}
    _summary(openapi, log, alive, tallies)
    return max(statuses)


def _run_cli(config: Path, schema: Path, url: str, workers: str, report_dir: Path) -> int:
    """``st run`` in this process (so that the body hooks apply); its exit status."""
    try:
        schemathesis_cli.main(
            ["--config-file", str(config), "run", str(schema), "--url", url,
             "--workers", workers, "--request-timeout", "120",
             "--report", "json,ndjson", "--report-dir", str(report_dir)],
            prog_name="st",
            standalone_mode=False,
        )  # fmt: skip
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    return 0


def _tally(report_dir: Path) -> dict[str, Counter[int]]:
    """Status codes per operation, from a run's NDJSON report."""
    tally: dict[str, Counter[int]] = {}
    for path in report_dir.glob("*.ndjson"):
        for line in path.read_text().splitlines():
            finished = json.loads(line).get("ScenarioFinished")
            if finished is None:
                continue
            recorder = finished["recorder"]
            for case_id, interaction in recorder.get("interactions", {}).items():
                case = recorder["cases"][case_id]["value"]
                label = f"{case['method']} {case['path']}"
                status = (interaction.get("response") or {}).get("status_code", 0)
                tally.setdefault(label, Counter())[status] += 1
    return tally


def _alive(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=30).status_code == 200
    except httpx.TransportError:
        return False


def _summary(
    openapi: dict[str, Any], log: str, alive: bool, tallies: dict[str, dict[str, Counter[int]]]
) -> None:
    print("\n# Summary\n")
    declared = {f"{m.upper()} {p}" for p, item in openapi["paths"].items() for m in item}
    for part, tally in tallies.items():
        print(f"Answers per operation ({part}; 0 = no answer):")
        for label in sorted(tally):
            if label in declared:
                codes = ", ".join(f"{code}: {n}" for code, n in sorted(tally[label].items()))
                print(f"  {label}  {codes}")
        lost = sum(t.get(401, 0) for t in tally.values())
        if lost:
            print(f"  !! {lost} answers were 401: the run revoked its own admin key")
        print()
    untyped = untyped_operations(openapi)
    print(f"Operations whose 2xx answer declares no body schema ({len(untyped)}):")
    for line in untyped:
        print(f"  - {line}")
    causes = server_errors(log)
    print(f"\nServer tracebacks in the log ({sum(causes.values())}):")
    for cause, count in causes.most_common():
        print(f"  - {count} x {cause}")
    print(f"\nThe server {'still answers /healthz' if alive else 'NO LONGER ANSWERS /healthz'}.")


if __name__ == "__main__":
    sys.exit(main())
