"""Gas: our ledger against the Ethereum Attestation Service, deployed on the same chain.

EAS (npm ``@ethereum-attestation-service/eas-contracts`` 1.9.0, pinned in
``bench/package.json``) is deployed from the compiled artifacts its package ships (SchemaRegistry,
then EAS over it; nothing is compiled). A schema equivalent to our dataset record is registered,
and every operation is sent with an explicit gas limit; the figures are each receipt's
``gasUsed`` over several writes with fresh random hashes.

* one dataset registration: our ``registerDataset`` vs EAS ``attest`` of the same fields
  (target: ours <= 0.2x);
* one prediction receipt, anchored in a batch of the service's default size
  (``Settings.anchor_batch_size``): our ``anchorPredictions`` gas / batch size vs one item of
  EAS ``multiTimestamp`` of the same number of roots (target: ours <= 1/50);
* for scale, the minimal ``mapping(bytes32=>address)`` registry write (the floor of any
  registry) and EAS ``timestamp`` of a single item.

Run it alone with ``python -m bench.bench_gas [--quick]``; it needs ``npm ci --prefix bench``.
"""

from __future__ import annotations

import json
import os
from typing import Any

from eth_abi import encode

from api.settings import Settings
from bench import _registry
from bench._common import (
    BENCH_DIR,
    Config,
    RawSender,
    anvil_available,
    fmt_int,
    open_chain,
    print_table,
    summarize,
    write_results,
)
from ledger.chain.client import LedgerClient
from ledger.formats.merkle import StandardMerkleTree
from ledger.formats.receipt_signing import ReceiptSigner
from ledger.formats.receipts import RECEIPT_LEAF_ENCODING, ReceiptDomain, receipt_leaf

__all__ = ["EAS_PACKAGE", "eas_available", "run"]

EAS_PACKAGE = BENCH_DIR / "node_modules" / "@ethereum-attestation-service" / "eas-contracts"
_ARTIFACTS = EAS_PACKAGE / "artifacts" / "contracts"
# Our DatasetRegistered fields, as an EAS schema string.
DATASET_SCHEMA = (
    "bytes32 contentHash,bytes32 rowsRoot,uint64 rowCount,bytes32 schemaHash,"
    "bytes32 metadataHash,bytes32[] parents,bytes32 transformHash"
)
_DATASET_TYPES = ["bytes32", "bytes32", "uint64", "bytes32", "bytes32", "bytes32[]", "bytes32"]
_ZERO = b"\x00" * 32
_BLOCK_GAS = 29_000_000  # under the 30M block gas limit of eth-tester and anvil


def eas_available() -> bool:
    return (_ARTIFACTS / "EAS.sol" / "EAS.json").exists()


def _artifact(name: str) -> dict[str, Any]:
    return json.loads((_ARTIFACTS / f"{name}.sol" / f"{name}.json").read_text())


def _h() -> bytes:
    return os.urandom(32)


class _Eas:
    """SchemaRegistry + EAS deployed from the package's artifacts, written to with raw txs."""

    def __init__(self, sender: RawSender) -> None:
        self.sender = sender
        w3 = sender.w3
        registry_art, eas_art = _artifact("SchemaRegistry"), _artifact("EAS")
        self.registry_address = sender.deploy(registry_art["bytecode"])
        factory = w3.eth.contract(abi=eas_art["abi"], bytecode=eas_art["bytecode"])
        self.address = sender.deploy(factory.constructor(self.registry_address).data_in_transaction)
        self.registry = w3.eth.contract(address=self.registry_address, abi=registry_art["abi"])
        self.eas = w3.eth.contract(address=self.address, abi=eas_art["abi"])
        self.version = self.eas.functions.version().call()

    def register_schema(self, schema: str) -> bytes:
        data = self.registry.encode_abi("register", args=[schema, "0x" + "00" * 20, True])
        receipt = self.sender.send(self.registry_address, data, 1_000_000)
        return bytes(receipt["logs"][0]["topics"][1])  # Registered(uid indexed, ...)

    def attest(self, schema_uid: bytes, data: bytes, ref_uid: bytes = _ZERO) -> int:
        request = (schema_uid, ("0x" + "00" * 20, 0, True, ref_uid, data, 0))
        call = self.eas.encode_abi("attest", args=[request])
        return self.sender.send(self.address, call, 1_000_000)["gasUsed"]

    def timestamp(self, item: bytes) -> int:
        call = self.eas.encode_abi("timestamp", args=[item])
        return self.sender.send(self.address, call, 200_000)["gasUsed"]

    def multi_timestamp(self, items: list[bytes]) -> int:
        call = self.eas.encode_abi("multiTimestamp", args=[items])
        return self.sender.send(self.address, call, _BLOCK_GAS)["gasUsed"]


