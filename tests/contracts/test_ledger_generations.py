"""Contract generations (1.2.0): a successor names its predecessor once, at construction, and
answers every record it does not hold by asking it, so new writes may build on records of any
earlier generation and revoke them; a first generation never asks anyone.

Generation 1 is deployed from the released artifacts (1.0.0 and 1.1.0, kept in
``tests/fixtures/contracts``) and from today's, on every backend."""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_utils import keccak

from ledger.chain.client import LedgerClient
from ledger.chain.contract_artifact import load_artifact
from ledger.errors import (
    AlreadyRevoked,
    DatasetAlreadyRegistered,
    DeploymentMismatch,
    ModelAlreadyRegistered,
    NotAuthorized,
    RecordIsRevoked,
    UnknownDataset,
    UnknownModel,
    UnknownRecord,
)
from ledger.formats.events import TOPICS
from ledger.records import ZERO_HASH, DatasetInput, RecordKind, RecordRevoked, hash_hex

FIXTURES = Path(__file__).parents[1] / "fixtures" / "contracts"
RELEASES = {v: FIXTURES / f"ProvenanceLedger-{v}.json" for v in ("1.0.0", "1.1.0")}


def h(n: int) -> str:
    return hash_hex(keccak(n.to_bytes(32, "big")))


def register(client, content_hash, parents=()):
    return client.register_dataset(
        content_hash,
        rows_root=h(900),
        row_count=42,
        schema_hash=h(901),
        transform_hash=h(903) if parents else ZERO_HASH,
        parents=parents,
    )


def old_artifact(version: str):
    return load_artifact() if version == "1.2.0" else load_artifact(RELEASES[version])


@pytest.fixture(params=["1.0.0", "1.1.0", "1.2.0"])
def generations(request, chain):
    """Generation 1 (of the given version) holding datasets 1-2, model 10, batch 20, the
    dataset 3 revoked; generation 2 succeeding it; an outside registrar of generation 1."""
    admin = chain.account()
    first, _ = LedgerClient.deploy(chain.backend, admin, artifact=old_artifact(request.param))
    register(first, h(1))
    register(first, h(2), parents=[h(1)])
    register(first, h(3))
    first.revoke(h(3), "bad rows")
    first.register_model(h(10), datasets=[h(2)], metadata_hash=h(904))
    first.anchor_predictions(h(10), h(20), 4)
    outsider = chain.account()
    first.grant_registrar(outsider.address)
    second, deployment = LedgerClient.deploy(chain.backend, admin, predecessor=first.address)
    return first, second, deployment, outsider, request.param


def test_a_first_generation_has_no_predecessor(deployed):
    assert deployed.admin.predecessor() is None
    assert deployed.admin.version() == "1.2.0"


def test_the_successor_names_its_predecessor_and_announces_it(generations, chain):
    first, second, deployment, _, version = generations
    assert first.version() == version
    assert second.predecessor() == first.address
    logs = chain.backend.w3.eth.get_logs(
        {
            "address": second.address,
            "fromBlock": deployment.block_number,
            "toBlock": deployment.block_number,
            "topics": ["0x" + keccak(b"PredecessorSet(address)").hex()],
        }
    )
    assert len(logs) == 1
    assert logs[0]["topics"][1][12:] == bytes.fromhex(first.address[2:])


def test_a_predecessor_without_code_is_refused(chain):
    with pytest.raises(DeploymentMismatch, match="holds no code"):
        LedgerClient.deploy(chain.backend, chain.account(), predecessor="0x" + "11" * 20)


def test_reads_fall_back_to_the_predecessor(generations):
    first, second, _, _, _ = generations
    register(second, h(4))
    records = second.get_records([h(1), h(3), h(10), h(20), h(4), h(99)])
    assert [r.kind if r else None for r in records] == [
        RecordKind.DATASET,
        RecordKind.DATASET,
        RecordKind.MODEL,
        RecordKind.BATCH,
        RecordKind.DATASET,
        None,
    ]
    assert records[0].registrant == first.account.address
    assert records[1].revoked
    assert second.get_dataset(h(1)).registered_at == records[0].registered_at
    assert second.get_model(h(10)).kind is RecordKind.MODEL
    assert second.is_revoked(h(3)) and not second.is_revoked(h(1))
    assert second.verify_prediction(h(20), h(20), []) is True  # a one-leaf batch: leaf == root
    with pytest.raises(UnknownDataset):
        second.get_dataset(h(10))  # the model is no dataset, in any generation
    with pytest.raises(UnknownRecord):
        second.is_revoked(h(99))


