"""The contract versions this project released, by the code hash their deployments carry.

A deployment whose code is one of these is a known older generation: it is kept and read as
one (its records stay parents, training data and revocation targets of new writes), and a data
directory whose newest generation is one of them is told to run ``provenance upgrade-contract``
rather than refused. ``tests/fixtures/contracts`` holds their artifacts; a test checks the hashes.

When the contract changes again, the release being replaced joins this table (and its artifact
the fixtures) in the same commit: otherwise ledgers of it could be neither opened nor upgraded.
"""

from __future__ import annotations

__all__ = ["CURRENT_VERSION", "RELEASED_CODE"]

CURRENT_VERSION = "1.2.0"
"""What the committed artifact's ``version()`` answers (a test reads it from the chain)."""

RELEASED_CODE: dict[str, str] = {
    "sha256:12bcb6d0d917e137525fd799a6de7f51b168ce30fa4c1a8698a62c88221e95a4": "1.0.0",
    "sha256:ae630f50c7ca13845435c31f1a8768af277e2a3898f7c700b0631a09f5fc240c": "1.1.0",
}
"""code hash (``sha256:<hex>`` of the runtime code) → the version that code answers."""
