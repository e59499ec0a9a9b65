"""The contract's write functions as values: which function, its ABI arguments and the gas limit
a transaction calling it needs.

One place turns typed inputs (:mod:`ledger.records`) into ABI arguments and gas bounds, so the
client's single calls and the write pipeline's gathered batches send exactly the same bytes for
the same records. Gas limits are upper bounds: unused gas is refunded, so they only need to be
generous, but a bound that is too generous wastes room in a block the pipeline could fill.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi import encode as abi_encode
from eth_utils import keccak, to_checksum_address

from ledger.formats.events import REGISTRAR_ROLE
from ledger.records import AnchorInput, DatasetInput, ModelInput, hash_hex

__all__ = [
    "GAS_BASE",
    "CallEncoder",
    "ContractCall",
    "anchors_call",
    "b32",
    "batch_record_gas",
    "datasets_call",
    "models_call",
    "revoke_call",
    "role_call",
]


GAS_BASE = 150_000  # a transaction's own cost, the call's dispatch, and room to spare
GAS_PER_ITEM = 12_000  # per parent or training dataset named
GAS_PER_RECORD = 45_000  # per record of a batch write: a fresh slot, its event, its calldata
GAS_PER_REASON_BYTE = 40


@dataclass(frozen=True)
class ContractCall:
    """One call of a contract write function: ``fn_name(*args)`` with a gas limit of ``gas``."""

    fn_name: str
    args: tuple[Any, ...]
    gas: int


def b32(value: bytes | str) -> bytes:
    """A 32-byte hash as the ABI wants it, from bytes or hex."""
    return bytes.fromhex(hash_hex(value)[2:])


def datasets_call(items: Sequence[DatasetInput]) -> ContractCall:
    """``registerDatasets``: several datasets, in order, in one transaction."""
    args = [
        (
            b32(d.content_hash),
            b32(d.rows_root),
            d.row_count,
            b32(d.schema_hash),
            b32(d.metadata_hash),
            [b32(p) for p in d.parents],
            b32(d.transform_hash),
        )
        for d in items
    ]
    return ContractCall("registerDatasets", (args,), _batch_gas(len(d.parents) for d in items))


def models_call(items: Sequence[ModelInput]) -> ContractCall:
    """``registerModels``: several models, in order, in one transaction."""
    args = [(b32(m.model_hash), [b32(d) for d in m.datasets], b32(m.metadata_hash)) for m in items]
    return ContractCall("registerModels", (args,), _batch_gas(len(m.datasets) for m in items))


def anchors_call(items: Sequence[AnchorInput]) -> ContractCall:
    """``anchorPredictionBatches``: several Merkle batches of receipts in one transaction."""
    args = [(b32(b.model_hash), b32(b.root), b.count) for b in items]
    return ContractCall("anchorPredictionBatches", (args,), _batch_gas(0 for _ in items))


def revoke_call(record_hash: bytes | str, reason: str) -> ContractCall:
    """``revoke``: one record, for good, with a reason kept in the event log."""
    gas = GAS_BASE + GAS_PER_REASON_BYTE * len(reason.encode("utf-8"))
    return ContractCall("revoke", (b32(record_hash), reason), gas)


def role_call(address: str, *, grant: bool) -> ContractCall:
    """``grantRole`` or ``revokeRole`` of ``REGISTRAR_ROLE`` for ``address`` (admin only)."""
    name = "grantRole" if grant else "revokeRole"
    return ContractCall(name, (REGISTRAR_ROLE, to_checksum_address(address)), GAS_BASE)


def batch_record_gas(refs: int) -> int:
    """What one record naming ``refs`` other hashes adds to a batch write's gas limit."""
    return GAS_PER_RECORD + GAS_PER_ITEM * refs


def _batch_gas(refs_per_record: Any) -> int:
    """The gas limit of a batch write: it grows with the records and the hashes they name."""
    return GAS_BASE + sum(batch_record_gas(refs) for refs in refs_per_record)


class CallEncoder:
    """Calldata of the contract's functions (selector and ABI-encoded arguments) straight
    through ``eth_abi``: the arguments :mod:`ledger.chain._calls` makes are ABI values already
    (bytes for hashes, ints, strings, checksummed addresses), so web3's ``encode_abi``, which
    walks every argument through its normalizers first, is not needed; it cost 12% of the
    service's time under a burst of accepted writes (issue 21, BENCHMARKS.md).
    ``tests/contracts/test_call_encoder.py`` holds the two to the same bytes."""

    def __init__(self, abi: Sequence[dict[str, Any]]) -> None:
        self._functions: dict[str, tuple[bytes, list[str]] | None] = {}
        for item in abi:
            if item.get("type") == "function":
                types = [_abi_type(i) for i in item["inputs"]]
                signature = f"{item['name']}({','.join(types)})"
                overloaded = item["name"] in self._functions  # a name alone does not say which
                self._functions[item["name"]] = (
                    None if overloaded else (keccak(text=signature)[:4], types)
                )

    def encode(self, fn_name: str, args: Sequence[Any]) -> str:
        """The ``data`` of a transaction calling ``fn_name(*args)``, as 0x-hex."""
        function = self._functions[fn_name]
        if function is None:
            raise ValueError(f"{fn_name} is overloaded in this ABI: name it by its signature")
        selector, types = function
        return "0x" + (selector + abi_encode(types, list(args))).hex()


def _abi_type(parameter: dict[str, Any]) -> str:
    """A parameter's canonical type, tuples spelled out (``(bytes32,uint64)[]``)."""
    kind = parameter["type"]
    if kind.startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in parameter["components"])
        return f"({inner}){kind[len('tuple') :]}"
    return kind
