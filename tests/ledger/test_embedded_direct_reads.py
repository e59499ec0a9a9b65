"""The embedded chain's direct reads of blocks and receipts (py-evm, no web3) answer what web3's
reads answer, for the fields the write path uses, and refuse what web3 refuses."""

from __future__ import annotations

from pathlib import Path

import pytest
from web3.exceptions import BlockNotFound

from ledger.chain.backends.base import ChainBackend
from ledger.chain.backends.embedded import ChainClosedError, EmbeddedBackend
from tests.ledger.test_embedded_backend import backend, funded_writer  # noqa: F401 - a fixture

BLOCK_FIELDS = ("number", "hash", "parentHash", "timestamp", "gasLimit", "baseFeePerGas")


def _web3_block(chain: EmbeddedBackend, ref: int | str) -> dict[str, object]:
    block = chain.w3.eth.get_block(ref)  # type: ignore[arg-type]
    return {key: block[key] for key in (*BLOCK_FIELDS, "transactions")}


def test_blocks_read_directly_equal_web3s(backend: EmbeddedBackend) -> None:  # noqa: F811
    writer = funded_writer(backend)
    contract = writer.deploy()
    receipt = writer.record(contract, 1, 2)
    head = backend.w3.eth.block_number
    for ref in (0, receipt["blockNumber"], "latest", receipt["blockHash"].to_0x_hex()):
        assert dict(backend.read_block(ref)) == _web3_block(backend, ref)
    assert backend.read_block("latest")["number"] == head
    assert backend.read_block(receipt["blockNumber"])["transactions"] == [
        receipt["transactionHash"]
    ]
    with pytest.raises(BlockNotFound):
        backend.read_block(head + 1)
    with pytest.raises(BlockNotFound):
        backend.read_block("0x" + "ab" * 32)


def test_receipts_read_directly_equal_web3s(backend: EmbeddedBackend) -> None:  # noqa: F811
    writer = funded_writer(backend)
    contract = writer.deploy()
    created = backend.w3.eth.get_transaction_receipt(
        backend.w3.eth.get_block("latest")["transactions"][0]
    )
    recorded = writer.record(contract, 3, 4)
    for receipt in (created, recorded):
        expected = {k: v for k, v in dict(receipt).items() if k != "state_root"}
        expected["logs"] = [dict(log) for log in receipt["logs"]]
        direct = backend.read_receipt(receipt["transactionHash"].to_0x_hex())
        assert direct == expected
        # the generic read (web3's) is what the direct one stands in for
        web3_read = ChainBackend.read_receipt(backend, receipt["transactionHash"].to_0x_hex())
        assert web3_read is not None and web3_read["logs"] == receipt["logs"]
    assert backend.read_receipt(created["transactionHash"].to_0x_hex())["contractAddress"] == (
        contract
    )
    assert backend.read_receipt("0x" + "cd" * 32) is None
    assert ChainBackend.read_receipt(backend, "0x" + "cd" * 32) is None


def test_a_closed_chain_refuses_direct_reads(tmp_path: Path) -> None:
    chain = EmbeddedBackend(tmp_path)
    chain.close()
    with pytest.raises(ChainClosedError):
        chain.read_block("latest")
    with pytest.raises(ChainClosedError):
        chain.read_receipt("0x" + "cd" * 32)
