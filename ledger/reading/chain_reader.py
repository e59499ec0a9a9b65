"""A web3-free reader of one deployed ProvenanceLedger: the calls and events verification uses.

:class:`~ledger.chain.client.LedgerClient` is the contract's full typed face (writes included) and
is built on web3; this reader is the narrow, fast one that verification runs on, so that the CLI
starts without web3 and the service's verifications skip web3's per-call formatting. It
encodes the few functions it calls (``getRecords``, ``hasRole``, ``version``) and decodes the
ledger's events with the client's own decoder (:mod:`ledger.formats.events`, ``eth_abi``), into
the same :mod:`ledger.records` types the client returns
(``tests/ledger/test_chain_reader.py`` checks both agree, and that every selector and topic
here is the committed artifact's).

Every call names a sender (``from``): nodes that cap or meter public reads see one caller, and
eth-tester refuses a call without one. Reading an address with no contract raises
:class:`ContractNotFound`, never a decoding error.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any, NamedTuple

from eth_abi import decode, encode
from eth_abi.exceptions import DecodingError
from eth_hash.auto import keccak
from eth_utils import to_checksum_address

from ledger.errors import LedgerError, decode_revert
from ledger.formats.events import EVENT_SIGNATURES, REGISTRAR_ROLE, TOPICS, decode_event
from ledger.reading._jsonrpc import BlockHead, BlockRef, CallReverted, ChainTransport, RawLog
from ledger.records import (
    ChainRecord,
    LedgerEvent,
    RecordKind,
    hash_hex,
)

__all__ = [
    "EVENT_SIGNATURES",
    "MAX_RECORDS_PER_CALL",
    "REGISTRAR_ROLE",
    "SELECTORS",
    "TOPICS",
    "ContractNotFound",
    "Found",
    "LedgerReader",
    "RoleChange",
]

MAX_RECORDS_PER_CALL = 2_000
"""Hashes per ``getRecords`` call: about 4,300 gas each, well under a node's usual 30M cap.
A record of an older generation costs about 4,300 more per generation walked (measured: 8,641
through a second generation, 12,872 through a third), so a reader of several generations asks
for this many divided by their count."""

SELECTORS = {
    name: keccak(signature.encode())[:4]
    for name, signature in (
        ("getRecords", "getRecords(bytes32[])"),
        ("hasRole", "hasRole(bytes32,address)"),
        ("version", "version()"),
        ("predecessor", "predecessor()"),
    )
}
_GET_RECORDS, _HAS_ROLE, _VERSION, _PREDECESSOR = (
    SELECTORS["getRecords"],
    SELECTORS["hasRole"],
    SELECTORS["version"],
    SELECTORS["predecessor"],
)
MAX_GENERATIONS = 64
"""How far :meth:`LedgerReader.generations` follows ``predecessor()`` (a chain cannot loop: a
predecessor must hold code when its successor is built; this only bounds a hostile node)."""


class ContractNotFound(LedgerError):
    """No ProvenanceLedger answers at the address: no code there, or another contract."""

    hint = "check --contract (or the bundle's ledger.contract) and that the node is the right chain"


class Found(NamedTuple):
    """A decoded event, the hash of the block that holds it and the generation (contract
    address) that logged it."""

    event: LedgerEvent
    block_hash: str
    contract: str = ""


class RoleChange(NamedTuple):
    """A ``REGISTRAR_ROLE`` grant (``granted``) or revocation, where it happened."""

    block_number: int
    log_index: int
    granted: bool
    block_hash: str


class LedgerReader:
    """Reads one ProvenanceLedger at ``address`` through a :class:`ChainTransport`.

    ``address`` is the newest generation the reader trusts: records are read through it (it
    asks its predecessors for what it does not hold), and events are read from it and from
    every generation it reaches through ``predecessor()`` (:meth:`generations`), or from the
    ``generations`` given (the service's deployment record, already checked on the chain)."""

    def __init__(
        self,
        transport: ChainTransport,
        address: str,
        *,
        deploy_block: int = 0,
        sender: str | None = None,
        generations: Sequence[str] | None = None,
    ) -> None:
        self.transport = transport
        self.address = to_checksum_address(address)
        self.deploy_block = deploy_block
        self._generations = (
            None if generations is None else tuple(to_checksum_address(g) for g in generations)
        )
        # A reader signs nothing: any address will do as the caller, so a random one.
        self.sender = to_checksum_address(sender or "0x" + secrets.token_hex(20))

    # -- blocks --------------------------------------------------------------------------------

    def chain_id(self) -> int:
        return self.transport.chain_id()

    def head(self) -> BlockHead:
        """The latest block."""
        head = self.transport.block("latest")
        if head is None:
            raise LedgerError("the node has no latest block")
        return head

    def block(self, number: int) -> BlockHead | None:
        return self.transport.block(number)

    # -- calls ---------------------------------------------------------------------------------

    def _calls(
        self, calls: list[bytes], block: BlockRef, contract: str | None = None
    ) -> list[bytes]:
        to = contract or self.address
        try:
            answers = self.transport.call_many(
                [(to, data) for data in calls], sender=self.sender, block=block
            )
        except CallReverted as exc:
            raise (
                decode_revert(exc.data)
                if exc.data
                else ContractNotFound(
                    f"the contract at {self.address} reverted a read: is it a ProvenanceLedger?"
                )
            ) from None
        for answer in answers:
            if not answer:
                raise ContractNotFound(f"no contract answers at {self.address} on this chain")
        return answers

    def _decode(self, types: list[str], data: bytes) -> Any:
        try:
            return decode(types, data)
        except (DecodingError, ValueError, OverflowError) as exc:
            raise ContractNotFound(
                f"the contract at {self.address} does not answer as a ProvenanceLedger ({exc})"
            ) from None

    def records_and_roles(
        self,
        hashes: Sequence[str],
        accounts: Sequence[str],
        block: BlockRef = "latest",
        *,
        contract: str | None = None,
    ) -> tuple[list[ChainRecord | None], list[bool]]:
        """The stored record under each hash (None where nothing is) and whether each account
        holds ``REGISTRAR_ROLE``, all at one block, in one round trip where the transport
        batches (``getRecords`` in chunks of :data:`MAX_RECORDS_PER_CALL`, divided by the
        number of generations an old record's lookup may walk)."""
        size = max(1, MAX_RECORDS_PER_CALL // len(self.generations())) if hashes else 1
        chunks = [list(hashes[i : i + size]) for i in range(0, len(hashes), size)]
        calls = [
            _GET_RECORDS + encode(["bytes32[]"], [[bytes.fromhex(h[2:]) for h in chunk]])
            for chunk in chunks
        ]
        calls += [_HAS_ROLE + encode(["bytes32", "address"], [REGISTRAR_ROLE, a]) for a in accounts]
        if not calls:
            return [], []
        answers = self._calls(calls, block, contract)
        records: list[ChainRecord | None] = []
        for chunk, answer in zip(chunks, answers, strict=False):
            (raw,) = self._decode(["(uint8,bool,uint40,address)[]"], answer)
            if len(raw) != len(chunk):
                raise ContractNotFound(f"getRecords at {self.address} answered the wrong count")
            for record_hash, (kind, revoked, registered_at, registrant) in zip(
                chunk, raw, strict=True
            ):
                records.append(
                    None
                    if kind == RecordKind.NONE
                    else ChainRecord(
                        record_hash=record_hash,
                        kind=RecordKind(kind),
                        revoked=revoked,
                        registered_at=registered_at,
                        registrant=to_checksum_address(registrant),
                    )
                )
        roles = [self._decode(["bool"], a)[0] for a in answers[len(chunks) :]]
        return records, roles

    def records(
        self, hashes: Sequence[str], block: BlockRef = "latest"
    ) -> list[ChainRecord | None]:
        return self.records_and_roles(hashes, (), block)[0]

    def has_role(
        self, account: str, block: BlockRef = "latest", *, contract: str | None = None
    ) -> bool:
        """Whether ``account`` holds ``REGISTRAR_ROLE`` at ``block`` (its post-state) in the
        newest generation, or in the generation ``contract``."""
        return self.records_and_roles((), (account,), block, contract=contract)[1][0]

    def version(self) -> str:
        return self._decode(["string"], self._calls([_VERSION], "latest")[0])[0]

    def generations(self) -> tuple[str, ...]:
        """Every generation of this ledger, newest (:attr:`address`) first, found by asking
        each for its ``predecessor()`` (contracts before 1.2.0 have none and end the chain).
        Only these can have anchored what this reader verifies. Read once per reader."""
        if self._generations is None:
            found = [self.address]
            while len(found) < MAX_GENERATIONS:
                try:
                    [answer] = self.transport.call_many(
                        [(found[-1], _PREDECESSOR)], sender=self.sender, block="latest"
                    )
                except CallReverted:  # 1.0.0 and 1.1.0 have no predecessor()
                    break
                if len(answer) != 32:
                    break
                previous = to_checksum_address(answer[12:])
                if int(previous, 16) == 0 or previous in found:
                    break
                found.append(previous)
            self._generations = tuple(found)
        return self._generations

    def _log_address(self) -> str | list[str]:
        """What ``eth_getLogs`` filters on: this contract, or all its generations."""
        generations = self.generations()
        return generations[0] if len(generations) == 1 else list(generations)

    # -- events --------------------------------------------------------------------------------

    def find(self, event: str, key: str, from_block: int, to_block: BlockRef) -> list[Found]:
        """The ``event`` logs whose first indexed argument is ``key``, in chain order (block,
        log index): sorted here, as a filter over several generations' addresses is not
        required to answer in any order."""
        topics = [TOPICS[event], bytes.fromhex(hash_hex(key)[2:])]
        logs = self.transport.logs(self._log_address(), topics, from_block, to_block)
        logs = sorted(logs, key=lambda log: (log.block_number, log.log_index))
        return [
            Found(self._event(log), log.block_hash, to_checksum_address(log.address))
            for log in logs
        ]

    def role_changes(
        self, account: str, from_block: int, to_block: BlockRef, *, contract: str | None = None
    ) -> list[RoleChange]:
        """``account``'s ``REGISTRAR_ROLE`` grants and revocations in the range, in order, in
        every generation (or only in the generation ``contract``)."""
        account_topic = bytes(12) + bytes.fromhex(to_checksum_address(account)[2:])
        changes = []
        for name, granted in (("RoleGranted", True), ("RoleRevoked", False)):
            topics = [TOPICS[name], REGISTRAR_ROLE, account_topic]
            where = contract or self._log_address()
            for log in self.transport.logs(where, topics, from_block, to_block):
                changes.append(RoleChange(log.block_number, log.log_index, granted, log.block_hash))
        return sorted(changes)

    def _event(self, log: RawLog) -> LedgerEvent:
        try:
            return decode_event(
                log.topics,
                log.data,
                tx_hash=log.tx_hash,
                block_number=log.block_number,
                log_index=log.log_index,
            )
        except (DecodingError, ValueError, OverflowError) as exc:
            raise ContractNotFound(
                f"the contract at {self.address} does not answer as a ProvenanceLedger ({exc})"
            ) from None
