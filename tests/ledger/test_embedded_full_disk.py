"""A full disk under the embedded chain: the write is refused, nothing of it remains anywhere,
and the chain writes again as soon as there is room, without a restart.

The disk is "filled" the way SQLite itself reports it: ``PRAGMA max_page_count`` caps the
chain file at its current size, so the next block fails with a real ``SQLITE_FULL``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_account import Account

from ledger.chain.backends.embedded import ChainStoreError, ChainStoreFull, EmbeddedBackend
from ledger.chain.backends.reads import ReadLimits


def fill_the_disk(chain: EmbeddedBackend) -> int:
    """Cap the chain file at its current pages; returns the cap, for lifting it later."""
    assert chain._store is not None
    conn = chain._store._conn
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")
    return pages


def make_room(chain: EmbeddedBackend, pages: int) -> None:
    assert chain._store is not None
    chain._store._conn.execute(f"PRAGMA max_page_count = {pages * 100}")


def test_a_full_disk_refuses_the_write_and_leaves_nothing_of_it(tmp_path: Path) -> None:
    someone = Account.create().address
    with EmbeddedBackend(tmp_path) as chain:
        chain.fund(someone, 1)
        reads = chain.read_node(ReadLimits(readers=1))
        head, pages = chain.w3.eth.block_number, fill_the_disk(chain)
        with pytest.raises(ChainStoreFull) as refused:
            for _ in range(50):  # the first blocks may still fit in the file's free pages
                chain.fund(someone, 1)
        assert isinstance(refused.value, ChainStoreError)  # a chain-store failure, typed
        written = chain.w3.eth.block_number
        balance = chain.w3.eth.get_balance(someone)
        assert balance == written - head + 1  # the refused transfer is nowhere
        assert reads.eth.block_number == written  # nor in what the readers see

        make_room(chain, pages)
        chain.fund(someone, 1)  # the same chain, no restart
        assert chain.w3.eth.block_number == written + 1
        assert chain.w3.eth.get_balance(someone) == balance + 1
    with EmbeddedBackend(tmp_path) as reopened:
        assert reopened.w3.eth.block_number == written + 1
        assert reopened.w3.eth.get_balance(someone) == balance + 1
