"""The Provenance Ledger service: FastAPI routes, settings, auth and the ``provenance`` CLI."""
