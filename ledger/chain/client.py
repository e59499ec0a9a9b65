"""A typed Python client for the ProvenanceLedger contract.

Its length is the contract's surface: one typed method per contract function and event, all
with the same simulate-sign-send shape; the transport, paths and call encoding already live
apart (``_transactor.py``, ``_paths.py``, ``_calls.py``).

Every write method here is simulated first with one ``eth_call`` (so a revert becomes a typed
:class:`~ledger.errors.LedgerError` before anything is sent), then signed with the service key
and sent raw with an explicit gas limit, and waits for its receipt. web3's automatic gas
estimation would cost ~15 EVM runs per write on py-evm (DESIGN.md); a simulation costs one.

Batch writes (``register_datasets``, ``register_models``, ``anchor_prediction_batches``) are
one transaction each, with a gas limit that grows with the batch. The calls, their ABI
arguments and gas limits are built in :mod:`ledger.chain._calls`; the service gathers concurrent
writes through :mod:`ledger.writes.pipeline`, which uses the lower-level pieces here
(:meth:`LedgerClient.transaction`, :meth:`~LedgerClient.simulate`,
:meth:`~LedgerClient.decode_logs`) and the client's :class:`~ledger.chain._transactor.Transactor`.

The module is longer than our usual 400 lines because it is the contract's one typed face:
each ABI function and event has its method here, and splitting them by kind would scatter the
simulate-then-send rule and the ABI conversions that every method shares.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, TypeVar

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import event_abi_to_log_topic, to_checksum_address

from ledger.chain._calls import (
    GAS_BASE,
    GAS_PER_ITEM,
    CallEncoder,
    ContractCall,
    anchors_call,
    b32,
    datasets_call,
    models_call,
    revoke_call,
    role_call,
)
from ledger.chain._transactor import Transactor, guard
from ledger.chain.backends.base import ChainBackend
from ledger.chain.contract_artifact import ContractArtifact, load_artifact
from ledger.errors import UnknownBatch, UnknownDataset, UnknownModel
from ledger.formats.events import REGISTRAR_ROLE, TOPICS, decode_event
from ledger.records import (
    ZERO_HASH,
    AnchorInput,
    ChainRecord,
    DatasetInput,
    DatasetRegistered,
    LedgerEvent,
    ModelInput,
    ModelRegistered,
    PredictionsAnchored,
    RecordKind,
    RecordRevoked,
    TxResult,
    hash_hex,
)

__all__ = [
    "REGISTRAR_ROLE",
    "BlockHints",
    "Generation",
    "LedgerClient",
    "RoleHistory",
    "tx_result",
]

BlockHints = Callable[[str, str], int | None]
"""(event name, record hash) → the block that holds the event, if known."""
RoleHistory = Callable[[str, str], tuple[list[tuple[int, int, bool]], int | None]]
"""account → its REGISTRAR_ROLE changes known so far, and the last block they cover."""

T = TypeVar("T")


class Generation(NamedTuple):
    """One contract generation of a ledger, for readers: its address and the block it was
    deployed in (``last_block``: the block before its successor's deployment, None while
    newest). Events are read from every generation; writes go to the newest."""

    address: str
    first_block: int
    last_block: int | None = None


class LedgerClient:
    """Reads and writes one deployed ProvenanceLedger through a chain backend.

    Writes are signed by ``account``; the nonce is tracked locally under a lock so concurrent
    writers never collide, and resynchronised from the node after any failed send.
    """

    def __init__(
        self,
        backend: ChainBackend,
        account: LocalAccount,
        address: str,
        *,
        deploy_block: int = 0,
        artifact: ContractArtifact | None = None,
        transactor: Transactor | None = None,
        block_hints: BlockHints | None = None,
        generations: tuple[Generation, ...] = (),
    ) -> None:
        self.backend = backend
        self.account = account
        self.address = to_checksum_address(address)
        self.deploy_block = deploy_block
        """The first block of the ledger's history: the first generation's deployment."""
        self.generations = tuple(
            Generation(to_checksum_address(g.address), g.first_block, g.last_block)
            for g in generations
        ) or (Generation(self.address, deploy_block),)
        """Every generation, oldest first; the newest is :attr:`address`."""
        self._addresses = [g.address for g in self.generations]
        self._log_address: str | list[str] = (
            self.address if len(self._addresses) == 1 else self._addresses
        )
        self._artifact = artifact or load_artifact()
        self._w3 = backend.w3
        self._head_seen: tuple[float, int] | None = None  # (monotonic time, head) last read
        self._contract = self._w3.eth.contract(address=self.address, abi=self._artifact.abi)
        self._encoder = CallEncoder(self._artifact.abi)
        self._transactor = transactor or Transactor(backend, account)
        self.block_hints = block_hints
        self.role_history: RoleHistory | None = None
        self._roles: dict[str, tuple[int, list[tuple[int, int, bool]]]] = {}
        self._roles_lock = threading.Lock()
        self._event_topics = {
            event_abi_to_log_topic(item) for item in self._artifact.abi if item["type"] == "event"
        }

    @classmethod
    def reader(cls, backend: ChainBackend, address: str, *, deploy_block: int = 0) -> LedgerClient:
        """A client for reading and verifying only: its throwaway key holds no role, so any
        write it tried would be refused by the contract."""
        return cls(backend, Account.create(), address, deploy_block=deploy_block)

    # -- deployment ---------------------------------------------------------------------------

    @classmethod
    def deploy(
        cls,
        backend: ChainBackend,
        account: LocalAccount,
        *,
        admin: str | None = None,
        predecessor: str | None = None,
        artifact: ContractArtifact | None = None,
    ) -> tuple[LedgerClient, TxResult]:
        """Deploy the committed artifact (or an older release's ``artifact``, which takes no
        predecessor) with ``admin`` (default: ``account``) as admin, succeeding the generation
        at ``predecessor`` if one is named."""
        artifact = artifact or load_artifact()
        factory = backend.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        transactor = Transactor(backend, account)
        args = artifact.with_constructor(
            admin or account.address, to_checksum_address(predecessor or "0x" + "00" * 20)
        )
        if predecessor and len(args) < 2:
            raise ValueError("this artifact cannot name a predecessor")
        constructor = factory.constructor(*args)
        transactor.simulate({"data": constructor.data_in_transaction})  # a revert is typed
        receipt = transactor.send({"data": constructor.data_in_transaction}, gas=3_000_000)
        client = cls(
            backend,
            account,
            receipt["contractAddress"],
            deploy_block=receipt["blockNumber"],
            artifact=artifact,
            transactor=transactor,
        )
        return client, tx_result(receipt)

    def predecessor(self) -> str | None:
        """The previous generation's address, or None for a first generation (and for
        contracts older than 1.2.0, which cannot have one)."""
        if not any(item.get("name") == "predecessor" for item in self._artifact.abi):
            return None
        found = self._call("predecessor")
        return None if int(found, 16) == 0 else to_checksum_address(found)

    def deployed_code(self) -> bytes:
        """The runtime code at :attr:`address` right now."""
        return bytes(guard(lambda: self._w3.eth.get_code(self.address)))

    # -- writes -------------------------------------------------------------------------------

    def register_dataset(
        self,
        content_hash: bytes | str,
        *,
        rows_root: bytes | str,
        row_count: int,
        schema_hash: bytes | str,
        metadata_hash: bytes | str = ZERO_HASH,
        parents: Sequence[bytes | str] = (),
        transform_hash: bytes | str = ZERO_HASH,
    ) -> TxResult:
        """Register a dataset; a derived one names its parents and its transform's hash."""
        args = (
            b32(content_hash),
            b32(rows_root),
            row_count,
            b32(schema_hash),
            b32(metadata_hash),
            [b32(p) for p in parents],
            b32(transform_hash),
        )
        gas = GAS_BASE + GAS_PER_ITEM * len(parents)
        return self._transact(ContractCall("registerDataset", args, gas))

    def register_model(
        self,
        model_hash: bytes | str,
        *,
        datasets: Sequence[bytes | str],
        metadata_hash: bytes | str,
    ) -> TxResult:
        """Register a model trained on ``datasets``, described by its metadata document's hash."""
        args = (b32(model_hash), [b32(d) for d in datasets], b32(metadata_hash))
        gas = GAS_BASE + GAS_PER_ITEM * len(datasets)
        return self._transact(ContractCall("registerModel", args, gas))

    def anchor_predictions(
        self, model_hash: bytes | str, root: bytes | str, count: int
    ) -> TxResult:
        """Anchor a Merkle batch of prediction receipts; the batch id is ``root``."""
        args = (b32(model_hash), b32(root), count)
        return self._transact(ContractCall("anchorPredictions", args, GAS_BASE))

    def register_datasets(self, items: Sequence[DatasetInput]) -> TxResult:
        """Register several datasets in one transaction, in order (a later one may name an
        earlier one as its parent); any failing item fails them all with that item's error."""
        return self._transact(datasets_call(items))

    def register_models(self, items: Sequence[ModelInput]) -> TxResult:
        """Register several models in one transaction, in order; any failing item fails them
        all with that item's error."""
        return self._transact(models_call(items))

    def anchor_prediction_batches(self, items: Sequence[AnchorInput]) -> TxResult:
        """Anchor several Merkle batches of receipts in one transaction; each batch id is its
        root. Any failing batch fails them all with that batch's error."""
        return self._transact(anchors_call(items))

    def revoke(self, record_hash: bytes | str, reason: str) -> TxResult:
        """Revoke any record for good, with a reason kept in the event log."""
        return self._transact(revoke_call(record_hash, reason))

    def grant_registrar(self, address: str) -> TxResult:
        """Let ``address`` write (admin only)."""
        return self._transact(role_call(address, grant=True))

    def revoke_registrar(self, address: str) -> TxResult:
        """Stop ``address`` from writing (admin only)."""
        return self._transact(role_call(address, grant=False))

    # -- the pieces of a write, for the write pipeline -------------------------------------------

    @property
    def transactor(self) -> Transactor:
        """The signer and nonce owner of this client's account (shared with deployment)."""
        return self._transactor

    def transaction(self, call: ContractCall) -> dict[str, Any]:
        """The unsigned transaction (``to`` and ``data``) that makes ``call``."""
        return {"to": self.address, "data": self._encoder.encode(call.fn_name, call.args)}

    def simulate(self, call: ContractCall) -> None:
        """Run ``call`` as an ``eth_call``; a revert raises its typed error, nothing is sent."""
        self._transactor.simulate(self.transaction(call))

    def decode_logs(self, logs: Sequence[Any]) -> list[LedgerEvent]:
        """The ledger events among a receipt's logs, decoded, in order (other contracts' logs
        are left out)."""
        return [
            self._decode(log)
            for log in logs
            if log["address"] in self._addresses
            and log["topics"]
            and bytes(log["topics"][0]) in self._event_topics
        ]

    def get_block(self, block_number: int | str) -> Any:
        """A block's header fields (number, timestamp, base fee, gas limit, transactions)."""
        return guard(lambda: self.backend.read_block(block_number))

    # -- reads --------------------------------------------------------------------------------

    def version(self) -> str:
        return self._call("version")

    def is_registrar(self, address: str) -> bool:
        return self._call("hasRole", REGISTRAR_ROLE, to_checksum_address(address))

    def get_records(self, record_hashes: Sequence[bytes | str]) -> list[ChainRecord | None]:
        """The stored record under each hash (None where nothing is registered), read in one
        ``eth_call`` so that a verification sees every record at the same block.

        A hash costs about 4,000 gas of the call, so a node's usual eth_call gas cap (30M)
        reads some 7,000 at once."""
        raw = self._call("getRecords", [b32(r) for r in record_hashes])
        records = [self._to_record(r, fields) for r, fields in zip(record_hashes, raw, strict=True)]
        return [None if r.kind is RecordKind.NONE else r for r in records]

    def get_dataset(self, content_hash: bytes | str) -> ChainRecord:
        """The dataset record; raises :class:`UnknownDataset`."""
        return self._to_record(content_hash, self._call("getDataset", b32(content_hash)))

    def get_model(self, model_hash: bytes | str) -> ChainRecord:
        """The model record; raises :class:`UnknownModel`."""
        return self._to_record(model_hash, self._call("getModel", b32(model_hash)))

    def is_revoked(self, record_hash: bytes | str) -> bool:
        """Whether a registered record is revoked; raises :class:`UnknownRecord` if unknown."""
        return self._call("isRevoked", b32(record_hash))

    def verify_prediction(
        self, batch_id: bytes | str, leaf: bytes | str, proof: Sequence[bytes | str]
    ) -> bool:
        """Ask the contract whether ``leaf`` is in the anchored batch (MerkleProof.verify)."""
        return self._call("verifyPrediction", b32(batch_id), b32(leaf), [b32(p) for p in proof])

    def latest_block(self) -> int:
        number = guard(self.backend.head_number)
        self.note_head(number)
        return number

    def note_head(self, number: int) -> None:
        """Remember the chain's head as just read (by :meth:`latest_block`, or by the write
        pipeline, which reads the latest block for every new head)."""
        self._head_seen = (time.monotonic(), number)  # lower too: a reorganisation may shorten

    def note_mined(self, number: int) -> None:
        """A block just read as mined proves the head at least ``number``: note that, unless
        a head as high was read (a write's answer then reads no head for its confirmations)."""
        seen = self._head_seen
        if seen is None or seen[1] < number:
            self.note_head(number)

    def recent_head(self, max_age: float) -> int | None:
        """The head read within the last ``max_age`` seconds, if any: a read that a caller
        content with a head that recent need not repeat."""
        seen = self._head_seen
        if seen is None or time.monotonic() - seen[0] > max_age:
            return None
        return seen[1]

    def block_timestamp(self, block_number: int) -> int:
        return guard(lambda: self.backend.read_block(block_number)["timestamp"])

    def chain_id(self) -> int:
        return self._transactor.chain_id

    # -- events -------------------------------------------------------------------------------

    def events(self, from_block: int | None = None, to_block: int | str = "latest") -> list[Any]:
        """Every ledger event in the block range, decoded and in chain order."""
        return self._logs([], from_block, to_block)

    def logged_events(self, from_block: int, to_block: int) -> list[tuple[str, Any]]:
        """Every ledger event in the block range, in chain order, each with the address of the
        generation that logged it: the index needs it to tell a write to a superseded
        generation (which the newest may not count) from one the newest generation sees. The
        address is as the node spelt it (no checksum: a keccak a log); compare it in lower case."""
        query = {"address": self._log_address, "fromBlock": from_block, "toBlock": to_block}
        logs = guard(lambda: self._w3.eth.get_logs(query))
        return [(log["address"], self._decode(log)) for log in logs]  # as the node spelt it

    def log_address(self, tx_hash: str, log_index: int) -> str | None:
        """The address that logged event ``log_index`` of transaction ``tx_hash`` (None if the
        chain holds no such log): which generation logged an event the index stored earlier."""
        receipt = guard(lambda: self._w3.eth.get_transaction_receipt(tx_hash))  # type: ignore[arg-type]
        for log in receipt["logs"]:
            if log["logIndex"] == log_index:
                return to_checksum_address(log["address"])
        return None

    def dataset_registration(self, content_hash: bytes | str) -> DatasetRegistered:
        """The event that registered a dataset: all its fields, straight from the chain."""
        return self._first(DatasetRegistered, content_hash, UnknownDataset, "dataset")

    def model_registration(self, model_hash: bytes | str) -> ModelRegistered:
        """The event that registered a model."""
        return self._first(ModelRegistered, model_hash, UnknownModel, "model")

    def batch_anchoring(self, batch_id: bytes | str) -> PredictionsAnchored:
        """The event that anchored a batch."""
        return self._first(PredictionsAnchored, batch_id, UnknownBatch, "batch")

    def revocation(self, record_hash: bytes | str) -> RecordRevoked | None:
        """The revocation of a record, or None if it stands."""
        found = self._find(RecordRevoked, record_hash)
        return found[0] if found else None

    def registrar_history(self, address: str) -> list[tuple[int, int, bool]]:
        """When ``address`` gained (True) or lost (False) ``REGISTRAR_ROLE`` in the newest
        generation (the one :meth:`is_registrar` asks; each generation has its own roles), as
        ``(block_number, log_index, granted)`` in chain order.

        Verification uses it to accept receipts signed and anchored before a key lost its role,
        and to refuse those that came after.
        """
        address = to_checksum_address(address)
        with self._roles_lock:  # the chain only grows: scan each block once per address
            if address not in self._roles and self.role_history is not None:
                # the index's copy of the role events: only the blocks after it are scanned
                known, indexed_to = self.role_history(address, self.address)
                if indexed_to is not None:
                    self._roles[address] = (indexed_to, known)
            scanned, known = self._roles.get(address, (self.deploy_block - 1, []))
            head = self.latest_block()
            if head > scanned:
                known = sorted(known + self._role_changes(address, scanned + 1, head))
                self._roles[address] = (head, known)
            return list(known)

    def _role_changes(self, address: str, start: int, end: int) -> list[tuple[int, int, bool]]:
        account_topic = bytes(12) + bytes.fromhex(address[2:])
        changes = []
        for name, granted in (("RoleGranted", True), ("RoleRevoked", False)):
            topic = TOPICS[name]
            for log in guard(
                lambda topic=topic: self._w3.eth.get_logs(
                    {
                        "address": self.address,  # the newest generation's roles only
                        "fromBlock": start,
                        "toBlock": end,
                        "topics": [
                            "0x" + topic.hex(),
                            "0x" + REGISTRAR_ROLE.hex(),
                            "0x" + account_topic.hex(),
                        ],
                    }
                )
            ):
                changes.append((log["blockNumber"], log["logIndex"], granted))
        return changes

    # -- internals ----------------------------------------------------------------------------

    def _find(self, event_type: type[LedgerEvent], key: bytes | str) -> list[Any]:
        """Events of ``event_type`` whose first indexed topic is ``key``.

        A block hint (from the service's index) narrows the search to one block; the event is
        still read from the chain, and a wrong hint only costs the full scan it avoids.
        """
        name = event_type.__name__  # each event class is named after the contract's event
        topics = [TOPICS[name], b32(key)]
        hint = self.block_hints(name, hash_hex(key)) if self.block_hints else None
        if hint is not None and (found := self._logs(topics, hint, hint)):
            return found
        return self._logs(topics, None, "latest")

    def _first(self, event_type: type[T], key: bytes | str, missing: type, what: str) -> T:
        found = self._find(event_type, key)
        if not found:
            raise missing(f"no {what} is registered under {hash_hex(key)}")
        return found[0]

    def _logs(self, topics: list[Any], from_block: int | None, to_block: int | str) -> list[Any]:
        start = self.deploy_block if from_block is None else from_block
        query: dict[str, Any] = {
            "address": self._log_address,
            "fromBlock": start,
            "toBlock": to_block,
        }
        if topics:
            query["topics"] = ["0x" + bytes(t).hex() for t in topics]
        logs = guard(lambda: self._w3.eth.get_logs(query))
        return [self._decode(log) for log in logs]

    def _decode(self, log: Any) -> LedgerEvent:
        return decode_event(
            log["topics"],
            log["data"],
            tx_hash=hash_hex(bytes(log["transactionHash"])),
            block_number=log["blockNumber"],
            log_index=log["logIndex"],
        )

    def _to_record(self, record_hash: bytes | str, raw: Sequence[Any]) -> ChainRecord:
        kind, revoked, registered_at, registrant = raw
        return ChainRecord(
            record_hash=hash_hex(record_hash),
            kind=RecordKind(kind),
            revoked=revoked,
            registered_at=registered_at,
            registrant=registrant,
        )

    def _call(self, fn_name: str, *args: Any) -> Any:
        return guard(lambda: getattr(self._contract.functions, fn_name)(*args).call())

    def _transact(self, call: ContractCall) -> TxResult:
        tx = self.transaction(call)
        self._transactor.simulate(tx)  # 1. a revert becomes a typed error; nothing is sent
        return tx_result(self._transactor.send(tx, gas=call.gas))  # 2. sign, send, wait


def tx_result(receipt: Any) -> TxResult:
    """Where a mined, successful write landed, from its receipt."""
    return TxResult(
        tx_hash=hash_hex(bytes(receipt["transactionHash"])),
        block_number=receipt["blockNumber"],
        gas_used=receipt["gasUsed"],
    )
