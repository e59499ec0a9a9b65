"""Verification: receipts verified per second and latency, one at a time and in bulk, through
the API, the library and the CLI, each beside its baseline measured in the same run.

One receipt at a time (anchored receipts of a registered model; every check: signature and
signer role, inclusion proof, batch, model and lineage, times, claimed blocks, artifacts where
a store is given):

* **HTTP API**: ``POST /v1/verify/receipt`` to a real ``provenance serve`` (embedded chain on
  disk), by 1 and by 4 concurrent clients; baseline: one ``eth_call`` through its ``/rpc``;
* **library, embedded**: ``ledger.verify.verify_receipt`` with one long-lived ``ChainFacts``
  on a persistent embedded chain, in steady state (the head unchanged: its record states are
  reused) and with the state read again for every verification (as when a block is added
  between any two); baseline: one ``eth_call`` (``version()``) through web3;
* **library over /rpc**: the same, reading the service's ``/rpc`` with the CLI's web3-free
  JSON-RPC reader; baseline: one ``eth_call`` there.

In bulk (receipts of one batch: 100,000 in a full run, 2,000 / 1,000 with ``--quick``):

* **library**: ``verify_receipts`` at one snapshot; baseline: pure signature recovery
  (coincurve, digests precomputed) of the same receipts;
* **HTTP API**: ``POST /v1/verify/receipts/file``, 10,000 receipts per request, of a batch the
  service issued and exported (``GET /v1/batches/{id}/receipts``);
* **CLI**: ``provenance audit FILE --rpc-url <service>/rpc`` as a process.

CLI start-up: ``provenance --help`` and ``provenance verify bundle.json --rpc-url`` as fresh
processes; baselines ``python -c pass`` and ``python -c "import web3"`` (what the old
``verify`` paid before its first request). Figures are medians over runs (min-max).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any

from bench._audit import (
    cli_seconds,
    http_bulk_seconds,
    provenance,
    recovery_rate,
    service_batch,
)
from bench._common import (
    Config,
    open_chain,
    percentile,
    scratch_dir,
)
from bench._server import service
from bench._verification_report import report
from bench.bench_receipts import load, setup_model
from ledger.chain.client import LedgerClient
from ledger.formats.merkle import StandardMerkleTree
from ledger.formats.receipt_signing import ReceiptSigner
from ledger.formats.receipts import RECEIPT_LEAF_ENCODING, Receipt, ReceiptDomain, receipt_leaf
from ledger.reading._jsonrpc import HttpTransport
from ledger.reading.chain_reader import LedgerReader
from ledger.verify import (
    Anchoring,
    BlockClaims,
    ChainFacts,
    ReceiptEvidence,
    verify_receipt,
    verify_receipts,
)

__all__ = ["anchored_receipts", "library_batch", "library_setup", "run"]

_VERSION_CALL = "0x54fd4d50"  # version()


def _timed_loop(op: Callable[[int], Any], n: int) -> dict[str, Any]:
    latencies = []
    start = time.perf_counter()
    for i in range(n):
        t0 = time.perf_counter()
        op(i)
        latencies.append(time.perf_counter() - t0)
    wall = time.perf_counter() - start
    return {
        "rate": n / wall,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p95_ms": percentile(latencies, 95) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
    }


def library_setup(
    client: LedgerClient, key: bytes, receipts: int
) -> list[tuple[Receipt, Anchoring]]:
    """Register a dataset and a model, sign ``receipts`` receipts, anchor them in one batch;
    return each receipt with its anchoring (block included, as a receipt document has it)."""
    return library_batch(client, key, receipts)[0]


def library_batch(
    client: LedgerClient, key: bytes, receipts: int
) -> tuple[list[tuple[Receipt, Anchoring]], BlockClaims]:
    """:func:`library_setup`, and the block claims an evidence bundle of any of its receipts
    would carry (where its model and dataset were registered)."""
    dataset = os.urandom(32)
    registered = client.register_dataset(
        dataset, rows_root=os.urandom(32), row_count=10, schema_hash=os.urandom(32)
    )
    model = os.urandom(32)
    trained = client.register_model(model, datasets=[dataset], metadata_hash=os.urandom(32))
    claims = BlockClaims.from_records(
        [
            {"kind": kind, "hash": "0x" + key.hex(), "block_number": tx.block_number,
             "tx_hash": tx.tx_hash}
            for kind, key, tx in (("dataset", dataset, registered), ("model", model, trained))
        ]
    )  # fmt: skip
    signer = ReceiptSigner(key, ReceiptDomain(client.chain_id(), client.address))
    signed = [
        signer.sign(model_hash=model, input_hash=os.urandom(32), output=float(i))
        for i in range(receipts)
    ]
    tree = StandardMerkleTree.of([receipt_leaf(r) for r in signed], list(RECEIPT_LEAF_ENCODING))
    tx = client.anchor_predictions(model, tree.root, len(signed))
    root = "0x" + tree.root.hex()
    anchored = [
        (
            r,
            Anchoring(
                root,
                "0x" + tree.leaf_hash_at(i).hex(),
                tuple("0x" + p.hex() for p in tree.proof(i)),
                tx.block_number,
                tx.tx_hash,
            ),
        )
        for i, r in enumerate(signed)
    ]
    return anchored, claims


def anchored_receipts(http: Any, model: str, count: int) -> list[dict[str, Any]]:
    """Predict ``count`` rows, force anchoring, and return the anchored receipt documents."""
    response = http.post(
        f"/v1/models/{model}/predict",
        json={"rows": [{"x1": i % 97, "x2": i % 13} for i in range(count)]},
    )
    response.raise_for_status()
    ids = [r["receipt_id"] for r in response.json()["receipts"]]
    http.post("/v1/anchor").raise_for_status()
    documents = [http.get(f"/v1/receipts/{i}").json() for i in ids]
    if any(d["status"] != "anchored" for d in documents):
        raise RuntimeError("receipts were not anchored by POST /v1/anchor")
    return documents


def _check_valid(report: Any) -> None:
    verdict = report["verdict"] if isinstance(report, dict) else report.verdict
    if verdict != "valid":
        raise RuntimeError(f"a receipt did not verify: {report}")


def _single(config: Config, server: Any, http: Any, local: LedgerClient, key: bytes) -> Any:
    """The one-at-a-time rows: figures by key, and the chain's length."""
    n_api, n_lib, per_client, pool = (
        config.pick(15, 60),
        config.pick(30, 200),
        config.pick(5, 15),
        100,
    )
    keys = ("api_1", "api_1_baseline", "api_4", "lib_steady", "lib_cold", "lib_baseline",
            "lib_rpc", "lib_rpc_baseline")  # fmt: skip
    figures: dict[str, list[dict[str, Any]]] = {k: [] for k in keys}
    model = setup_model(http)
    documents = anchored_receipts(http, model, pool)
    chain_info = http.get("/v1/chain").json()
    deployment = json.loads((server.data_dir / "deployment.json").read_text())
    auditor = ChainFacts(
        LedgerReader(
            HttpTransport(server.url + "/rpc", timeout=60, headers=server.headers),
            chain_info["contract_address"],
            deploy_block=deployment["block_number"],
        )
    )
    local_receipts = library_setup(local, key, pool)
    facts = ChainFacts.for_client(local, follow_roles=True)  # a long-lived verifier's

    def api_verify(i: int) -> None:
        response = http.post("/v1/verify/receipt", json={"receipt": documents[i % pool]})
        response.raise_for_status()
        _check_valid(response.json())

    def api_call(_: int) -> None:
        response = http.post(
            "/rpc",
            json={"jsonrpc": "2.0", "id": 1, "method": "eth_call",
                  "params": [{"to": chain_info["contract_address"],
                              "data": _VERSION_CALL}, "latest"]},
        )  # fmt: skip
        response.raise_for_status()

    def lib_verify(i: int) -> None:
        receipt, anchoring = local_receipts[i % pool]
        _check_valid(verify_receipt(receipt, facts, anchoring=anchoring))

    def lib_cold(i: int) -> None:
        facts.forget_state()  # as if a block had been added since the last verification
        lib_verify(i)

    def rpc_verify(i: int) -> None:
        doc = documents[i % pool]
        receipt = Receipt.from_json({k: doc[k] for k in Receipt.model_fields})
        _check_valid(verify_receipt(receipt, auditor, anchoring=Anchoring.from_json(doc)))

    for op in (api_verify, api_call, lib_verify, lib_cold, rpc_verify):  # warm-up
        op(0)
    for _ in range(config.runs):
        figures["api_1"].append(_timed_loop(api_verify, n_api))
        figures["api_1_baseline"].append(_timed_loop(api_call, n_api))
        figures["api_4"].append(
            load(server, "/v1/verify/receipt", lambda i: {"receipt": documents[i % pool]},
                 per_client, check=lambda r: 1 if r.json()["verdict"] == "valid" else 0)
        )  # fmt: skip
        figures["lib_steady"].append(_timed_loop(lib_verify, n_lib))
        figures["lib_cold"].append(_timed_loop(lib_cold, n_lib))
        figures["lib_baseline"].append(_timed_loop(lambda _: local.version(), n_lib))
        figures["lib_rpc"].append(_timed_loop(rpc_verify, n_lib))
        figures["lib_rpc_baseline"].append(_timed_loop(lambda _: auditor.reader.version(), n_lib))
    return figures, documents, model, chain_info


