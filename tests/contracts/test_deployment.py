"""Deployment records: reused when the code at their address is the artifact's, refused with
a message that tells an older ledger from a foreign contract otherwise."""

from __future__ import annotations

import dataclasses

import pytest

from ledger.chain import deployment
from ledger.chain.contract_artifact import load_artifact
from ledger.chain.deployment import Deployment, connect_ledger, deploy_ledger
from ledger.errors import DeploymentMismatch


def test_a_record_of_this_artifact_is_reused(deployed, tmp_path):
    record = tmp_path / "deployment.json"
    first = deploy_ledger(deployed.chain.backend, deployed.admin.account, record)
    again = connect_ledger(
        deployed.chain.backend, deployed.admin.account, record, deploy_if_missing=True
    )
    assert again.address == first.address
    assert again.version() == "1.2.0"


def test_a_contract_of_another_version_is_refused_naming_its_version(
    deployed, tmp_path, monkeypatch
):
    record = tmp_path / "deployment.json"
    deploy_ledger(deployed.chain.backend, deployed.admin.account, record)
    newer = dataclasses.replace(load_artifact(), deployed_bytecode=b"\x00")  # a later build
    monkeypatch.setattr(deployment, "load_artifact", lambda: newer)
    with pytest.raises(DeploymentMismatch, match=r"\(version 1\.2\.0\) is sha256:") as caught:
        connect_ledger(
            deployed.chain.backend, deployed.admin.account, record, deploy_if_missing=True
        )
    assert caught.value.context["expected"] == newer.code_hash


def test_an_address_without_the_ledger_is_refused(deployed, tmp_path):
    record = tmp_path / "deployment.json"
    deploy_ledger(deployed.chain.backend, deployed.admin.account, record)
    moved = dataclasses.replace(Deployment.load(record), address="0x" + "11" * 20)
    moved.save(record)
    with pytest.raises(DeploymentMismatch, match=r"\(no version\(\)\)"):
        connect_ledger(
            deployed.chain.backend, deployed.admin.account, record, deploy_if_missing=True
        )


def test_released_code_hashes_are_the_fixtures_artifacts():
    from pathlib import Path

    from ledger.chain._releases import RELEASED_CODE

    fixtures = Path(__file__).parents[1] / "fixtures" / "contracts"
    found = {
        load_artifact(fixtures / f"ProvenanceLedger-{v}.json").code_hash: v
        for v in ("1.0.0", "1.1.0")
    }
    assert found == RELEASED_CODE
    assert load_artifact().code_hash not in RELEASED_CODE


def test_the_current_version_is_what_the_contract_answers(deployed):
    from ledger.chain._releases import CURRENT_VERSION

    assert deployed.admin.version() == CURRENT_VERSION


@pytest.mark.parametrize("version", ["1.0.0", "1.1.0"])
def test_an_older_release_is_refused_naming_the_upgrade_then_upgraded(deployed, tmp_path, version):
    """A record of a released older contract (as that version's `provenance deploy` wrote it)
    is refused with the command that upgrades it; `upgrade_ledger` adds generation 2, and the
    client then reads both generations' events and writes to the newest."""
    from pathlib import Path

    from ledger.chain.client import LedgerClient
    from ledger.chain.deployment import OlderContract, upgrade_ledger
    from ledger.reading.chain_reader import LedgerReader
    from ledger.records import DatasetRegistered, RecordRevoked

    released = load_artifact(
        Path(__file__).parents[1] / "fixtures" / "contracts" / f"ProvenanceLedger-{version}.json"
    )
    backend, account = deployed.chain.backend, deployed.admin.account
    old, tx = LedgerClient.deploy(backend, account, artifact=released)
    old.register_dataset("0x" + "01" * 32, rows_root="0x" + "02" * 32, row_count=1,
                         schema_hash="0x" + "03" * 32)  # fmt: skip
    kept, dropped = "0x" + "a1" * 20, "0x" + "b2" * 20
    old.grant_registrar(kept)
    old.grant_registrar(dropped)
    old.revoke_registrar(dropped)
    record = tmp_path / "deployment.json"
    Deployment(
        chain_id=old.chain_id(), address=old.address, tx_hash=tx.tx_hash,
        block_number=tx.block_number, code_hash=released.code_hash, deployer=account.address,
    ).save(record)  # fmt: skip
    with pytest.raises(OlderContract, match=rf"released ProvenanceLedger {version}") as refused:
        connect_ledger(backend, account, record, deploy_if_missing=True)
    assert "provenance upgrade-contract" in str(refused.value)

    client = upgrade_ledger(backend, account, record)
    assert [g.address for g in client.generations] == [old.address, client.address]
    assert client.predecessor() == old.address
    # the roles are the new generation's own: the registrars of the old one are granted there
    assert client.is_registrar(kept) and not client.is_registrar(dropped)
    assert client.is_registrar(account.address)
    assert client.deploy_block == tx.block_number  # history starts at generation 1
    again = connect_ledger(backend, account, record, deploy_if_missing=False)
    assert again.address == client.address and again.generations == client.generations
    client.revoke("0x" + "01" * 32, "through generation 2")
    events = client.events()
    assert [type(e) for e in events if isinstance(e, DatasetRegistered | RecordRevoked)] == [
        DatasetRegistered,
        RecordRevoked,
    ]
    reader = LedgerReader(backend.transport(), client.address)
    assert reader.generations() == (client.address, old.address)
    [found] = reader.find("DatasetRegistered", "0x" + "01" * 32, 0, "latest")
    assert found.contract == old.address
    with pytest.raises(DeploymentMismatch, match="nothing to upgrade"):
        upgrade_ledger(backend, account, record)


def test_a_generation_that_does_not_name_its_predecessor_is_refused(deployed, tmp_path):
    from ledger.chain.deployment import GenerationRecord

    backend, account = deployed.chain.backend, deployed.admin.account
    record = tmp_path / "deployment.json"
    first = deploy_ledger(backend, account, record)
    stranger = deploy_ledger(backend, account, tmp_path / "other.json")  # another first generation
    one = Deployment.load(record)
    listed = tuple(
        GenerationRecord(c.address, "1.2.0", one.code_hash, one.tx_hash, one.block_number)
        for c in (first, stranger)
    )
    dataclasses.replace(one, address=stranger.address, generations=listed).save(record)
    with pytest.raises(DeploymentMismatch, match="as its predecessor"):
        connect_ledger(backend, account, record, deploy_if_missing=False)
