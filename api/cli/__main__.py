"""``python -m api.cli`` runs the ``provenance`` command (as ``python -m api`` does)."""

from api.cli import app

app(prog_name="provenance")
