"""The batch writes (``registerDatasets``, ``registerModels``, ``anchorPredictionBatches``) and
``getRecords``, through the typed client, on every backend.

A batch must behave exactly as its single calls in a row would: the same checks, the same custom
error naming the same record, one event per record in order, and all or nothing. An empty batch
reverts with ``EmptyRecordList``: a transaction that writes nothing is a caller's mistake, and
the gatherer that sent it should hear of it rather than pay for it silently.
"""

from __future__ import annotations

import pytest
from eth_utils import keccak

from ledger.errors import (
    BatchAlreadyAnchored,
    DatasetAlreadyRegistered,
    GasLimitExceeded,
    InvalidRecord,
    ModelAlreadyRegistered,
    NotAuthorized,
    RecordIsRevoked,
    UnknownDataset,
    UnknownModel,
)
from ledger.records import (
    ZERO_HASH,
    AnchorInput,
    DatasetInput,
    DatasetRegistered,
    ModelInput,
    ModelRegistered,
    PredictionsAnchored,
    RecordKind,
)
from ledger.records import hash_hex as hex32


def h(n: int) -> str:
    """A distinct, nonzero 32-byte hash for test number ``n``."""
    return hex32(keccak(n.to_bytes(32, "big")))


def raw(n: int, **fields) -> DatasetInput:
    """A raw dataset input numbered ``n``; fields override the defaults."""
    values = {"rows_root": h(900 + n), "row_count": n, "schema_hash": h(901), **fields}
    return DatasetInput(h(n), **values)


def derived(n: int, *parents: int) -> DatasetInput:
    return raw(n, parents=tuple(h(p) for p in parents), transform_hash=h(950))


def ledger_events(client, tx, event_type):
    return [e for e in client.events(tx.block_number, tx.block_number) if isinstance(e, event_type)]


def assert_nothing_written(client, hashes, before):
    assert client.get_records(hashes) == [None] * len(hashes)
    assert client.events() == before


# -- registerDatasets ---------------------------------------------------------------------


def test_register_datasets_stores_each_record_and_emits_one_event_each_in_order(deployed):
    client = deployed.registrar
    items = [raw(1), raw(2, metadata_hash=h(902)), derived(3, 1, 2)]
    tx = client.register_datasets(items)
    records = client.get_records([i.content_hash for i in items])
    for record, item in zip(records, items, strict=True):
        assert (record.record_hash, record.kind, record.revoked) == (
            item.content_hash,
            RecordKind.DATASET,
            False,
        )
        assert record.registrant == client.account.address
        assert record.registered_at == client.block_timestamp(tx.block_number)
    events = ledger_events(client, tx, DatasetRegistered)
    assert events == [
        DatasetRegistered(
            tx_hash=tx.tx_hash,
            block_number=tx.block_number,
            log_index=event.log_index,
            content_hash=item.content_hash,
            registrant=client.account.address,
            rows_root=item.rows_root,
            row_count=item.row_count,
            schema_hash=item.schema_hash,
            metadata_hash=item.metadata_hash,
            parents=item.parents,
            transform_hash=item.transform_hash,
        )
        for event, item in zip(events, items, strict=True)
    ]
    assert [e.log_index for e in events] == sorted(e.log_index for e in events)


def test_a_batched_dataset_reads_back_like_a_single_one(deployed):
    client = deployed.registrar
    client.register_datasets([raw(1), derived(3, 1)])  # a parent, then its child
    single = client.dataset_registration(h(3))
    assert (single.parents, single.transform_hash, single.row_count) == ((h(1),), h(950), 3)
    assert client.get_dataset(h(3)).kind is RecordKind.DATASET


def test_register_datasets_duplicate_within_the_batch_reverts_naming_it(deployed):
    client = deployed.registrar
    before = client.events()
    with pytest.raises(DatasetAlreadyRegistered) as caught:
        client.register_datasets([raw(1), raw(2), raw(1)])
    assert caught.value.context["record_hash"] == h(1)
    assert_nothing_written(client, [h(1), h(2)], before)


def test_register_datasets_duplicate_of_a_registered_record_reverts_naming_it(deployed):
    client = deployed.registrar
    client.register_datasets([raw(1)])
    client.register_model(h(5), datasets=[h(1)], metadata_hash=h(6))
    with pytest.raises(DatasetAlreadyRegistered) as caught:
        client.register_datasets([raw(2), raw(1)])
    assert caught.value.context["record_hash"] == h(1)
    with pytest.raises(ModelAlreadyRegistered) as caught:
        client.register_datasets([raw(2), raw(5)])  # the existing kind is named
    assert caught.value.context["record_hash"] == h(5)
    assert client.get_records([h(2)]) == [None]