def _dataset_fields(parents: list[bytes]) -> list[Any]:
    return [_h(), _h(), 1_000, _h(), _h(), parents, _h() if parents else _ZERO]


def _measure_chain(name: str, config: Config, batch_size: int) -> dict[str, Any]:
    runs = config.runs
    with open_chain(name, config.tmp / f"gas-{name}") as chain:
        admin = chain.account()
        ours, _ = LedgerClient.deploy(chain.backend, admin)
        sender = RawSender(chain.backend, chain.account())
        eas = _Eas(sender)
        schema_uid = eas.register_schema(DATASET_SCHEMA)
        registry = sender.deploy(_registry.BYTECODE)

        gas: dict[str, list[int]] = {k: [] for k in (
            "registerDataset", "attest", "registerDataset_derived", "attest_derived",
            "minimal_registry", "anchorPredictions_batch", "multiTimestamp_batch",
            "anchorPredictions_single", "timestamp",
        )}  # fmt: skip
        # A parent dataset for the derived rows, registered on both sides.
        parent = _dataset_fields([])
        ours.register_dataset(
            parent[0], rows_root=parent[1], row_count=parent[2], schema_hash=parent[3],
            metadata_hash=parent[4],
        )  # fmt: skip
        eas.attest(schema_uid, encode(_DATASET_TYPES, parent))
        parent_uid = _last_attestation_uid(sender, eas)

        for _ in range(runs):
            # 1. One dataset, raw (no parents), then derived from one parent.
            for derived in (False, True):
                fields = _dataset_fields([parent[0]] if derived else [])
                tx = ours.register_dataset(
                    fields[0], rows_root=fields[1], row_count=fields[2], schema_hash=fields[3],
                    metadata_hash=fields[4], parents=fields[5], transform_hash=fields[6],
                )  # fmt: skip
                suffix = "_derived" if derived else ""
                gas["registerDataset" + suffix].append(tx.gas_used)
                gas["attest" + suffix].append(
                    eas.attest(
                        schema_uid,
                        encode(_DATASET_TYPES, fields),
                        ref_uid=parent_uid if derived else _ZERO,
                    )
                )
            gas["minimal_registry"].append(
                sender.send(registry, _registry.register_data(_h()), _registry.GAS_LIMIT)["gasUsed"]
            )

        # 2. Receipts: a model to anchor for, then batches of real signed receipts.
        model = _h()
        ours.register_model(model, datasets=[parent[0]], metadata_hash=_h())
        signer = ReceiptSigner(admin.key, ReceiptDomain(ours.chain_id(), ours.address))
        multi_size = batch_size
        for _ in range(runs):
            receipts = [
                signer.sign(model_hash=model, input_hash=_h(), output=i) for i in range(batch_size)
            ]
            tree = StandardMerkleTree.of(
                [receipt_leaf(r) for r in receipts], list(RECEIPT_LEAF_ENCODING)
            )
            tx = ours.anchor_predictions(model, tree.root, batch_size)
            gas["anchorPredictions_batch"].append(tx.gas_used)
            one = signer.sign(model_hash=model, input_hash=_h(), output=0)
            single = StandardMerkleTree.of([receipt_leaf(one)], list(RECEIPT_LEAF_ENCODING))
            gas["anchorPredictions_single"].append(
                ours.anchor_predictions(model, single.root, 1).gas_used
            )
            gas["timestamp"].append(eas.timestamp(_h()))
            # EAS timestamps each root of the batch: one item per receipt.
            multi_size, used = _multi_timestamp(eas, batch_size)
            gas["multiTimestamp_batch"].append(used)
        return {
            "chain": name,
            "eas_version": eas.version,
            "schema_uid": "0x" + schema_uid.hex(),
            "batch_size": batch_size,
            "multi_timestamp_size": multi_size,
            "gas": gas,
        }


def _last_attestation_uid(sender: RawSender, eas: _Eas) -> bytes:
    """The uid of the latest attestation (EAS's Attested event: uid is its data's first word)."""
    logs = sender.w3.eth.get_logs({"address": eas.address, "fromBlock": "latest"})
    return bytes(logs[-1]["data"])[:32]


def _multi_timestamp(eas: _Eas, size: int) -> tuple[int, int]:
    """multiTimestamp of ``size`` items, halving the size if a block cannot hold it."""
    while True:
        try:
            return size, eas.multi_timestamp([_h() for _ in range(size)])
        except Exception:
            if size <= 16:
                raise
            size //= 2
            eas.sender.nonce = eas.sender.w3.eth.get_transaction_count(
                eas.sender.account.address, "pending"
            )