def _bulk(
    config: Config, work: Any, local: LedgerClient, key: bytes, bulk_server: Any, model: str | None
) -> dict[str, Any]:
    """The bulk rows: library, HTTP API and the CLI's audit, with the recovery baseline."""
    runs = config.pick(config.runs, min(config.runs, 2))
    lib_n, http_n = config.pick(2_000, 100_000), config.pick(1_000, 100_000)
    anchored = library_setup(local, key, lib_n)
    items = [ReceiptEvidence(r, a) for r, a in anchored]
    domain = ReceiptDomain(local.chain_id(), local.address)
    out: dict[str, Any] = {"lib_n": lib_n, "http_n": http_n, "lib": [], "recovery": [],
                           "http": [], "cli": []}  # fmt: skip
    with bulk_server.client(timeout=600) as http:
        bulk_model = model or setup_model(http)
        _, documents = service_batch(http, bulk_model, http_n)
        contract = http.get("/v1/chain").json()["contract_address"]
        lines = work / "batch.jsonl"
        lines.write_text("".join(json.dumps(d) + "\n" for d in documents))
        for _ in range(runs):
            start = time.perf_counter()
            reports = verify_receipts(items, ChainFacts.for_client(local))
            out["lib"].append(lib_n / (time.perf_counter() - start))
            if any(r.verdict != "valid" for r in reports):
                raise RuntimeError("a receipt of the bulk batch did not verify")
            out["recovery"].append(recovery_rate([r for r, _ in anchored], domain))
            out["http"].append(http_n / http_bulk_seconds(http, documents))
        audit = provenance("audit", lines, "--rpc-url", f"{bulk_server.url}/rpc",
                           "--contract", contract, "--json")  # fmt: skip
        out["cli"] = [http_n / s for s in cli_seconds(audit, 1)]
    return out