def test_writes_build_on_records_of_the_predecessor(generations):
    _first, second, _, _, _ = generations
    register(second, h(5), parents=[h(2)])  # a parent of generation 1
    second.register_model(h(11), datasets=[h(5), h(1)], metadata_hash=h(904))
    second.anchor_predictions(h(10), h(21), 2)  # a model of generation 1
    second.register_datasets([DatasetInput(h(6), h(900), 1, h(901), h(902), (h(1),), h(903))])
    with pytest.raises(RecordIsRevoked):
        register(second, h(7), parents=[h(3)])  # revoked in generation 1
    with pytest.raises(UnknownDataset):
        register(second, h(7), parents=[h(99)])
    with pytest.raises(UnknownModel):
        second.anchor_predictions(h(1), h(22), 2)  # a dataset of generation 1 is no model


def test_write_once_holds_across_generations(generations):
    _, second, _, _, _ = generations
    with pytest.raises(DatasetAlreadyRegistered):
        register(second, h(1))
    with pytest.raises(ModelAlreadyRegistered):
        second.register_model(h(10), datasets=[h(1)], metadata_hash=h(904))


def test_a_record_of_the_predecessor_is_revoked_through_the_successor(generations):
    first, second, _, _, _ = generations
    result = second.revoke(h(1), "withdrawn by the data owner")
    [event] = [e for e in second.events(result.block_number, result.block_number)]
    assert isinstance(event, RecordRevoked)
    assert (event.record_hash, event.kind, event.revoker) == (
        h(1),
        RecordKind.DATASET,
        second.account.address,
    )
    record = second.get_dataset(h(1))
    assert record.revoked and record.registrant == first.account.address
    assert not first.get_dataset(h(1)).revoked  # the old generation answers what it knew
    with pytest.raises(RecordIsRevoked):
        register(second, h(8), parents=[h(1)])
    with pytest.raises(AlreadyRevoked):
        second.revoke(h(1), "again")
    with pytest.raises(AlreadyRevoked):
        second.revoke(h(3), "revoked in generation 1 already")
    with pytest.raises(UnknownRecord):
        second.revoke(h(99), "nothing")


def test_revoking_an_older_record_checks_roles_as_for_one_held_here(generations, chain):
    first, second, _, outsider, _ = generations
    # the outsider registered in generation 1 but holds no role in generation 2
    register(
        first.__class__(chain.backend, outsider, first.address, artifact=first._artifact), h(30)
    )
    as_outsider = LedgerClient(chain.backend, outsider, second.address)
    with pytest.raises(NotAuthorized):
        as_outsider.revoke(h(30), "mine")
    second.grant_registrar(outsider.address)
    with pytest.raises(NotAuthorized):
        as_outsider.revoke(h(1), "not mine")  # registered by the admin
    as_outsider.revoke(h(30), "mine")
    assert second.is_revoked(h(30))


def test_three_generations_chain_their_lookups(generations, chain):
    _first, second, _, _, _ = generations
    register(second, h(40), parents=[h(1)])
    second.revoke(h(2), "through generation 2")
    third, _ = LedgerClient.deploy(chain.backend, second.account, predecessor=second.address)
    assert third.predecessor() == second.address
    records = third.get_records([h(1), h(2), h(3), h(40)])
    assert [r.revoked for r in records] == [False, True, True, False]
    register(third, h(41), parents=[h(1), h(40)])  # generations 1 and 2 at once
    third.revoke(h(40), "through generation 3")
    third.revoke(h(10), "a model of generation 1, through generation 3")
    assert third.is_revoked(h(10)) and not second.is_revoked(h(10))
    with pytest.raises(DatasetAlreadyRegistered):
        register(third, h(1))
    with pytest.raises(RecordIsRevoked):
        third.anchor_predictions(h(10), h(23), 1)


