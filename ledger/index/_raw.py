"""The index follower's chain reads on RPC nodes, taken as the node sends them.

Every head (a second on anvil ``--block-time 1``) the follower reads the new blocks' ledger logs
(``eth_getLogs``) and a few block headers (``eth_getBlockByNumber``: the last indexed block's hash,
the head's, each event block's timestamp). Through web3 each answer passes its middlewares and
result formatters: every log becomes an ``AttributeDict`` of ``HexBytes`` with a checksummed
address, every block header likewise with all its fields, which the index then turns back into
hex strings. Under issue 21's acceptance load (some 130 records a block) that was about 5% of the
service's CPU (py-spy ``--gil``), two thirds of it in those formatters.

Here the same JSON-RPC calls go to the node's provider directly and the index's own decoder
(:func:`~ledger.formats.events.decode_event`) reads the logs: the same events, the same hashes,
the same timestamps (``tests/ledger/test_index_raw.py`` holds them equal to web3's on anvil).
Connection failures are :class:`~ledger.errors.ChainUnavailable` as through web3 (``guard``).
Whatever is not plain (an error answer, an embedded chain, whose provider is not a node) gives
:data:`UNREAD`, and the caller reads it through web3 as before, which raises or answers exactly
as it always did.
"""

from __future__ import annotations

from typing import Any, Final

from ledger.chain._transactor import guard
from ledger.chain.client import LedgerClient
from ledger.formats.events import LedgerEvent, decode_event
from ledger.records import hash_hex

__all__ = ["UNREAD", "block_header", "ledger_logs"]


class _Unread:
    """Not read here: read it through web3."""

    def __repr__(self) -> str:
        return "UNREAD"


UNREAD: Final = _Unread()


def _result(client: LedgerClient, method: str, params: list[Any]) -> Any:
    """The node's ``result`` for one call, or :data:`UNREAD`."""
    backend = client.backend
    if backend.kind == "embedded":
        return UNREAD
    provider = backend.w3.provider
    answer = guard(lambda: provider.make_request(method, params))  # type: ignore[arg-type]
    if not isinstance(answer, dict) or "error" in answer or "result" not in answer:
        return UNREAD
    return answer["result"]


def block_header(client: LedgerClient, number: int) -> tuple[str, int] | _Unread | None:
    """Block ``number``'s hash (0x lowercase) and timestamp; None if the chain has no such
    block (a node reset, or a head that moved back); or :data:`UNREAD`."""
    block = _result(client, "eth_getBlockByNumber", [hex(number), False])
    if block is UNREAD or block is None:
        return block
    return hash_hex(bytes.fromhex(block["hash"][2:])), int(block["timestamp"], 16)


def ledger_logs(client: LedgerClient, low: int, high: int) -> list[LedgerEvent] | _Unread:
    """Every event the ledger's only generation logged in blocks ``low..high``, in chain order,
    decoded as :meth:`LedgerClient.events` decodes them; or :data:`UNREAD`."""
    if len(client.generations) != 1:
        return UNREAD
    query = {"address": client.address, "fromBlock": hex(low), "toBlock": hex(high)}
    logs = _result(client, "eth_getLogs", [query])
    if logs is UNREAD:
        return UNREAD
    return [
        decode_event(
            [bytes.fromhex(topic[2:]) for topic in log["topics"]],
            bytes.fromhex(log["data"][2:]),
            tx_hash=hash_hex(bytes.fromhex(log["transactionHash"][2:])),
            block_number=int(log["blockNumber"], 16),
            log_index=int(log["logIndex"], 16),
        )
        for log in logs
    ]
