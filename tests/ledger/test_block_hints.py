"""Block hints let the client read one record's events without scanning the whole chain; a
wrong hint falls back to the scan, and role history is scanned once per block."""

from __future__ import annotations

from eth_utils import keccak

from ledger.records import hash_hex


def h(n: int) -> str:
    return hash_hex(keccak(n.to_bytes(32, "big")))


def spy_on_ranges(client, monkeypatch):
    ranges = []
    original = client._logs

    def logs(topics, start, end):
        ranges.append((start, end))
        return original(topics, start, end)

    monkeypatch.setattr(client, "_logs", logs)
    return ranges


def test_a_right_hint_reads_one_block(deployed, monkeypatch):
    reader = deployed.outsider
    tx = deployed.registrar.register_dataset(h(1), rows_root=h(2), row_count=1, schema_hash=h(3))
    reader.block_hints = lambda event, key: tx.block_number if key == h(1) else None
    ranges = spy_on_ranges(reader, monkeypatch)
    assert reader.dataset_registration(h(1)).tx_hash == tx.tx_hash
    assert ranges == [(tx.block_number, tx.block_number)]


def test_a_wrong_hint_falls_back_to_the_scan(deployed, monkeypatch):
    reader = deployed.outsider
    tx = deployed.registrar.register_dataset(h(1), rows_root=h(2), row_count=1, schema_hash=h(3))
    reader.block_hints = lambda event, key: tx.block_number - 1  # the wrong block
    ranges = spy_on_ranges(reader, monkeypatch)
    assert reader.dataset_registration(h(1)).tx_hash == tx.tx_hash
    assert ranges == [(tx.block_number - 1, tx.block_number - 1), (None, "latest")]
    deployed.registrar.revoke(h(1), "bad")
    assert reader.revocation(h(1)).reason == "bad"


def test_role_history_is_scanned_incrementally(deployed, monkeypatch):
    admin, newcomer = deployed.admin, deployed.chain.account().address
    assert admin.registrar_history(newcomer) == []
    admin.grant_registrar(newcomer)
    calls = []
    original = admin._role_changes
    monkeypatch.setattr(
        admin, "_role_changes", lambda a, s, e: calls.append((s, e)) or original(a, s, e)
    )
    granted = admin.registrar_history(newcomer)
    assert [g for _, _, g in granted] == [True]
    admin.revoke_registrar(newcomer)
    assert [g for _, _, g in admin.registrar_history(newcomer)] == [True, False]
    assert calls[1][0] == calls[0][1] + 1  # the second scan starts where the first ended


def test_the_index_keeps_role_changes_so_only_newer_blocks_are_scanned(
    deployed, tmp_path, monkeypatch
):
    from ledger.index import LedgerIndex

    admin, newcomer = deployed.admin, deployed.chain.account().address
    admin.grant_registrar(newcomer)
    admin.revoke_registrar(newcomer)
    index = LedgerIndex(tmp_path / "index.sqlite3")
    index.sync(admin)
    changes, covered = index.registrar_changes(newcomer)
    assert [granted for _, _, granted in changes] == [True, False]
    assert covered == admin.latest_block()
    reader = deployed.as_account(deployed.chain.account())  # a fresh client: empty cache
    reader.role_history = index.registrar_changes
    scans = []
    original = reader._role_changes
    monkeypatch.setattr(
        reader, "_role_changes", lambda a, s, e: scans.append((s, e)) or original(a, s, e)
    )
    assert reader.registrar_history(newcomer) == changes
    assert all(start > covered for start, _ in scans)  # only blocks the index has not seen
    index.close()