def test_register_datasets_zero_hash_reverts(deployed):
    client = deployed.registrar
    before = client.events()
    with pytest.raises(InvalidRecord, match="zero"):
        client.register_datasets([raw(1), DatasetInput(ZERO_HASH, h(2), 1, h(3))])
    assert_nothing_written(client, [h(1)], before)


@pytest.mark.parametrize(
    "bad",
    [raw(2, parents=(h(1),)), raw(2, transform_hash=h(950))],
    ids=["no-transform", "no-parents"],
)
def test_register_datasets_inconsistent_derivation_reverts_naming_the_dataset(deployed, bad):
    client = deployed.registrar
    with pytest.raises(InvalidRecord, match="derived dataset") as caught:
        client.register_datasets([raw(1), bad])
    assert caught.value.context["record_hash"] == h(2)
    assert client.get_records([h(1), h(2)]) == [None, None]


def test_register_datasets_unknown_parent_reverts_naming_the_parent(deployed):
    client = deployed.registrar
    with pytest.raises(UnknownDataset) as caught:
        client.register_datasets([raw(1), derived(2, 1, 9)])
    assert caught.value.context["record_hash"] == h(9)


def test_register_datasets_parent_later_in_the_batch_is_unknown(deployed):
    """Records are written in order: a child cannot come before its parent."""
    with pytest.raises(UnknownDataset) as caught:
        deployed.registrar.register_datasets([derived(2, 1), raw(1)])
    assert caught.value.context["record_hash"] == h(1)


def test_register_datasets_revoked_parent_reverts_naming_it(deployed):
    client = deployed.registrar
    client.register_datasets([raw(1)])
    client.revoke(h(1), "leaked personal data")
    with pytest.raises(RecordIsRevoked) as caught:
        client.register_datasets([raw(2), derived(3, 1)])
    assert caught.value.context["record_hash"] == h(1)
    assert client.get_records([h(2)]) == [None]


def test_a_batch_that_reverts_on_chain_writes_nothing(deployed):
    """Without the client's simulation: the contract itself undoes the items before the bad one,
    and the mined failure is still explained by its typed error."""
    client = deployed.registrar
    client.register_datasets([raw(1)])
    before = client.events()
    items = [
        (keccak(n.to_bytes(32, "big")), bytes(32), 1, bytes(32), bytes(32), [], bytes(32))
        for n in (2, 3, 1)
    ]
    data = client._contract.encode_abi("registerDatasets", args=[items])
    head = client.latest_block()
    with pytest.raises(DatasetAlreadyRegistered) as caught:
        client._transactor.send({"to": client.address, "data": data}, gas=1_000_000)
    assert caught.value.context["record_hash"] == h(1)
    assert client.latest_block() == head + 1  # mined, and failed there
    assert_nothing_written(client, [h(2), h(3)], before)


# -- registerModels -----------------------------------------------------------------------


@pytest.fixture
def datasets(deployed):
    deployed.registrar.register_datasets([raw(1), raw(2)])
    return h(1), h(2)


def test_register_models_stores_each_record_and_emits_one_event_each_in_order(deployed, datasets):
    client = deployed.registrar
    items = [
        ModelInput(h(10), datasets=(h(1),), metadata_hash=h(20)),
        ModelInput(h(11), datasets=(h(1), h(2)), metadata_hash=h(21)),
    ]
    tx = client.register_models(items)
    records = client.get_records([h(10), h(11)])
    assert [(r.kind, r.registrant) for r in records] == [
        (RecordKind.MODEL, client.account.address)
    ] * 2
    events = ledger_events(client, tx, ModelRegistered)
    assert events == [
        ModelRegistered(
            tx_hash=tx.tx_hash,
            block_number=tx.block_number,
            log_index=event.log_index,
            model_hash=item.model_hash,
            registrant=client.account.address,
            datasets=item.datasets,
            metadata_hash=item.metadata_hash,
        )
        for event, item in zip(events, items, strict=True)
    ]
    assert events[0].log_index < events[1].log_index


def test_register_models_duplicate_reverts_naming_it(deployed, datasets):
    client = deployed.registrar
    with pytest.raises(ModelAlreadyRegistered) as caught:
        client.register_models(
            [
                ModelInput(h(10), datasets=(h(1),), metadata_hash=h(20)),
                ModelInput(h(10), datasets=(h(2),), metadata_hash=h(21)),
            ]
        )
    assert caught.value.context["record_hash"] == h(10)
    assert client.get_records([h(10)]) == [None]


