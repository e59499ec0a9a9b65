"""The contract, through the typed client, on every backend: each write's success path, each
custom error, each event's fields, and the role checks."""

from __future__ import annotations

import pytest
from eth_utils import keccak

from ledger.chain.client import REGISTRAR_ROLE
from ledger.errors import (
    AlreadyRevoked,
    BatchAlreadyAnchored,
    DatasetAlreadyRegistered,
    InvalidRecord,
    ModelAlreadyRegistered,
    NotAuthorized,
    RecordIsRevoked,
    UnknownBatch,
    UnknownDataset,
    UnknownModel,
    UnknownRecord,
)
from ledger.records import (
    ZERO_HASH,
    DatasetRegistered,
    ModelRegistered,
    PredictionsAnchored,
    RecordKind,
    RecordRevoked,
    hash_hex,
)

DEFAULT_ADMIN_ROLE = bytes(32)
ZERO_ADDRESS = "0x" + "00" * 20


def h(n: int) -> str:
    """A distinct, nonzero 32-byte hash for test number ``n``."""
    return hash_hex(keccak(n.to_bytes(32, "big")))


def register(client, content_hash, parents=(), transform=ZERO_HASH):
    return client.register_dataset(
        content_hash,
        rows_root=h(900),
        row_count=42,
        schema_hash=h(901),
        metadata_hash=h(902),
        parents=parents,
        transform_hash=transform,
    )


def is_admin(client, address):
    """AccessControl's ``hasRole(DEFAULT_ADMIN_ROLE, address)``, read straight from the ABI."""
    return client._call("hasRole", DEFAULT_ADMIN_ROLE, address)


def record_of(client, record_hash):
    """The stored record under one hash, or None, through ``getRecords``."""
    [record] = client.get_records([record_hash])
    return record


def test_version(deployed):
    assert deployed.admin.version() == "1.2.0"


def test_deployer_holds_both_roles_and_others_none(deployed):
    admin = deployed.admin
    assert is_admin(admin, admin.account.address)
    assert admin.is_registrar(admin.account.address)
    assert admin.is_registrar(deployed.registrar.account.address)
    assert not admin.is_registrar(deployed.outsider.account.address)
    assert not is_admin(admin, deployed.registrar.account.address)


# -- registerDataset ------------------------------------------------------------------------


def test_register_raw_dataset_stores_record_and_emits_every_field(deployed):
    client = deployed.registrar
    tx = register(client, h(1))
    record = client.get_dataset(h(1))
    assert record.kind is RecordKind.DATASET
    assert record.registrant == client.account.address
    assert not record.revoked
    assert record.registered_at == client.block_timestamp(tx.block_number)
    event = client.dataset_registration(h(1))
    assert event == DatasetRegistered(
        tx_hash=tx.tx_hash,
        block_number=tx.block_number,
        log_index=event.log_index,
        content_hash=h(1),
        registrant=client.account.address,
        rows_root=h(900),
        row_count=42,
        schema_hash=h(901),
        metadata_hash=h(902),
        parents=(),
        transform_hash=ZERO_HASH,
    )


def test_register_derived_dataset_names_parents_and_transform(deployed):
    client = deployed.registrar
    register(client, h(1))
    register(client, h(2))
    tx = register(client, h(3), parents=[h(1), h(2)], transform=h(50))
    event = client.dataset_registration(h(3))
    assert event.parents == (h(1), h(2))
    assert event.transform_hash == h(50)
    assert event.tx_hash == tx.tx_hash


def test_register_dataset_twice_reverts(deployed):
    register(deployed.registrar, h(1))
    with pytest.raises(DatasetAlreadyRegistered) as caught:
        register(deployed.admin, h(1))
    assert caught.value.context["record_hash"] == h(1)


def test_register_dataset_over_a_model_hash_names_the_existing_kind(deployed):
    client = deployed.registrar
    register(client, h(1))
    client.register_model(h(2), datasets=[h(1)], metadata_hash=h(3))
    with pytest.raises(ModelAlreadyRegistered):
        register(client, h(2))


def test_register_dataset_zero_hash_reverts(deployed):
    with pytest.raises(InvalidRecord, match="zero"):
        register(deployed.registrar, ZERO_HASH)


