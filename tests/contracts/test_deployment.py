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
