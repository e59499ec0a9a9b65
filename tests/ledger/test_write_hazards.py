"""The write pipeline on a hostile chain (anvil, blocks mined by the test): reorganisations,
dropped transactions, a node that lost its pool, fee spikes.

A reorganisation shallower than the confirmations takes a mined write out of its block before it
is final: the pipeline notices at the next head (the block hash it remembered is gone), sends
the journaled bytes again at the same nonce and answers once the write is final. One deeper than
the confirmations takes a final block away: the index finds the fork point, and the pipeline
re-sends its own transactions of the orphaned blocks from the journal. Either way every record
ends on the canonical chain, each nonce is mined once, and nothing is signed anew.

A transaction the node lost is handed over again as it was, and a nonce gap nothing journaled
can fill is filled with a transfer of nothing; a fee spike over the ceiling holds writes (with
the reason) and never gets a transaction signed above it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_utils import keccak

from ledger.chain.backends.rpc import RpcBackend
from ledger.chain.client import LedgerClient
from ledger.chain.devnode import AnvilNode, anvil_binary
from ledger.index.sqlite import LedgerIndex
from ledger.records import DatasetInput, hash_hex
from ledger.writes._journal import TxJournal
from ledger.writes.pipeline import WritePipeline
from tests.conftest import ETHER

pytestmark = [
    pytest.mark.anvil,
    pytest.mark.skipif(anvil_binary() is None, reason="anvil not installed"),
]
TIMEOUT = 60.0  # seconds; only ever reached when something is broken


def h(n: int) -> str:
    return hash_hex(keccak(n.to_bytes(32, "big")))


def dataset(n: int) -> DatasetInput:
    return DatasetInput(h(n), rows_root=h(900 + n), row_count=n, schema_hash=h(901))


def _wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting until {what}")
        time.sleep(0.02)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AnvilNode]:
    with AnvilNode(tmp_path_factory.mktemp("anvil-reorgs")) as anvil:
        anvil.rpc("evm_setAutomine", False)  # blocks come when a test mines them
        yield anvil


def _deployed(node: AnvilNode, confirmations: int) -> tuple[LedgerClient, Any]:
    account = Account.create()
    node.set_balance(account.address, 100 * ETHER)
    node.rpc("evm_setAutomine", True)
    try:
        admin, _ = LedgerClient.deploy(RpcBackend(node.url), account)
    finally:
        node.rpc("evm_setAutomine", False)
    client = LedgerClient(
        RpcBackend(node.url, confirmations=confirmations),
        account,
        admin.address,
        deploy_block=admin.deploy_block,
    )
    return client, account


def _pooled(node: AnvilNode, address: str) -> int:
    return len(_pool_hashes(node, address))


def _pool_hashes(node: AnvilNode, address: str) -> list[str]:
    """The hashes of ``address``'s transactions in the pool, pending or queued behind a gap."""
    content = node.rpc("txpool_content")
    return [
        tx["hash"]
        for part in ("pending", "queued")
        for sender, txs in content[part].items()
        if sender.lower() == address.lower()
        for tx in txs.values()
    ]


def _mined_nonces(node: AnvilNode, address: str, first_block: int) -> list[int]:
    head = int(node.rpc("eth_blockNumber"), 16)
    nonces = []
    for number in range(first_block, head + 1):
        for tx in node.rpc("eth_getBlockByNumber", hex(number), True)["transactions"]:
            if tx["from"].lower() == address.lower():
                nonces.append(int(tx["nonce"], 16))
    return nonces


def test_a_reorganisation_before_finality_sends_the_same_bytes_again(
    node: AnvilNode, tmp_path: Path
) -> None:
    client, account = _deployed(node, confirmations=2)
    journal = tmp_path / "writes.sqlite3"
    writes = WritePipeline(client, journal=TxJournal(journal), poll_interval=0.02)
    future = writes.submit(dataset(1))
    _wait_until(lambda: _pooled(node, account.address) == 1, "the write is in the pool")
    node.mine()
    _wait_until(lambda: TxJournal(journal).entries()[0].block_number is not None, "it is mined")
    [entry] = TxJournal(journal).entries()
    assert not future.done()  # mined, not final: not answered yet
    node.rpc("anvil_reorg", 1, [])  # its block replaced by an empty one
    assert client.get_records([h(1)]) == [None]
    _wait_until(lambda: _pooled(node, account.address) == 1, "it is sent again")
    assert writes.deepest_reorg >= 1
    node.mine()
    _wait_until(lambda: client.get_records([h(1)]) != [None], "it is mined again")
    assert not future.done()
    node.mine(2)
    included = future.result(TIMEOUT)
    assert included.tx_hash == entry.variants[-1].tx_hash  # the same signed bytes
    assert _mined_nonces(node, account.address, client.deploy_block + 1) == [entry.nonce]
    _wait_until(lambda: not TxJournal(journal).entries(), "the journal marks it done")
    writes.close()


