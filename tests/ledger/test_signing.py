"""The lean EIP-1559 signer gives eth-account's bytes and hash, field for field."""

from __future__ import annotations

from eth_account import Account
from eth_keys.datatypes import PrivateKey
from eth_utils import to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.chain._signing import sign_dynamic_fee

_ACCOUNT = Account.from_key(b"\x07" * 32)
_KEY = PrivateKey(_ACCOUNT.key)
_uint = st.integers(min_value=0, max_value=2**256 - 1)


@settings(max_examples=60, deadline=None)
@given(
    chain_id=st.integers(min_value=1, max_value=2**64 - 1),
    nonce=st.integers(min_value=0, max_value=2**64 - 2),
    priority=_uint,
    max_fee=_uint,
    gas=st.integers(min_value=21_000, max_value=2**63 - 1),
    to=st.one_of(st.none(), st.binary(min_size=20, max_size=20)),
    data=st.binary(max_size=600),
    value=_uint,
    as_hex=st.booleans(),
)
def test_the_same_transaction_as_eth_account(
    chain_id: int,
    nonce: int,
    priority: int,
    max_fee: int,
    gas: int,
    to: bytes | None,
    data: bytes,
    value: int,
    as_hex: bool,
) -> None:
    to_text = None if to is None else to_checksum_address(to)
    expected = _ACCOUNT.sign_transaction(
        {
            "type": 2,
            "chainId": chain_id,
            "nonce": nonce,
            "maxPriorityFeePerGas": priority,
            "maxFeePerGas": max_fee,
            "gas": gas,
            **({} if to_text is None else {"to": to_text}),
            "value": value,
            "data": "0x" + data.hex(),
        }
    )
    signed = sign_dynamic_fee(
        _KEY,
        chain_id=chain_id,
        nonce=nonce,
        max_priority_fee=priority,
        max_fee=max_fee,
        gas=gas,
        to=to_text,
        data="0x" + data.hex() if as_hex else data,
        value=value,
    )
    assert signed.raw == bytes(expected.raw_transaction)
    assert signed.tx_hash == bytes(expected.hash)
    assert Account.recover_transaction(signed.raw) == _ACCOUNT.address