def test_register_models_without_datasets_reverts_naming_the_model(deployed, datasets):
    client = deployed.registrar
    with pytest.raises(InvalidRecord, match="at least one dataset") as caught:
        client.register_models(
            [
                ModelInput(h(10), datasets=(h(1),), metadata_hash=h(20)),
                ModelInput(h(11), datasets=(), metadata_hash=h(21)),
            ]
        )
    assert caught.value.context["record_hash"] == h(11)
    assert client.get_records([h(10)]) == [None]


def test_register_models_zero_hash_reverts(deployed, datasets):
    with pytest.raises(InvalidRecord, match="zero"):
        deployed.registrar.register_models(
            [ModelInput(ZERO_HASH, datasets=(h(1),), metadata_hash=h(20))]
        )


def test_register_models_unknown_dataset_reverts_naming_it(deployed, datasets):
    with pytest.raises(UnknownDataset) as caught:
        deployed.registrar.register_models(
            [
                ModelInput(h(10), datasets=(h(1),), metadata_hash=h(20)),
                ModelInput(h(11), datasets=(h(2), h(9)), metadata_hash=h(21)),
            ]
        )
    assert caught.value.context["record_hash"] == h(9)


def test_register_models_revoked_dataset_reverts_naming_it(deployed, datasets):
    client = deployed.registrar
    client.revoke(h(2), "mislabelled")
    with pytest.raises(RecordIsRevoked) as caught:
        client.register_models([ModelInput(h(10), datasets=(h(1), h(2)), metadata_hash=h(20))])
    assert caught.value.context["record_hash"] == h(2)


# -- anchorPredictionBatches --------------------------------------------------------------


@pytest.fixture
def models(deployed, datasets):
    deployed.registrar.register_models(
        [
            ModelInput(h(10), datasets=(h(1),), metadata_hash=h(20)),
            ModelInput(h(11), datasets=(h(2),), metadata_hash=h(21)),
        ]
    )
    return h(10), h(11)


def test_anchor_prediction_batches_stores_each_batch_and_emits_one_event_each(deployed, models):
    client = deployed.registrar
    items = [AnchorInput(h(10), h(30), 128), AnchorInput(h(11), h(31), 1)]
    tx = client.anchor_prediction_batches(items)
    assert [r.kind for r in client.get_records([h(30), h(31)])] == [RecordKind.BATCH] * 2
    events = ledger_events(client, tx, PredictionsAnchored)
    assert events == [
        PredictionsAnchored(
            tx_hash=tx.tx_hash,
            block_number=tx.block_number,
            log_index=event.log_index,
            root=item.root,
            model_hash=item.model_hash,
            registrant=client.account.address,
            count=item.count,
        )
        for event, item in zip(events, items, strict=True)
    ]
    assert events[0].log_index < events[1].log_index


@pytest.mark.parametrize(
    ("bad", "error", "named"),
    [
        (AnchorInput(h(10), h(31), 0), InvalidRecord, h(31)),  # EmptyBatch names the root
        (AnchorInput(h(99), h(31), 3), UnknownModel, h(99)),
        (AnchorInput(h(1), h(31), 3), UnknownModel, h(1)),  # a dataset is not a model
        (AnchorInput(h(10), h(30), 3), BatchAlreadyAnchored, h(30)),  # the first item's root
    ],
    ids=["zero-count", "unknown-model", "dataset-as-model", "same-root-twice"],
)
def test_anchor_prediction_batches_reverts_naming_the_record(deployed, models, bad, error, named):
    client = deployed.registrar
    with pytest.raises(error) as caught:
        client.anchor_prediction_batches([AnchorInput(h(10), h(30), 3), bad])
    assert caught.value.context["record_hash"] == named
    assert client.get_records([h(30), h(31)]) == [None, None]


def test_anchor_prediction_batches_zero_root_reverts(deployed, models):
    with pytest.raises(InvalidRecord, match="zero"):
        deployed.registrar.anchor_prediction_batches([AnchorInput(h(10), ZERO_HASH, 3)])


def test_anchor_prediction_batches_revoked_model_reverts(deployed, models):
    client = deployed.registrar
    client.revoke(h(11), "overfit")
    with pytest.raises(RecordIsRevoked) as caught:
        client.anchor_prediction_batches(
            [AnchorInput(h(10), h(30), 3), AnchorInput(h(11), h(31), 3)]
        )
    assert caught.value.context["record_hash"] == h(11)


# -- every batch write ----------------------------------------------------------------------


