"""The index follower's raw reads (``ledger/index/_raw.py``) give what web3's give: the same
decoded events of the same blocks, the same block hashes and timestamps; on the embedded chain,
and on an error answer, they read nothing and the sync reads through web3 as before."""

from __future__ import annotations

from ledger.index._raw import UNREAD, _result, block_header, ledger_logs
from ledger.records import hash_hex
from tests.ledger.test_index_receipts import dataset, h


def test_raw_reads_equal_web3_reads(chain, deployed):
    client = deployed.registrar
    first = client.latest_block() + 1
    client.register_datasets([dataset(1), dataset(2)])
    client.register_datasets([dataset(3, parents=(h(1), h(2)))])
    client.revoke(h(2), "withdrawn")
    last = client.latest_block()
    raw = ledger_logs(client, first, last)
    if chain.name == "embedded":  # no node to ask: the sync reads through web3
        assert raw is UNREAD and block_header(client, last) is UNREAD
        return
    through_web3 = client.events(first, last)
    assert len(through_web3) >= 4 and raw == through_web3
    for number in range(first, last + 1):
        block = client.get_block(number)
        assert block_header(client, number) == (hash_hex(bytes(block["hash"])), block["timestamp"])
    assert block_header(client, last + 1000) is None  # no such block: as BlockNotFound


def test_an_error_answer_is_left_to_web3(chain, deployed):
    if chain.name == "embedded":
        return
    assert _result(deployed.registrar, "eth_noSuchMethod", []) is UNREAD  # the node's error
