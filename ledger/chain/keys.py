"""The service's signing key: it sends every transaction and signs every prediction receipt.

On the embedded chain the key is generated on first start and kept in the data directory,
readable only by its owner. Against a real node it comes from an encrypted JSON keystore whose
password is given by environment variable or file, never from source code.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from ledger.errors import LedgerError
from ledger.storage._files import write_atomic

__all__ = [
    "SigningKeyError",
    "create_keystore",
    "load_keystore",
    "load_or_create_key",
    "read_password",
]


class SigningKeyError(LedgerError):
    """The key file or keystore is missing, unreadable or the password is wrong."""


def load_or_create_key(path: Path) -> LocalAccount:
    """Load the hex private key at ``path``, creating a random one (mode 0600) if absent."""
    if not path.exists():
        write_atomic(path, (Account.create().key.hex() + "\n").encode(), mode=0o600)
    text = path.read_text(encoding="utf-8").strip()
    try:
        return Account.from_key(text)
    except Exception as exc:
        raise SigningKeyError(f"{path} does not hold a valid private key") from exc


def load_keystore(path: Path, password: str) -> LocalAccount:
    """Decrypt a JSON keystore (the geth/eth-keyfile format)."""
    try:
        keystore = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SigningKeyError(f"cannot read keystore {path}: {exc}") from exc
    try:
        return Account.from_key(Account.decrypt(keystore, password))
    except ValueError as exc:
        raise SigningKeyError(f"cannot decrypt keystore {path}: wrong password?") from exc


def create_keystore(path: Path, password: str, private_key: bytes | None = None) -> LocalAccount:
    """Encrypt a new (or the given) key into a keystore file readable only by its owner."""
    account = Account.from_key(private_key) if private_key else Account.create()
    keystore = Account.encrypt(account.key, password)
    write_atomic(Path(path), json.dumps(keystore).encode(), mode=0o600)
    return account


def read_password(env_var: str, file_var: str) -> str:
    """A keystore password from ``$env_var``, or from the file named by ``$file_var``."""
    if (password := os.environ.get(env_var)) is not None:
        return password
    if file_name := os.environ.get(file_var):
        return Path(file_name).read_text(encoding="utf-8").rstrip("\n")
    raise SigningKeyError(f"set {env_var} or {file_var} to unlock the keystore")
