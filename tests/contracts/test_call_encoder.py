"""The client's own calldata encoder (:class:`ledger.chain._calls.CallEncoder`) gives exactly
the bytes web3's ``encode_abi`` gives, for every write function the client sends, on the
current contract and on the released ones."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from web3 import Web3

from ledger.chain._calls import (
    CallEncoder,
    ContractCall,
    anchors_call,
    b32,
    datasets_call,
    models_call,
    revoke_call,
    role_call,
)
from ledger.chain.contract_artifact import load_artifact
from ledger.records import AnchorInput, DatasetInput, ModelInput

RELEASES = Path(__file__).parents[1] / "fixtures" / "contracts"


def h() -> str:
    return "0x" + os.urandom(32).hex()


def calls() -> list[ContractCall]:
    raw = DatasetInput(h(), h(), 7, h(), h())
    derived = DatasetInput(h(), h(), 2**64 - 1, h(), h(), parents=(h(), h()), transform_hash=h())
    model = ModelInput(h(), (h(), h(), h()), h())
    return [
        datasets_call([raw]),
        datasets_call([raw, derived]),
        models_call([model, ModelInput(h(), (h(),), h())]),
        anchors_call([AnchorInput(h(), h(), 1), AnchorInput(h(), h(), 2**64 - 1)]),
        revoke_call(h(), ""),
        revoke_call(h(), "a reason with ünïcode, and \u2028 a long tail " * 20),
        role_call("0x" + "ab" * 20, grant=True),
        role_call("0x" + "cd" * 20, grant=False),
        ContractCall(
            "registerDataset", (b32(h()), b32(h()), 3, b32(h()), b32(h()), [], b32(h())), 0
        ),
        ContractCall("registerModel", (b32(h()), [b32(h())], b32(h())), 0),
        ContractCall("anchorPredictions", (b32(h()), b32(h()), 5), 0),
    ]


@pytest.mark.parametrize(
    "abi",
    [
        load_artifact().abi,
        load_artifact(RELEASES / "ProvenanceLedger-1.1.0.json").abi,
    ],
    ids=["current", "1.1.0"],
)
def test_calldata_equals_web3s(abi: list) -> None:
    contract = Web3().eth.contract(abi=abi)
    encoder = CallEncoder(abi)
    for call in calls():
        assert encoder.encode(call.fn_name, call.args) == contract.encode_abi(
            call.fn_name, call.args
        ), call.fn_name


def test_an_overloaded_name_is_refused_not_guessed() -> None:
    abi = [
        {"type": "function", "name": "f", "inputs": [{"type": "uint256", "name": "a"}]},
        {"type": "function", "name": "f", "inputs": [{"type": "bytes32", "name": "a"}]},
    ]
    with pytest.raises(ValueError, match="overloaded"):
        CallEncoder(abi).encode("f", [1])
