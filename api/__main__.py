"""``python -m api`` runs the ``provenance`` command."""

from api.cli import app

app(prog_name="provenance")