@pytest.mark.parametrize(
    ("parents", "transform"), [((1,), ZERO_HASH), ((), h(50))], ids=["no-transform", "no-parents"]
)
def test_register_dataset_inconsistent_derivation_reverts(deployed, parents, transform):
    client = deployed.registrar
    register(client, h(1))
    with pytest.raises(InvalidRecord, match="derived dataset") as caught:
        register(client, h(2), parents=[h(p) for p in parents], transform=transform)
    assert caught.value.context["record_hash"] == h(2)
    assert record_of(client, h(2)) is None


def test_register_dataset_with_unknown_parent_reverts(deployed):
    with pytest.raises(UnknownDataset):
        register(deployed.registrar, h(2), parents=[h(1)], transform=h(50))


def test_register_dataset_with_a_model_as_parent_reverts(deployed):
    client = deployed.registrar
    register(client, h(1))
    client.register_model(h(2), datasets=[h(1)], metadata_hash=h(3))
    with pytest.raises(UnknownDataset):
        register(client, h(4), parents=[h(2)], transform=h(50))


def test_register_dataset_with_revoked_parent_reverts(deployed):
    client = deployed.registrar
    register(client, h(1))
    client.revoke(h(1), "leaked personal data")
    with pytest.raises(RecordIsRevoked):
        register(client, h(2), parents=[h(1)], transform=h(50))


# -- registerModel --------------------------------------------------------------------------


@pytest.mark.parametrize("n_datasets", [1, 3])
def test_register_model_stores_record_and_emits_every_field(deployed, n_datasets):
    client = deployed.registrar
    datasets = [h(10 + i) for i in range(n_datasets)]
    for dataset in datasets:
        register(client, dataset)
    tx = client.register_model(h(1), datasets=datasets, metadata_hash=h(2))
    record = client.get_model(h(1))
    assert (record.kind, record.registrant, record.revoked) == (
        RecordKind.MODEL,
        client.account.address,
        False,
    )
    event = client.model_registration(h(1))
    assert event == ModelRegistered(
        tx_hash=tx.tx_hash,
        block_number=tx.block_number,
        log_index=event.log_index,
        model_hash=h(1),
        registrant=client.account.address,
        datasets=tuple(datasets),
        metadata_hash=h(2),
    )


def test_register_model_twice_reverts(deployed):
    client = deployed.registrar
    register(client, h(10))
    client.register_model(h(1), datasets=[h(10)], metadata_hash=h(2))
    with pytest.raises(ModelAlreadyRegistered):
        client.register_model(h(1), datasets=[h(10)], metadata_hash=h(3))


def test_register_model_zero_hash_reverts(deployed):
    client = deployed.registrar
    register(client, h(10))
    with pytest.raises(InvalidRecord, match="zero"):
        client.register_model(ZERO_HASH, datasets=[h(10)], metadata_hash=h(2))


def test_register_model_without_datasets_reverts(deployed):
    with pytest.raises(InvalidRecord, match="at least one dataset") as caught:
        deployed.registrar.register_model(h(1), datasets=[], metadata_hash=h(2))
    assert caught.value.context["record_hash"] == h(1)


def test_register_model_on_unknown_dataset_reverts(deployed):
    client = deployed.registrar
    register(client, h(10))
    with pytest.raises(UnknownDataset) as caught:
        client.register_model(h(1), datasets=[h(10), h(11)], metadata_hash=h(2))
    assert caught.value.context["record_hash"] == h(11)


def test_register_model_on_revoked_dataset_reverts(deployed):
    client = deployed.registrar
    register(client, h(10))
    client.revoke(h(10), "mislabelled")
    with pytest.raises(RecordIsRevoked):
        client.register_model(h(1), datasets=[h(10)], metadata_hash=h(2))


# -- anchorPredictions ----------------------------------------------------------------------


@pytest.fixture
def model(deployed):
    client = deployed.registrar
    register(client, h(10))
    client.register_model(h(20), datasets=[h(10)], metadata_hash=h(21))
    return h(20)


def test_anchor_stores_batch_and_emits_every_field(deployed, model):
    client = deployed.registrar
    tx = client.anchor_predictions(model, h(30), 128)
    record = record_of(client, h(30))
    assert (record.kind, record.registrant) == (RecordKind.BATCH, client.account.address)
    event = client.batch_anchoring(h(30))
    assert event == PredictionsAnchored(
        tx_hash=tx.tx_hash,
        block_number=tx.block_number,
        log_index=event.log_index,
        root=h(30),
        model_hash=model,
        registrant=client.account.address,
        count=128,
    )