def test_a_reorganisation_past_finality_is_rewound_and_re_sent_from_the_journal(
    node: AnvilNode, tmp_path: Path
) -> None:
    client, account = _deployed(node, confirmations=0)
    writes = WritePipeline(client, journal=TxJournal(tmp_path / "w.sqlite3"), poll_interval=0.02)
    index = LedgerIndex(tmp_path / "index.sqlite3")
    index.on_rewind = lambda rewind: writes.resend_orphaned(rewind.tx_hashes)
    answered = []
    for n in (1, 2):  # two writes, two blocks, each final (answered) at once
        future = writes.submit(dataset(n))
        _wait_until(lambda: _pooled(node, account.address) == 1, "the write is in the pool")
        node.mine()
        answered.append(future.result(TIMEOUT))
    index.sync(client)
    assert index.dataset(h(2)) is not None
    node.rpc("anvil_reorg", 2, [])  # both blocks gone, after both writes were answered
    assert client.get_records([h(1), h(2)]) == [None, None]
    index.sync(client)  # finds the fork point and hands the orphaned transactions over
    assert index.dataset(h(1)) is None and index.dataset(h(2)) is None
    assert writes.recent(h(1)) is None  # not reported as registered while off the chain
    _wait_until(lambda: _pooled(node, account.address) == 2, "both are sent again")
    retry = writes.submit(dataset(2))  # a client asking again joins the re-sent write
    node.mine()
    assert retry.result(TIMEOUT).tx_hash == answered[1].tx_hash
    _wait_until(lambda: writes.waiting == 0 and not writes._in_flight, "both are final again")
    index.sync(client)
    assert [index.dataset(h(n)).registration.tx_hash for n in (1, 2)] == [
        a.tx_hash for a in answered
    ]
    nonces = _mined_nonces(node, account.address, client.deploy_block + 1)
    assert len(nonces) == 2 and nonces[1] == nonces[0] + 1  # each nonce mined once
    writes.close()
    index.close()


# -- nonces that heal ---------------------------------------------------------------------------


def test_a_transaction_dropped_from_the_pool_is_sent_again_and_unblocks_the_next(
    node: AnvilNode, tmp_path: Path
) -> None:
    client, account = _deployed(node, confirmations=0)
    writes = WritePipeline(client, journal=TxJournal(tmp_path / "w.sqlite3"), poll_interval=0.02)
    first = writes.submit(dataset(1))
    _wait_until(lambda: _pooled(node, account.address) == 1, "the first is in the pool")
    [dropped] = _pool_hashes(node, account.address)
    second = writes.submit(dataset(2))  # the next nonce, behind it
    _wait_until(lambda: _pooled(node, account.address) == 2, "the second is in the pool")
    node.rpc("anvil_dropTransaction", dropped)  # anvil drops the one behind it too
    assert dropped not in _pool_hashes(node, account.address)
    node.mine()  # mines nothing of ours
    _wait_until(lambda: _pooled(node, account.address) == 2, "both are sent again")
    node.mine()
    assert first.result(TIMEOUT).tx_hash == dropped  # the same signed bytes, no fee raised
    second.result(TIMEOUT)
    nonces = _mined_nonces(node, account.address, client.deploy_block + 1)
    assert len(nonces) == 2 and nonces[1] == nonces[0] + 1
    writes.close()


def test_a_gap_nothing_journaled_fills_is_filled_with_a_transfer_to_itself(
    node: AnvilNode, tmp_path: Path
) -> None:
    client, account = _deployed(node, confirmations=0)
    transactor = client.transactor
    stray = transactor.broadcast(  # sent outside any pipeline and journal...
        {"to": account.address, "data": "0x"}, gas=30_000
    )
    node.rpc("anvil_dropTransaction", stray.tx_hash)  # ...and lost
    writes = WritePipeline(client, journal=TxJournal(tmp_path / "w.sqlite3"), poll_interval=0.02)
    future = writes.submit(dataset(3))
    _wait_until(lambda: _pooled(node, account.address) == 1, "the write is in the pool")
    node.mine()  # nothing mined: nonce `stray.nonce` is missing
    _wait_until(lambda: _pooled(node, account.address) == 2, "the gap is filled")
    node.mine()
    assert future.result(TIMEOUT).created
    head = int(node.rpc("eth_blockNumber"), 16)
    txs = node.rpc("eth_getBlockByNumber", hex(head), True)["transactions"]
    filled = next(tx for tx in txs if int(tx["nonce"], 16) == stray.nonce)
    assert filled["hash"] != stray.tx_hash and int(filled["gas"], 16) == 21_000
    assert filled["to"].lower() == account.address.lower() and int(filled["value"], 16) == 0
    writes.close()


