"""ledger.reading.chain_reader and its transports, against the embedded chain and anvil: the
web3-free reader says exactly what the web3 client says, and an address without a ledger is a typed
error, never a decoding one."""

from __future__ import annotations

import os

import pytest
from eth_utils import event_abi_to_log_topic, function_abi_to_4byte_selector

from ledger.chain.contract_artifact import load_artifact
from ledger.errors import ChainUnavailable
from ledger.formats.receipt_signing import ReceiptSigner
from ledger.formats.receipts import ReceiptDomain, input_hash
from ledger.reading._jsonrpc import HttpTransport
from ledger.reading.chain_facts import ChainFacts
from ledger.reading.chain_reader import (
    EVENT_SIGNATURES,
    SELECTORS,
    TOPICS,
    ContractNotFound,
    LedgerReader,
)
from ledger.records import RecordKind, hash_hex
from ledger.verify import verify_model, verify_receipt
from tests.conftest import Deployed


def _h() -> str:
    return hash_hex(os.urandom(32))


def _reader(deployed: Deployed) -> LedgerReader:
    client = deployed.admin
    return LedgerReader(
        client.backend.transport(), client.address, deploy_block=client.deploy_block
    )


def test_selectors_and_topics_are_the_artifacts() -> None:
    abi = load_artifact().abi
    events = {item["name"]: item for item in abi if item["type"] == "event"}
    for name in EVENT_SIGNATURES:
        assert TOPICS[name] == event_abi_to_log_topic(events[name]), name
    functions = {item["name"]: item for item in abi if item["type"] == "function"}
    for name, selector in SELECTORS.items():
        assert function_abi_to_4byte_selector(functions[name]) == selector, name


def test_the_reader_reads_what_the_client_reads(deployed: Deployed) -> None:
    client, admin = deployed.registrar, deployed.admin
    raw, derived, model, batch = _h(), _h(), _h(), _h()
    client.register_dataset(raw, rows_root=_h(), row_count=3, schema_hash=_h())
    client.register_dataset(
        derived, rows_root=_h(), row_count=2, schema_hash=_h(), parents=[raw], transform_hash=_h()
    )
    client.register_model(model, datasets=[derived, raw], metadata_hash=_h())
    client.anchor_predictions(model, batch, 7)
    admin.revoke(raw, "collected without consent")
    reader = _reader(deployed)
    head = reader.head()

    assert reader.records([raw, model, batch, _h()], head.number) == [
        *client.get_records([raw, model, batch]),
        None,
    ]
    assert reader.records([raw])[0].kind is RecordKind.DATASET
    assert reader.has_role(client.account.address) is True
    assert reader.has_role(deployed.outsider.account.address) is False
    assert reader.version() == client.version()
    for name, key, expected in (
        ("DatasetRegistered", derived, client.dataset_registration(derived)),
        ("ModelRegistered", model, client.model_registration(model)),
        ("PredictionsAnchored", batch, client.batch_anchoring(batch)),
        ("RecordRevoked", raw, client.revocation(raw)),
    ):
        [found] = reader.find(name, key, reader.deploy_block, head.number)
        assert found.event == expected, name
        block = reader.block(found.event.block_number)
        assert block is not None and found.block_hash == block.hash
    changes = reader.role_changes(client.account.address, reader.deploy_block, head.number)
    assert [(c.block_number, c.log_index, c.granted) for c in changes] == (
        client.registrar_history(client.account.address)
    )


def test_a_role_read_at_an_old_block_is_that_blocks_state(deployed: Deployed) -> None:
    newcomer = deployed.chain.account().address
    granted = deployed.admin.grant_registrar(newcomer)
    revoked = deployed.admin.revoke_registrar(newcomer)
    reader = _reader(deployed)
    assert reader.has_role(newcomer, granted.block_number - 1) is False
    assert reader.has_role(newcomer, granted.block_number) is True
    assert reader.has_role(newcomer, revoked.block_number) is False


def test_an_address_with_no_ledger_is_contract_not_found(deployed: Deployed) -> None:
    nobody = deployed.outsider.account.address  # an account: no code at all
    reader = LedgerReader(deployed.admin.backend.transport(), nobody)
    with pytest.raises(ContractNotFound, match="no contract answers"):
        reader.records([_h()])
    with pytest.raises(ContractNotFound):
        reader.version()
    # ...and through verification with a client pointed at it, as `provenance verify` would be
    # (web3 used to let BadFunctionCallOutput escape here).
    stray = deployed.as_account(deployed.chain.account())
    stray.address = nobody
    with pytest.raises(ContractNotFound):
        verify_model(_h(), ChainFacts.for_client(stray))
    signer = ReceiptSigner(os.urandom(32), ReceiptDomain(31337, nobody))
    receipt = signer.sign(model_hash=_h(), input_hash=input_hash({"x": 1}), output=1)
    with pytest.raises(ContractNotFound):
        verify_receipt(receipt, ChainFacts.for_client(stray), anchoring=None)


def test_http_transport_errors_are_typed() -> None:
    with pytest.raises(ValueError, match="not an http"):
        HttpTransport("ftp://example.org")
    unreachable = HttpTransport("http://127.0.0.1:9", timeout=2)
    with pytest.raises(ChainUnavailable):
        unreachable.chain_id()


@pytest.mark.anvil
def test_http_transport_batches_calls(anvil_node) -> None:  # type: ignore[no-untyped-def]
    transport = HttpTransport(anvil_node.url)
    results = transport.batch([("eth_chainId", []), ("eth_blockNumber", [])])
    assert int(results[0], 16) == transport.chain_id()
    assert int(results[1], 16) >= 0
