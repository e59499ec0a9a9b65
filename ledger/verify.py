"""Verification of receipts, models and dataset files against the chain: the public entry point.

The implementation lives in :mod:`ledger.verification` (reports, evidence, lineage checks,
receipts one at a time or in bulk, models and dataset files) on top of
:mod:`ledger.reading.chain_facts` (each chain fact read once) and :mod:`ledger.reading.chain_reader`
(the contract read without web3, so ``provenance verify`` starts fast). This module names what
callers use, so that they never depend on how that package is split.
"""

from ledger.reading.chain_facts import ChainFacts  # noqa: F401 - named in __all__
from ledger.reading.chain_reader import ContractNotFound  # noqa: F401 - named in __all__
from ledger.verification import *  # noqa: F403 - this module is the package's public face
from ledger.verification import __all__ as _verification_names

__all__ = sorted({"ChainFacts", "ContractNotFound", *_verification_names})