def _cli(config: Config, work: Any, server: Any, documents: list[dict[str, Any]]) -> Any:
    runs = config.pick(3, 5)
    with server.client() as http:
        bundle = http.get(f"/v1/receipts/{documents[0]['receipt_id']}/bundle")
        bundle.raise_for_status()
    path = work / "bundle.json"
    path.write_text(bundle.text)
    return {
        "help": cli_seconds(provenance("--help"), runs),
        "verify": cli_seconds(provenance("verify", path, "--rpc-url", f"{server.url}/rpc"), runs),
        "python": cli_seconds(["-c", "pass"], runs),
        "web3": cli_seconds(["-c", "import web3"], runs),
    }


def run(config: Config) -> list[dict[str, Any]]:
    with scratch_dir(config, "verification-") as work:  # noqa: SIM117 - work names the others
        with (
            service(config, work / "service") as server,
            server.client() as http,
            open_chain("embedded-disk", work / "library") as chain,
        ):
            account = chain.account()
            local, _ = LedgerClient.deploy(chain.backend, account)
            figures, documents, model, chain_info = _single(config, server, http, local,
                                                            account.key)  # fmt: skip
            cli = _cli(config, work, server, documents)
            if config.quick:  # the shared service: batches of 1024 hold a thousand receipts
                bulk = _bulk(config, work, local, account.key, server, model)
            else:  # a batch of 100,000 needs a service whose batches are that large
                env = {"PROVENANCE_ANCHOR_BATCH_SIZE": "200000",
                       "PROVENANCE_ANCHOR_INTERVAL": "3600"}  # fmt: skip
                with service(config, work / "bulk-service", env=env) as bulk_server:
                    bulk = _bulk(config, work, local, account.key, bulk_server, None)
            blocks = chain_info["latest_block"]
    return report(config, figures, cli, bulk, blocks)