def test_the_successor_emits_its_events_from_its_own_address(generations, chain):
    _first, second, _, _, _ = generations
    result = register(second, h(50), parents=[h(1)])
    receipt = chain.backend.w3.eth.get_transaction_receipt(result.tx_hash)
    assert {log["address"] for log in receipt["logs"]} == {second.address}
    assert bytes(receipt["logs"][0]["topics"][0]) == TOPICS["DatasetRegistered"]


def test_a_reader_follows_every_generation(generations, chain, monkeypatch):
    """The web3-free reader verification runs on: from the newest, it finds every generation
    through predecessor(), reads records through the newest, finds events in the generation
    that logged them, and asks for fewer records per call the more generations there are."""
    from ledger.reading import chain_reader
    from ledger.reading.chain_reader import LedgerReader

    first, second, _, _, _ = generations
    third, _ = LedgerClient.deploy(chain.backend, second.account, predecessor=second.address)
    register(third, h(60), parents=[h(1)])
    third.revoke(h(2), "through generation 3")
    reader = LedgerReader(chain.backend.transport(), third.address)
    assert reader.generations() == (third.address, second.address, first.address)
    assert LedgerReader(chain.backend.transport(), first.address).generations() == (first.address,)
    monkeypatch.setattr(chain_reader, "MAX_RECORDS_PER_CALL", 3)  # one hash a call here
    records = reader.records([h(1), h(2), h(60), h(99)])
    assert [(r.kind, r.revoked) if r else None for r in records] == [
        (RecordKind.DATASET, False),
        (RecordKind.DATASET, True),
        (RecordKind.DATASET, False),
        None,
    ]
    [old] = reader.find("DatasetRegistered", h(1), 0, "latest")
    [new] = reader.find("DatasetRegistered", h(60), 0, "latest")
    [revoked] = reader.find("RecordRevoked", h(2), 0, "latest")
    assert (old.contract, new.contract, revoked.contract) == (
        first.address,
        third.address,
        third.address,
    )


def test_without_an_index_the_revocation_that_counts_is_quoted(generations, chain):
    """A record revoked in both generations (an older generation knows nothing of its
    successor, so it still takes its own registrars' revocations): a verifier with no index
    (the CLI's: it scans the node from the newest generation) quotes the revocation the newest
    generation counts, the first in chain order, whichever order the node lists them in, and
    never an older generation's revocation of its own later copy of a hash the newer
    generation registered first."""
    from ledger.reading.chain_facts import ChainFacts
    from ledger.reading.chain_reader import LedgerReader
    from ledger.verification.lineage_checks import revocation_check

    old, second, _, _, version = generations
    first = LedgerClient(  # the same admin, its nonces owned by one transactor
        chain.backend,
        old.account,
        old.address,
        artifact=old_artifact(version),
        transactor=second.transactor,
    )
    second.revoke(h(1), "revoked through generation 2")  # the first: it stands...
    first.revoke(h(1), "revoked again in generation 1")  # ...not this one
    register(second, h(40))  # generation 2 registers a hash...
    register(first, h(40))  # ...which generation 1, knowing nothing of it, registers too
    first.revoke(h(40), "generation 1 revokes its own copy")  # earlier, but not counted
    second.revoke(h(40), "revoked through generation 2")

    def facts() -> ChainFacts:
        if chain.node is not None:  # exactly the CLI's reader, over HTTP
            from api.cli.verify import chain_facts

            return chain_facts(chain.node.url, second.address)
        return ChainFacts(LedgerReader(chain.backend.transport(), second.address))

    for listed in ("in chain order", "oldest generation first"):
        verifier = facts()
        if listed != "in chain order":  # a node may list a filter's logs in any order
            transport = verifier.reader.transport

            def oldest_first(*args, _logs=transport.logs, **kwargs):
                newest = second.address.lower()
                return sorted(_logs(*args, **kwargs), key=lambda log: log.address.lower() == newest)

            transport.logs = oldest_first  # type: ignore[method-assign]
        snapshot = verifier.snapshot()
        for record in (h(1), h(40)):
            located = verifier.event("RecordRevoked", record, snapshot)
            assert located.contract == second.address, (listed, record)
            assert located.event.reason == "revoked through generation 2", (listed, record)
            check = revocation_check(verifier, snapshot, "dataset_not_revoked", record, "dataset")
            assert check.ok is False and "(revoked through generation 2, block" in check.detail