def test_anchor_returns_the_root_as_batch_id(deployed, model):
    contract = deployed.registrar._contract
    batch_id = contract.functions.anchorPredictions(
        bytes.fromhex(model[2:]), bytes.fromhex(h(30)[2:]), 5
    ).call({"from": deployed.registrar.account.address})
    assert hash_hex(batch_id) == h(30)


def test_anchor_zero_count_reverts(deployed, model):
    with pytest.raises(InvalidRecord, match="at least one receipt") as caught:
        deployed.registrar.anchor_predictions(model, h(30), 0)
    assert caught.value.context["record_hash"] == h(30)


def test_anchor_zero_root_reverts(deployed, model):
    with pytest.raises(InvalidRecord, match="zero"):
        deployed.registrar.anchor_predictions(model, ZERO_HASH, 3)


def test_anchor_same_root_twice_reverts(deployed, model):
    deployed.registrar.anchor_predictions(model, h(30), 3)
    with pytest.raises(BatchAlreadyAnchored):
        deployed.registrar.anchor_predictions(model, h(30), 3)


def test_anchor_for_unknown_model_reverts(deployed, model):
    with pytest.raises(UnknownModel):
        deployed.registrar.anchor_predictions(h(99), h(30), 3)


def test_anchor_for_a_dataset_hash_reverts(deployed, model):
    with pytest.raises(UnknownModel):
        deployed.registrar.anchor_predictions(h(10), h(30), 3)


def test_anchor_for_revoked_model_reverts(deployed, model):
    deployed.registrar.revoke(model, "overfit")
    with pytest.raises(RecordIsRevoked):
        deployed.registrar.anchor_predictions(model, h(30), 3)


# -- verifyPrediction -----------------------------------------------------------------------


def _pair_root(a: bytes, b: bytes) -> bytes:
    return keccak(b"".join(sorted([a, b])))


def test_verify_prediction_accepts_a_proof_and_rejects_a_forged_one(deployed, model):
    leaves = [keccak(bytes([i])) for i in range(4)]
    left, right = _pair_root(leaves[0], leaves[1]), _pair_root(leaves[2], leaves[3])
    root = _pair_root(left, right)
    client = deployed.registrar
    client.anchor_predictions(model, root, 4)
    assert client.verify_prediction(root, leaves[0], [leaves[1], right])
    assert client.verify_prediction(root, leaves[3], [leaves[2], left])
    assert not client.verify_prediction(root, leaves[0], [leaves[2], right])
    assert not client.verify_prediction(root, keccak(b"forged"), [leaves[1], right])


def test_verify_prediction_on_unknown_batch_reverts(deployed, model):
    with pytest.raises(UnknownBatch):
        deployed.registrar.verify_prediction(h(31), h(1), [])


# -- revoke ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["dataset", "model", "batch"])
def test_registrant_revokes_each_kind_and_event_says_why(deployed, model, kind):
    client = deployed.registrar
    if kind == "batch":
        client.anchor_predictions(model, h(30), 3)
    target = {"dataset": h(10), "model": model, "batch": h(30)}[kind]
    tx = client.revoke(target, "found a bug")
    assert client.is_revoked(target)
    assert record_of(client, target).revoked
    event = client.revocation(target)
    assert event == RecordRevoked(
        tx_hash=tx.tx_hash,
        block_number=tx.block_number,
        log_index=event.log_index,
        record_hash=target,
        revoker=client.account.address,
        kind=RecordKind[kind.upper()],
        reason="found a bug",
    )


def test_admin_revokes_a_record_registered_by_someone_else(deployed, model):
    deployed.admin.revoke(h(10), "court order")
    assert deployed.registrar.is_revoked(h(10))
    assert deployed.registrar.revocation(h(10)).revoker == deployed.admin.account.address


def test_revocation_keeps_the_record(deployed, model):
    before = deployed.registrar.get_dataset(h(10))
    deployed.registrar.revoke(h(10), "stale")
    after = deployed.registrar.get_dataset(h(10))
    assert (after.kind, after.registrant, after.registered_at) == (
        before.kind,
        before.registrant,
        before.registered_at,
    )
    assert deployed.registrar.dataset_registration(h(10)).row_count == 42


