"""Issue 23: attestations checked with tools nobody here wrote.

One real ``provenance serve`` (embedded chain) with OpenLineage sending to a file: a raw
dataset, a derived one, a model, an anchored batch. Then:

* the DSSE envelopes verify with ``securesystemslib`` against the served key; the statement's
  subject is ``sha256sum`` of the downloaded artifact and its dependencies the registered
  parents / training datasets; the key's binding names a registrar that holds its role;
* the model signature verifies with the ``model_signing`` command and is refused after one
  changed byte;
* the OpenLineage events (file transport) have the spec's required fields and facets, and the
  custom facet validates against its committed JSON schema;
* ``provenance verify-attestation`` against the service's ``/rpc``: valid, and a tampered
  envelope, a statement for another artifact and a key without a chain binding each fail on a
  named reason.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from eth_account import Account
from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey

from api.devserver import ServiceProcess
from ledger.attest.key import AttestationKey
from ledger.formats.receipts import ReceiptDomain

pytestmark = pytest.mark.slow

RAW = "x1,x2,y\n100,200,5000\n200,300,6000\n300,400,7000\n300,400,7000\n250,,6500\n"
ROOT = Path(__file__).resolve().parents[2]
FACET_SCHEMA = ROOT / "docs" / "openlineage" / "ProvenanceLedgerRunFacet.json"


@dataclass
class World:
    server: ServiceProcess
    api: httpx.Client
    work: Path
    raw: str
    clean: str
    model: str
    key: dict[str, Any]
    events_file: Path


def _ok(response: httpx.Response) -> Any:
    assert response.is_success, response.text
    return response.json()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    work = tmp_path_factory.mktemp("attest")
    events = work / "events.jsonl"
    config = work / "openlineage.yml"
    config.write_text(f"transport:\n  type: file\n  log_file_path: {events}\n  append: true\n")
    # /rpc serves the CLI's checks: its public-node bounds are for strangers, not this test's
    # own calls on a loaded machine.
    env = {
        "OPENLINEAGE_CONFIG": str(config),
        "PROVENANCE_RPC_EVM_TIMEOUT": "30",
        "PROVENANCE_RPC_REQUEST_TIMEOUT": "120",
    }
    server = ServiceProcess(work / "data", env=env)
    try:
        with server.client() as api:
            raw = _ok(api.post("/v1/datasets", files={"file": ("sales.csv", RAW)}))
            steps = [{"step": "drop_duplicates"}, {"step": "drop_missing"}]
            clean = _ok(
                api.post(f"/v1/datasets/{raw['content_hash']}/derive", json={"steps": steps})
            )
            model = _ok(
                api.post(
                    "/v1/models",
                    json={"dataset": clean["content_hash"], "algorithm": "linear_regression",
                          "target": "y", "test_size": 0},
                )
            )  # fmt: skip
            rows = [{"x1": 150, "x2": 250}]
            _ok(api.post(f"/v1/models/{model['model_hash']}/predict", json={"rows": rows}))
            _ok(api.post("/v1/anchor"))
            key = _ok(api.get("/v1/attestation-key"))
            yield World(
                server, api, work, raw["content_hash"], clean["content_hash"],
                model["model_hash"], key, events,
            )  # fmt: skip
    finally:
        server.stop()


def _envelopes(world: World, kind: str, record: str) -> list[dict[str, Any]]:
    response = world.api.get(f"/v1/{kind}/{record}/attestations")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/jsonl")
    assert f"{record.lower()}.intoto.jsonl" in response.headers["content-disposition"]
    return [json.loads(line) for line in response.text.splitlines() if line]


def _sha256sum(path: Path) -> str:
    """What the ``sha256sum`` command prints for ``path``."""
    return subprocess.run(
        ["sha256sum", str(path)], capture_output=True, text=True, check=True
    ).stdout.split()[0]


# --------------------------------------------------------------------------- in-toto / SLSA


@pytest.mark.parametrize("kind", ["datasets", "models"])
def test_envelopes_verify_with_securesystemslib_and_describe_the_artifact(
    world: World, kind: str
) -> None:
    record = world.clean if kind == "datasets" else world.model
    key = SSlibKey.from_crypto(
        __import__(
            "cryptography.hazmat.primitives.serialization", fromlist=["x"]
        ).load_pem_public_key(world.key["public_key_pem"].encode())
    )
    (envelope,) = _envelopes(world, kind, record)
    parsed = Envelope.from_dict(envelope)
    assert set(parsed.verify([key], 1)) == {key.keyid}  # securesystemslib's own check
    statement = json.loads(parsed.payload)
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == "https://slsa.dev/provenance/v1"

    artifact = world.work / f"artifact-{kind}"
    artifact.write_bytes(world.api.get(f"/v1/{kind}/{record}/content").content)
    (subject,) = statement["subject"]
    assert subject["digest"]["sha256"] == _sha256sum(artifact) == record[2:].lower()

    view = _ok(world.api.get(f"/v1/{kind}/{record}"))
    registered = view["parents"] if kind == "datasets" else view["datasets"]
    build = statement["predicate"]["buildDefinition"]
    assert ["0x" + d["digest"]["sha256"] for d in build["resolvedDependencies"]] == registered
    chain = subject["annotations"]["provenanceLedger"]
    assert chain["transaction"] == view["tx_hash"] and chain["block"] == view["block_number"]
    run = statement["predicate"]["runDetails"]
    assert run["builder"]["id"] == "urn:provenance-ledger:service"
    assert run["metadata"]["invocationId"] == view["tx_hash"]
    if kind == "datasets":
        assert chain["rowsRoot"] == view["rows_root"]
        assert build["externalParameters"]["transform"]["steps"][0]["step"] == "drop_duplicates"
    else:
        assert build["externalParameters"]["algorithm"] == "linear_regression"
        assert run["byproducts"][0]["digest"]["sha256"] == view["metadata_hash"][2:]


def test_a_raw_upload_has_no_attestation(world: World) -> None:
    response = world.api.get(f"/v1/datasets/{world.raw}/attestations")
    assert response.status_code == 404
    assert response.json()["type"].endswith(":no-attestation")


def test_the_key_binding_names_the_registrar(world: World) -> None:
    chain = _ok(world.api.get("/v1/chain"))
    binding = world.key["binding"]
    assert binding["registrar"] == chain["registrar"] and chain["registrar_has_role"]
    assert binding["contract"] == chain["contract_address"]
    assert binding["public_key_pem"] == world.key["public_key_pem"]
    again = _ok(world.api.get("/v1/attestation-key"))
    assert again == world.key  # signed once, kept


# --------------------------------------------------------------------------- model_signing


def test_the_model_signature_verifies_with_model_signing_and_refuses_a_changed_byte(
    world: World, tmp_path: Path
) -> None:
    model = tmp_path / "model.skops"
    model.write_bytes(world.api.get(f"/v1/models/{world.model}/content").content)
    signature = tmp_path / "model.sig"
    signature.write_bytes(world.api.get(f"/v1/models/{world.model}/signature").content)
    public = tmp_path / "key.pem"
    public.write_text(world.key["public_key_pem"])
    tool = shutil.which("model_signing", path=str(Path(sys.executable).parent))
    assert tool is not None

    def verify() -> subprocess.CompletedProcess[str]:
        command = [tool, "verify", "key", "--signature", str(signature),
                   "--public_key", str(public), str(model)]  # fmt: skip
        return subprocess.run(command, capture_output=True, text=True, timeout=120)

    accepted = verify()
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0x01
    model.write_bytes(bytes(data))
    refused = verify()
    assert refused.returncode != 0, refused.stdout


# --------------------------------------------------------------------------- OpenLineage

# The run event's required structure, from the OpenLineage 2-0-2 spec (RunEvent, Run, Job,
# Dataset, and every facet's _producer and _schemaURL); the client does not ship the spec file.
RUN_EVENT_SCHEMA = {
    "type": "object",
    "required": ["eventTime", "producer", "schemaURL", "run", "job", "eventType"],
    "properties": {
        "eventTime": {"type": "string", "format": "date-time"},
        "producer": {"type": "string", "format": "uri"},
        "schemaURL": {"type": "string", "pattern": "^https://openlineage.io/spec/"},
        "eventType": {"enum": ["START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER"]},
        "run": {
            "type": "object",
            "required": ["runId"],
            "properties": {
                "runId": {"type": "string", "format": "uuid"},
                "facets": {"type": "object", "additionalProperties": {"$ref": "#/$defs/facet"}},
            },
        },
        "job": {
            "type": "object",
            "required": ["namespace", "name"],
            "properties": {"namespace": {"type": "string"}, "name": {"type": "string"}},
        },
        "inputs": {"type": "array", "items": {"$ref": "#/$defs/dataset"}},
        "outputs": {"type": "array", "items": {"$ref": "#/$defs/dataset"}},
    },
    "$defs": {
        "facet": {
            "type": "object",
            "required": ["_producer", "_schemaURL"],
            "properties": {"_producer": {"type": "string"}, "_schemaURL": {"type": "string"}},
        },
        "dataset": {
            "type": "object",
            "required": ["namespace", "name"],
            "properties": {
                "namespace": {"type": "string"},
                "name": {"type": "string"},
                "facets": {"type": "object", "additionalProperties": {"$ref": "#/$defs/facet"}},
            },
        },
    },
}


def _events(world: World, expected: int) -> list[dict[str, Any]]:
    import time

    deadline = time.monotonic() + 30
    while True:
        lines = world.events_file.read_text().splitlines() if world.events_file.exists() else []
        if len(lines) >= expected or time.monotonic() > deadline:
            return [json.loads(line) for line in lines]
        time.sleep(0.1)


def test_openlineage_events_describe_derivation_training_and_anchoring(world: World) -> None:
    events = _events(world, 3)
    by_job = {e["job"]["name"]: e for e in events}
    assert set(by_job) >= {"derive", "train", "anchor"}, [e["job"] for e in events]
    formats = jsonschema.FormatChecker()
    checker = jsonschema.Draft202012Validator(RUN_EVENT_SCHEMA, format_checker=formats)
    # The custom facet's own fields as its committed schema states them; its other part is the
    # spec's RunFacet (_producer, _schemaURL), checked with the event.
    facet = json.loads(FACET_SCHEMA.read_text())["$defs"]["ProvenanceLedgerRunFacet"]
    own_fields = facet["allOf"][1]
    for event in events:
        checker.validate(event)
        chain = event["run"]["facets"]["provenanceLedger"]
        jsonschema.validate(chain, own_fields)
        assert chain["_schemaURL"].endswith(
            "/ProvenanceLedgerRunFacet.json#/$defs/ProvenanceLedgerRunFacet"
        )
        assert event["job"]["namespace"] == "provenance-ledger"
    derive, train = by_job["derive"], by_job["train"]
    assert [d["name"] for d in derive["inputs"]] == [world.raw]
    assert [d["name"] for d in derive["outputs"]] == [world.clean]
    output = derive["outputs"][0]["facets"]
    assert output["version"]["datasetVersion"] == world.clean[2:]
    assert [f["name"] for f in output["schema"]["fields"]] == ["x1", "x2", "y"]
    assert "dataSource" in output
    assert [d["name"] for d in train["inputs"]] == [world.clean]
    assert [d["name"] for d in train["outputs"]] == [world.model]


# --------------------------------------------------------------------------- the CLI's check


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api", *args], capture_output=True, text=True, timeout=120, cwd=ROOT
    )


def _attest(world: World, record: str, output: Path) -> None:
    done = _cli("attest", record, "-o", str(output), "--url", world.server.url,
                "--api-key", world.server.headers["Authorization"].split()[1])  # fmt: skip
    assert done.returncode == 0, done.stderr


def _verify(world: World, attestations: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    contract = _ok(world.api.get("/v1/chain"))["contract_address"]
    done = _cli("verify-attestation", str(attestations), "--rpc-url", f"{world.server.url}/rpc",
                "--contract", contract, "--json", *extra)  # fmt: skip
    return done.returncode, json.loads(done.stdout) if done.stdout.strip() else {"err": done.stderr}


def _failed(report: dict[str, Any]) -> list[str]:
    return [c["name"] for c in report["checks"] if c["ok"] is False]


def test_the_cli_checks_attestations_against_a_node(world: World, tmp_path: Path) -> None:
    model_file = tmp_path / "model.intoto.jsonl"
    _attest(world, world.model, model_file)
    artifact = tmp_path / "model.bin"
    artifact.write_bytes(world.api.get(f"/v1/models/{world.model}/content").content)
    code, report = _verify(world, model_file, "--artifact", str(artifact))
    assert code == 0 and report["verdict"] == "valid", report
    assert {c["name"] for c in report["checks"]} == {
        "key_binding", "signature", "subject", "registered", "dependencies"
    }  # fmt: skip

    dataset_file = tmp_path / "clean.intoto.jsonl"
    _attest(world, world.clean, dataset_file)
    code, report = _verify(world, dataset_file)
    assert code == 0 and report["verdict"] == "valid", report

    # 1. A tampered envelope: the payload says another dependency.
    envelope = json.loads(model_file.read_text())
    statement = json.loads(base64.b64decode(envelope["payload"]))
    statement["predicate"]["buildDefinition"]["resolvedDependencies"][0]["digest"]["sha256"] = (
        "00" * 32
    )
    envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    tampered = tmp_path / "tampered.intoto.jsonl"
    tampered.write_text(json.dumps(envelope) + "\n")
    shutil.copy(tmp_path / "model.key.json", tmp_path / "tampered.key.json")
    code, report = _verify(world, tampered)
    assert code == 1 and _failed(report) == ["signature"], report

    # 2. A statement for another artifact than the file at hand.
    other = tmp_path / "other.bin"
    other.write_bytes(RAW.encode())
    code, report = _verify(world, model_file, "--artifact", str(other))
    assert code == 1 and _failed(report) == ["subject"], report

    # 3. A key bound by an account that holds no role on chain.
    chain = _ok(world.api.get("/v1/chain"))
    stranger = Account.create()
    rogue = AttestationKey.load_or_create(tmp_path / "rogue.pem")
    binding = rogue.bind(stranger, ReceiptDomain(chain["chain_id"], chain["contract_address"]), 1)
    (tmp_path / "rogue.key.json").write_text(json.dumps({"binding": binding.to_json()}))
    code, report = _verify(world, model_file, "--key-file", str(tmp_path / "rogue.key.json"))
    assert code == 1 and _failed(report) == ["key_binding"], report
    assert "holds no REGISTRAR_ROLE" in report["checks"][0]["detail"]


def test_the_cli_says_when_it_cannot_read_its_input(world: World, tmp_path: Path) -> None:
    broken = tmp_path / "broken.intoto.jsonl"
    broken.write_text("{not json\n")
    code, report = _verify(world, broken)
    assert code == 4, report