BATCH_WRITES = {
    "registerDatasets": lambda c: c.register_datasets([raw(40)]),
    "registerModels": lambda c: c.register_models(
        [ModelInput(h(41), datasets=(h(1),), metadata_hash=h(2))]
    ),
    "anchorPredictionBatches": lambda c: c.anchor_prediction_batches(
        [AnchorInput(h(10), h(42), 3)]
    ),
}
EMPTY_BATCHES = {
    "registerDatasets": lambda c: c.register_datasets([]),
    "registerModels": lambda c: c.register_models([]),
    "anchorPredictionBatches": lambda c: c.anchor_prediction_batches([]),
}


@pytest.mark.parametrize("write", BATCH_WRITES)
def test_every_batch_write_refuses_an_account_without_the_role(deployed, models, write):
    before = deployed.admin.events()
    with pytest.raises(NotAuthorized, match="lacks role"):
        BATCH_WRITES[write](deployed.outsider)
    assert deployed.admin.events() == before
    BATCH_WRITES[write](deployed.registrar)  # the same write passes with the role


@pytest.mark.parametrize("write", EMPTY_BATCHES)
def test_every_empty_batch_reverts(deployed, models, write):
    before = deployed.admin.events()
    with pytest.raises(InvalidRecord, match="at least one record"):
        EMPTY_BATCHES[write](deployed.registrar)
    assert deployed.admin.events() == before


def test_the_gas_limit_grows_with_the_batch_and_covers_it(deployed, monkeypatch):
    client = deployed.registrar
    limits = []
    send = client._transactor.send

    def spy(tx, *, gas):
        limits.append(gas)
        return send(tx, gas=gas)

    monkeypatch.setattr(client._transactor, "send", spy)
    small = client.register_datasets([raw(1)])
    large = client.register_datasets([raw(n) for n in range(2, 12)] + [derived(12, 1, 2, 3)])
    assert limits[0] < limits[1]
    assert small.gas_used < limits[0]
    assert large.gas_used < limits[1]


def test_a_write_over_the_block_gas_limit_is_refused_before_sending(deployed):
    client = deployed.registrar
    nonce = client.backend.w3.eth.get_transaction_count(client.account.address)
    block_limit = client.backend.w3.eth.get_block("latest")["gasLimit"]
    data = client._contract.encode_abi("registerDatasets", args=[[]])
    with pytest.raises(GasLimitExceeded) as caught:
        client._transactor.send({"to": client.address, "data": data}, gas=block_limit + 1)
    assert caught.value.context["block_gas_limit"] == block_limit
    assert client.backend.w3.eth.get_transaction_count(client.account.address) == nonce
    client.register_datasets([raw(1)])  # the nonce counter was not spent


# -- getRecords -----------------------------------------------------------------------------


def test_get_records_reads_known_unknown_and_revoked_records_in_order(deployed, models):
    client = deployed.registrar
    client.anchor_prediction_batches([AnchorInput(h(10), h(30), 3)])
    client.revoke(h(2), "stale")
    reader = deployed.outsider  # reads are open to anyone
    asked = [h(30), h(77), h(2), h(10), h(1), h(77)]
    records = reader.get_records(asked)
    assert [r and (r.record_hash, r.kind, r.revoked) for r in records] == [
        (h(30), RecordKind.BATCH, False),
        None,
        (h(2), RecordKind.DATASET, True),
        (h(10), RecordKind.MODEL, False),
        (h(1), RecordKind.DATASET, False),
        None,
    ]
    assert records[3] == reader.get_model(h(10))
    assert records[2].registered_at == reader.get_dataset(h(2)).registered_at
    assert {r.registrant for r in records if r} == {client.account.address}


def test_get_records_of_nothing_is_empty(deployed):
    assert deployed.outsider.get_records([]) == []


# -- inputs ---------------------------------------------------------------------------------


def test_inputs_normalise_hashes_and_refuse_malformed_ones():
    item = DatasetInput(keccak(b"x"), h(1).upper().replace("0X", ""), 3, h(2), parents=[h(3)])
    assert item.content_hash == hex32(keccak(b"x"))
    assert item.rows_root == h(1)
    assert item.parents == (h(3),)
    with pytest.raises(ValueError, match="64 hex digits"):
        ModelInput(h(1), datasets=("0x12",), metadata_hash=h(2))
    with pytest.raises(ValueError, match="uint64"):
        AnchorInput(h(1), h(2), -1)
    with pytest.raises(ValueError, match="uint64"):
        DatasetInput(h(1), h(2), 2**64, h(3))
