"""Verification: receipts verified per second and latency, through the API and the library.

Paths, each verifying anchored receipts of a registered model (every check of issue 5:
signature and signer role, inclusion proof, batch on chain, model and training data registered
and not revoked, artifacts where a store is given):

* **HTTP API**: ``POST /v1/verify/receipt`` to a real ``provenance serve`` process on loopback
  (embedded chain on disk), by 1 client and by 4 concurrent clients;
* **library, embedded**: ``ledger.verify.verify_receipt`` in process against a persistent
  embedded chain set up the same way (no artifact store);
* **library over /rpc**: the same function through the service's read-only JSON-RPC endpoint,
  as an auditor runs ``provenance verify --rpc-url`` (no artifact store).

Baseline, measured in the same run on the same chain and path: one ``eth_call`` (the
contract's ``version()``), the least any chain-backed check costs. The ratio says how many
``eth_call`` round trips one verification costs. Latency percentiles are over every
verification of a run; figures are medians over runs (min-max).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any

from bench._common import (
    Config,
    fmt,
    open_chain,
    percentile,
    print_table,
    scratch_dir,
    summarize,
    write_results,
)
from bench._server import service
from bench.bench_receipts import load, rows_body, setup_model
from ledger.backends.rpc import RpcBackend
from ledger.client import LedgerClient
from ledger.merkle import StandardMerkleTree
from ledger.receipts import (
    RECEIPT_LEAF_ENCODING,
    Receipt,
    ReceiptDomain,
    ReceiptSigner,
    receipt_leaf,
)
from ledger.verify import Anchoring, verify_receipt

__all__ = ["anchored_receipts", "library_setup", "run"]

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
    return each receipt with its anchoring."""
    dataset = os.urandom(32)
    client.register_dataset(
        dataset, rows_root=os.urandom(32), row_count=10, schema_hash=os.urandom(32)
    )
    model = os.urandom(32)
    client.register_model(model, datasets=[dataset], metadata_hash=os.urandom(32))
    signer = ReceiptSigner(key, ReceiptDomain(client.chain_id(), client.address))
    signed = [
        signer.sign(model_hash=model, input_hash=os.urandom(32), output=float(i))
        for i in range(receipts)
    ]
    tree = StandardMerkleTree.of([receipt_leaf(r) for r in signed], list(RECEIPT_LEAF_ENCODING))
    client.anchor_predictions(model, tree.root, len(signed))
    root = "0x" + tree.root.hex()
    return [
        (
            r,
            Anchoring(
                root,
                "0x" + tree.leaf_hash_at(i).hex(),
                tuple("0x" + p.hex() for p in tree.proof(i)),
            ),
        )
        for i, r in enumerate(signed)
    ]


def anchored_receipts(http: Any, model: str, count: int) -> list[dict[str, Any]]:
    """Predict ``count`` rows, force anchoring, and return the anchored receipt documents."""
    response = http.post(f"/v1/models/{model}/predict", json=rows_body(count))
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


