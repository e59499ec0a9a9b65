"""The attestation key and its binding: each way a binding can be wrong fails ``key_binding``
with a reason that says which."""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_account import Account

from ledger.attest.key import AttestationError, AttestationKey, KeyBinding, check_binding
from ledger.formats.receipts import ReceiptDomain

DOMAIN = ReceiptDomain(31337, "0x5FbDB2315678afecb367f032d93F642f64180aa3")


@pytest.fixture
def registrar():  # type: ignore[no-untyped-def]
    return Account.create()


def _check(binding: KeyBinding, registrars: set[str]) -> str:
    return check_binding(
        binding,
        chain_id=DOMAIN.chain_id,
        contract=DOMAIN.verifying_contract,
        holds_role=lambda account: account in registrars,
    )


def test_a_binding_by_a_registrar_checks(tmp_path: Path, registrar) -> None:  # type: ignore[no-untyped-def]
    key = AttestationKey.load_or_create(tmp_path / "key.pem")
    binding = key.bind(registrar, DOMAIN, 1_700_000_000)
    assert _check(binding, {registrar.address}) == registrar.address
    assert KeyBinding.from_json(binding.to_json()) == binding
    assert (tmp_path / "key.pem").stat().st_mode & 0o777 == 0o600
    assert "PRIVATE" not in repr(key)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("role", "holds no REGISTRAR_ROLE"),
        ("key", "not the digest of its public key"),
        ("registrar", "was signed by"),
        ("time", "was signed by"),
        ("chain", "not 0x5FbDB2315678afecb367f032d93F642f64180aa3 on chain 31337"),
    ],
)
def test_each_wrong_binding_fails_with_its_reason(  # type: ignore[no-untyped-def]
    tmp_path: Path, registrar, change: str, reason: str
) -> None:
    key = AttestationKey.load_or_create(tmp_path / "key.pem")
    binding = key.bind(registrar, DOMAIN, 1_700_000_000).to_json()
    registrars = {registrar.address}
    if change == "role":
        registrars = set()
    elif change == "key":
        binding["public_key_pem"] = AttestationKey.load_or_create(tmp_path / "other.pem").public_pem
    elif change == "registrar":
        binding["registrar"] = Account.create().address
    elif change == "time":
        binding["issued_at"] += 1
    elif change == "chain":
        binding["chain_id"] = 1
    with pytest.raises(AttestationError, match=reason) as info:
        _check(KeyBinding.from_json(binding), registrars)
    assert info.value.reason == "key_binding"


def test_an_encrypted_key_needs_its_password(tmp_path: Path) -> None:
    path = tmp_path / "key.pem"
    key = AttestationKey.load_or_create(path, "correct horse")
    assert b"ENCRYPTED" in path.read_bytes()
    assert AttestationKey.load_or_create(path, "correct horse").digest == key.digest
    with pytest.raises(AttestationError, match="wrong password"):
        AttestationKey.load_or_create(path, "wrong")