def test_a_node_restarted_without_its_pool_gets_the_writes_again(tmp_path: Path) -> None:
    state = tmp_path / "anvil-state.json"
    node = AnvilNode(tmp_path / "anvil", state=state, mining=False)
    try:
        client, account = _deployed(node, confirmations=0)
        node.mine()
        writes = WritePipeline(
            client, journal=TxJournal(tmp_path / "w.sqlite3"), poll_interval=0.02
        )
        futures = [writes.submit(dataset(n)) for n in (1, 2)]

        def sent() -> bool:
            flying = sum(len(f.writes) for f in writes._in_flight)
            return flying == 2 and _pooled(node, account.address) == len(writes._in_flight)

        _wait_until(sent, "both are sent")  # in one transaction or two
        transactions = len(writes._in_flight)
        port = node.port
        node.stop()  # its state (the chain) is saved; its pool is not
        node = AnvilNode(tmp_path / "anvil", state=state, mining=False, port=port)
        assert _pooled(node, account.address) == 0
        node.mine()
        _wait_until(lambda: _pooled(node, account.address) == transactions, "they are sent again")
        node.mine()
        for future in futures:
            assert future.result(TIMEOUT).created
        writes.close()
    finally:
        node.stop()


# -- the fee ceiling ----------------------------------------------------------------------------

GWEI = 10**9


def _base_fee(node: AnvilNode) -> int:
    return int(node.rpc("eth_getBlockByNumber", "latest", False)["baseFeePerGas"], 16)


def test_nothing_is_signed_above_the_fee_ceiling_and_writes_resume_when_fees_fall(
    node: AnvilNode, tmp_path: Path
) -> None:
    client, account = _deployed(node, confirmations=0)
    client.transactor.max_fee_per_gas = 50 * GWEI
    journal = tmp_path / "w.sqlite3"
    writes = WritePipeline(
        client, journal=TxJournal(journal), poll_interval=0.02, resend_after_blocks=1
    )
    # 1. In the pool, then the base fee spikes past what it pays: re-sent with higher fees up
    #    to the ceiling, never past it, and then it waits with the reason.
    stuck = writes.submit(dataset(1))
    _wait_until(lambda: _pooled(node, account.address) == 1, "the write is in the pool")
    node.rpc("anvil_setNextBlockBaseFeePerGas", hex(200 * GWEI))
    node.mine()  # the spike: 200 gwei, the write (a few gwei) waits in the pool

    def held() -> bool:
        if writes.waiting_for is not None:
            return True
        node.mine()  # blocks go by; each may bring a replacement
        return False

    _wait_until(held, "the write waits with its reason")
    assert "PROVENANCE_MAX_FEE_PER_GAS" in writes.waiting_for
    # 2. A new write is not signed at all while the base fee is over the ceiling.
    queued = writes.submit(dataset(2))
    _wait_until(lambda: writes.pending(h(2)) not in (None, "queued"), "it is held")
    assert "queued (" in writes.pending(h(2))
    assert not stuck.done() and not queued.done()
    fees = [v.max_fee for e in TxJournal(journal).entries() for v in e.variants]
    assert fees and max(fees) <= 50 * GWEI
    # 3. The fee falls: both go out, and are mined.
    node.rpc("anvil_setNextBlockBaseFeePerGas", hex(GWEI))
    node.mine()
    assert _base_fee(node) == GWEI

    def mined() -> bool:
        if stuck.done() and queued.done():
            return True
        node.mine()
        return False

    _wait_until(mined, "both are mined")
    for future in (stuck, queued):
        tx = node.rpc("eth_getTransactionByHash", future.result(TIMEOUT).tx_hash)
        assert int(tx["maxFeePerGas"], 16) <= 50 * GWEI
    assert writes.waiting_for is None
    writes.close()