def run(config: Config) -> list[dict[str, Any]]:
    n_api = config.pick(15, 60)
    n_lib = config.pick(15, 40)
    per_client = config.pick(5, 15)
    pool = 100
    figures: dict[str, list[dict[str, Any]]] = {
        k: []
        for k in (
            "api_1", "api_1_baseline", "api_4", "lib_embedded", "lib_embedded_baseline",
            "lib_rpc", "lib_rpc_baseline",
        )
    }  # fmt: skip
    with scratch_dir(config, "verification-") as work:  # noqa: SIM117 - work names the others
        with (
            service(config, work / "service") as server,
            server.client() as http,
            open_chain("embedded-disk", work / "library") as chain,
        ):
            model = setup_model(http)
            documents = anchored_receipts(http, model, pool)
            chain_info = http.get("/v1/chain").json()
            deployment = json.loads((server.data_dir / "deployment.json").read_text())
            auditor = LedgerClient.reader(
                RpcBackend(server.url + "/rpc", timeout=60),
                chain_info["contract_address"],
                deploy_block=deployment["block_number"],
            )
            account = chain.account()
            local, _ = LedgerClient.deploy(chain.backend, account)
            local_receipts = library_setup(local, account.key, pool)

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
                _check_valid(verify_receipt(receipt, local, anchoring=anchoring))

            def rpc_verify(i: int) -> None:
                doc = documents[i % pool]
                receipt = Receipt.from_json({k: doc[k] for k in Receipt.model_fields})
                _check_valid(verify_receipt(receipt, auditor, anchoring=Anchoring.from_json(doc)))

            for op in (api_verify, api_call, lib_verify, rpc_verify):  # warm-up
                op(0)
            for _ in range(config.runs):
                figures["api_1"].append(_timed_loop(api_verify, n_api))
                figures["api_1_baseline"].append(_timed_loop(api_call, n_api))
                concurrent = load(
                    server,
                    "/v1/verify/receipt",
                    lambda i: {"receipt": documents[i % pool]},
                    per_client,
                    check=lambda r: 1 if r.json()["verdict"] == "valid" else 0,
                )
                figures["api_4"].append(concurrent)
                figures["lib_embedded"].append(_timed_loop(lib_verify, n_lib))
                figures["lib_embedded_baseline"].append(
                    _timed_loop(lambda _: local.version(), n_lib)
                )
                figures["lib_rpc"].append(_timed_loop(rpc_verify, n_lib))
                figures["lib_rpc_baseline"].append(_timed_loop(lambda _: auditor.version(), n_lib))
            blocks = chain_info["latest_block"]
    return _report(config, figures, blocks)


def _report(
    config: Config, figures: dict[str, list[dict[str, Any]]], blocks: int
) -> list[dict[str, Any]]:
    rows, summary = [], {}
    for key, label, base in (
        ("api_1", "HTTP API, 1 client", "api_1_baseline"),
        ("api_4", "HTTP API, 4 clients", "api_1_baseline"),
        ("lib_embedded", "library, embedded chain in process", "lib_embedded_baseline"),
        ("lib_rpc", "library over the service's /rpc", "lib_rpc_baseline"),
    ):
        runs = figures[key]
        rate = summarize([r["rate"] for r in runs])
        lat = {q: summarize([r[f"{q}_ms"] for r in runs]) for q in ("p50", "p99")}
        base_rate = summarize([r["rate"] for r in figures[base]])
        cost = summarize([b["rate"] / r["rate"] for r, b in zip(runs, figures[base], strict=False)])
        summary[key] = {
            "verifications_per_s": rate,
            "latency_ms": lat,
            "baseline_eth_calls_per_s": base_rate,
            "eth_calls_per_verification": cost,
            "runs": runs,
        }
        rows.append(
            [
                label,
                _cell(rate),
                _cell(lat["p50"]),
                _cell(lat["p99"]),
                _cell(base_rate),
                _cell(cost),
            ]
        )
    table = print_table(
        f"Receipt verification, median of {config.runs} runs (min-max); chain of {blocks} blocks",
        ["path", "verifications/s", "p50 ms", "p99 ms", "baseline eth_call/s (same path)",
         "verification cost in eth_calls"],
        rows,
    )  # fmt: skip
    write_results("verification", {"figures": summary, "chain_blocks": blocks}, [table])
    headline = []
    for key, what in (("api_1", "HTTP API, 1 client"), ("lib_embedded", "library, embedded")):
        s = summary[key]
        rate, p99 = s["verifications_per_s"]["median"], s["latency_ms"]["p99"]["median"]
        headline.append(
            {
                "benchmark": "verification",
                "figure": f"{what}: verifications/s, p99 ms",
                "measured": f"{fmt(rate)}/s, p99 {fmt(p99)} ms",
                "baseline": f"eth_call {fmt(s['baseline_eth_calls_per_s']['median'])}/s",
                "ratio": f"{fmt(s['eth_calls_per_verification']['median'])} eth_calls",
                "target": ">= 200/s, p99 <= 50 ms",
                "met": rate >= 200 and p99 <= 50,
            }
        )
    return headline


def _cell(s: dict[str, Any]) -> str:
    return f"{fmt(s['median'])} ({fmt(s['min'])}-{fmt(s['max'])})"