def test_revoke_by_another_registrar_reverts(deployed, model):
    other = deployed.as_account(deployed.chain.account())
    deployed.admin.grant_registrar(other.account.address)
    with pytest.raises(NotAuthorized, match="did not register"):
        other.revoke(h(10), "not mine")
    assert not deployed.admin.is_revoked(h(10))


def test_revoke_by_registrant_who_lost_the_role_reverts(deployed, model):
    deployed.admin.revoke_registrar(deployed.registrar.account.address)
    with pytest.raises(NotAuthorized, match="lacks role"):
        deployed.registrar.revoke(h(10), "too late")


def test_revoke_unknown_record_reverts(deployed):
    with pytest.raises(UnknownRecord):
        deployed.admin.revoke(h(77), "nothing there")


def test_revoke_twice_reverts(deployed, model):
    deployed.registrar.revoke(h(10), "once")
    with pytest.raises(AlreadyRevoked):
        deployed.registrar.revoke(h(10), "twice")


def test_revoke_without_reason_reverts(deployed, model):
    with pytest.raises(InvalidRecord, match="reason"):
        deployed.registrar.revoke(h(10), "")


# -- views ----------------------------------------------------------------------------------


def test_views_on_unknown_or_wrong_kind(deployed, model):
    client = deployed.outsider  # reads are open to anyone
    assert record_of(client, h(77)) is None
    assert client._call("getRecord", bytes.fromhex(h(77)[2:])) == (0, False, 0, ZERO_ADDRESS)
    with pytest.raises(UnknownDataset):
        client.get_dataset(model)
    with pytest.raises(UnknownModel):
        client.get_model(h(10))
    with pytest.raises(UnknownBatch):
        client._call("getBatch", bytes.fromhex(model[2:]))
    with pytest.raises(UnknownRecord):
        client.is_revoked(h(77))
    assert client.get_dataset(h(10)).kind is RecordKind.DATASET
    assert not client.is_revoked(model)


def test_events_lists_everything_in_chain_order(deployed, model):
    deployed.registrar.anchor_predictions(model, h(30), 3)
    deployed.registrar.revoke(h(30), "bad batch")
    ledger_events = [
        e
        for e in deployed.outsider.events()
        if isinstance(e, DatasetRegistered | ModelRegistered | PredictionsAnchored | RecordRevoked)
    ]
    assert [type(e).__name__ for e in ledger_events] == [
        "DatasetRegistered",
        "ModelRegistered",
        "PredictionsAnchored",
        "RecordRevoked",
    ]
    positions = [(e.block_number, e.log_index) for e in deployed.outsider.events()]
    assert positions == sorted(positions)


# -- roles ----------------------------------------------------------------------------------


WRITES = {
    "registerDataset": lambda c, m: register(c, h(40)),
    "registerDataset(derived)": lambda c, m: register(c, h(40), parents=[h(10)], transform=h(5)),
    "registerModel": lambda c, m: c.register_model(h(41), datasets=[h(10)], metadata_hash=h(2)),
    "anchorPredictions": lambda c, m: c.anchor_predictions(m, h(42), 3),
    "revoke": lambda c, m: c.revoke(h(10), "outsider says so"),
    "grantRole": lambda c, m: c.grant_registrar(c.account.address),
    "revokeRole": lambda c, m: c.revoke_registrar(c.account.address),
}


@pytest.mark.parametrize("write", WRITES)
def test_every_write_refuses_an_account_without_the_role(deployed, model, write):
    before = deployed.admin.events()
    with pytest.raises(NotAuthorized):
        WRITES[write](deployed.outsider, model)
    assert deployed.admin.events() == before
    assert not deployed.admin.is_revoked(h(10))


def test_granted_registrar_can_write_and_revoked_one_cannot(deployed, model):
    newcomer = deployed.as_account(deployed.chain.account())
    with pytest.raises(NotAuthorized):
        register(newcomer, h(60))
    deployed.admin.grant_registrar(newcomer.account.address)
    register(newcomer, h(60))
    deployed.admin.revoke_registrar(newcomer.account.address)
    with pytest.raises(NotAuthorized):
        register(newcomer, h(61))


def test_registrar_cannot_grant_roles(deployed):
    with pytest.raises(NotAuthorized):
        deployed.registrar.grant_registrar(deployed.outsider.account.address)


def test_registrar_role_constant_matches_the_contract(deployed):
    assert deployed.admin._call("REGISTRAR_ROLE") == REGISTRAR_ROLE
