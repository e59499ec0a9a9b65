"""The embedded chain's direct sends and reads (eth-tester and py-evm, no web3) do what web3's
do, for the fields the write path uses, and refuse what web3 refuses."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from eth_utils import keccak
from web3.exceptions import BlockNotFound

from ledger.chain._transactor import Transactor
from ledger.chain.backends.base import ChainBackend
from ledger.chain.backends.embedded import ChainClosedError, EmbeddedBackend
from ledger.errors import TransactionFailed
from tests.ledger.test_embedded_backend import (  # noqa: F401 - backend: a fixture
    MAX_FEE,
    PRIORITY_FEE,
    WRITE_GAS,
    backend,
    funded_writer,
    read_slot,
    word,
)

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
    assert backend.read_block("latest")["number"] == head == backend.head_number()
    assert backend.read_block("earliest")["number"] == 0  # a tag read through web3
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


def test_a_raw_send_is_mined_at_once_and_refused_as_through_web3(
    backend: EmbeddedBackend,  # noqa: F811
) -> None:
    writer = funded_writer(backend)
    contract = writer.deploy()

    def signed(nonce: int, key: int) -> bytes:
        return writer.account.sign_transaction(
            {
                "chainId": writer.chain_id,
                "nonce": nonce,
                "maxFeePerGas": MAX_FEE,
                "maxPriorityFeePerGas": PRIORITY_FEE,
                "value": 0,
                "to": contract,
                "data": word(key) + word(key + 1),
                "gas": WRITE_GAS,
            }
        ).raw_transaction

    raw = signed(writer.nonce, 9)
    backend.send_raw(raw)
    receipt = backend.read_receipt(keccak(raw).hex())
    assert receipt is not None and receipt["status"] == 1
    assert read_slot(backend.w3, contract, 9) == 10
    reused = signed(writer.nonce, 11)  # the nonce just taken
    with pytest.raises(Exception) as through_web3:
        backend.w3.eth.send_raw_transaction(reused)
    with pytest.raises(type(through_web3.value)):
        backend.send_raw(reused)
    assert read_slot(backend.w3, contract, 11) == 0


def test_a_closed_chain_refuses_direct_sends_and_reads(tmp_path: Path) -> None:
    chain = EmbeddedBackend(tmp_path)
    chain.close()
    with pytest.raises(ChainClosedError):
        chain.send_raw(b"\x02")
    with pytest.raises(ChainClosedError):
        chain.head_number()
    with pytest.raises(ChainClosedError):
        chain.read_block("latest")
    with pytest.raises(ChainClosedError):
        chain.read_receipt("0x" + "cd" * 32)


def test_the_transactor_waits_for_a_receipt_and_gives_up_at_its_timeout() -> None:
    with EmbeddedBackend(None) as chain:
        writer = funded_writer(chain)
        contract = writer.deploy()
        transactor = Transactor(chain, writer.account, receipt_timeout=0.3)
        receipt = transactor.send({"to": contract, "data": word(5) + word(6)}, gas=WRITE_GAS)
        assert receipt["status"] == 1 and read_slot(chain.w3, contract, 5) == 6
        started = time.monotonic()
        with pytest.raises(TransactionFailed, match="no receipt for 0xabab"):
            transactor.wait("0x" + "ab" * 32)
        assert time.monotonic() - started >= 0.3