def run(config: Config) -> list[dict[str, Any]]:
    if not eas_available():
        print("gas: SKIPPED, EAS contracts missing: run `npm ci --prefix bench`\n")
        return [
            {"benchmark": "gas", "figure": "SKIPPED", "measured": "-",
             "target": "run `npm ci --prefix bench`", "met": None}
        ]  # fmt: skip
    batch_size = Settings.model_fields["anchor_batch_size"].default
    chains = ["embedded"] + (
        ["anvil"] if config.anvil and anvil_available() and not config.quick else []
    )
    measured = [_measure_chain(name, config, batch_size) for name in chains]
    tables, figures = [], {}
    for m in measured:
        g = {k: summarize(v) for k, v in m["gas"].items()}
        per_receipt = summarize([v / batch_size for v in m["gas"]["anchorPredictions_batch"]])
        per_item = summarize(
            [v / m["multi_timestamp_size"] for v in m["gas"]["multiTimestamp_batch"]]
        )
        rows = [
            _row("dataset registration", "registerDataset", g["registerDataset"],
                 "attest", g["attest"], "<= 0.2"),
            _row("derived dataset (1 parent)", "registerDataset", g["registerDataset_derived"],
                 "attest + refUID", g["attest_derived"], ""),
            _row(f"receipt, batched ({batch_size}/batch)", f"anchorPredictions / {batch_size}",
                 per_receipt, f"multiTimestamp item ({m['multi_timestamp_size']}/tx)", per_item,
                 "<= 0.02 (1/50)"),
            _row("receipt, one tx each", "anchorPredictions (count 1)",
                 g["anchorPredictions_single"], "timestamp", g["timestamp"], ""),
            _row("floor: mapping(bytes32=>address) write", "minimal registry",
                 g["minimal_registry"], "attest", g["attest"], ""),
        ]  # fmt: skip
        tables.append(
            print_table(
                f"Gas on {m['chain']} (EAS contracts npm 1.9.0, EAS.version() "
                f"{m['eas_version']}), median of {config.runs} writes (min-max)",
                ["operation", "ours", "gas", "EAS", "gas", "ours/EAS", "target"],
                [r["cells"] for r in rows],
            )
        )
        figures[m["chain"]] = {
            "rows": [r["figures"] for r in rows],
            "raw": m,
            "per_receipt_batched": per_receipt,
            "multi_timestamp_per_item": per_item,
        }
    rows = figures["embedded"]["rows"]
    reg, receipt = rows[0], rows[2]
    headline = [
        {
            "benchmark": "gas",
            "figure": "registerDataset gas",
            "measured": fmt_int(reg["ours_gas"]["median"]),
            "baseline": f"EAS attest {fmt_int(reg['eas_gas']['median'])}",
            "ratio": f"{reg['ratio']:.3f}",
            "target": "<= 0.2",
            "met": reg["ratio"] <= 0.2,
        },
        {
            "benchmark": "gas",
            "figure": f"gas per receipt at batch {batch_size}",
            "measured": fmt_int(receipt["ours_gas"]["median"]),
            "baseline": f"EAS multiTimestamp item {fmt_int(receipt['eas_gas']['median'])}",
            "ratio": f"{receipt['ratio']:.4f}",
            "target": "<= 0.02",
            "met": receipt["ratio"] <= 0.02,
        },
    ]
    write_results("gas", {"figures": figures, "headline": headline}, tables)
    return headline


def _row(
    what: str,
    ours_name: str,
    ours: dict[str, Any],
    eas_name: str,
    eas: dict[str, Any],
    target: str,
) -> dict[str, Any]:
    ratio = ours["median"] / eas["median"]
    cells = [
        what,
        ours_name,
        f"{fmt_int(ours['median'])} ({fmt_int(ours['min'])}-{fmt_int(ours['max'])})",
        eas_name,
        f"{fmt_int(eas['median'])} ({fmt_int(eas['min'])}-{fmt_int(eas['max'])})",
        f"{ratio:.4f}",
        target,
    ]
    figures = {
        "operation": what,
        "ours": ours_name,
        "ours_gas": ours,
        "eas": eas_name,
        "eas_gas": eas,
        "ratio": ratio,
        "target": target,
    }
    return {"cells": cells, "figures": figures}


def main(argv: list[str] | None = None) -> None:
    from bench.__main__ import main as suite

    suite(["--only", "gas", *(argv or [])])


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
