"""What every ``provenance`` command shares: the two consoles, the shared options, the one way a
command fails, and the helpers that print its answer.

A command says no by raising :class:`CommandFailed`; :func:`command` turns that into one
``error:`` line on stderr (never read as markup, never wrapped, so scripts can grep it) and the
exit status the failure carries. Nothing else in the CLI prints errors or picks exit codes.

This module is imported by ``provenance --help``, so it imports only typer and rich's console:
anything heavier is imported inside the command that needs it.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn, ParamSpec

import typer
from rich.console import Console
from rich.markup import escape

__all__ = [
    "DEFAULT_DATA_DIR",
    "EXIT_FAILED",
    "EXIT_UNREACHABLE",
    "EXIT_UNREADABLE",
    "ApiKeyOpt",
    "CommandFailed",
    "DataDirOpt",
    "JsonOpt",
    "UrlOpt",
    "command",
    "emit",
    "err",
    "out",
    "read_json",
    "reporting",
    "show_fields",
]

EXIT_FAILED = 1  # the command could not do what it was asked (or the answer is "invalid")
EXIT_UNREACHABLE = 2  # the service or node did not answer (click also exits 2 on usage errors)
EXIT_UNREADABLE = 4  # an input file is missing, not JSON, or not the document it should be

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)  # an error stays one line, whole, for grep and logs

DEFAULT_DATA_DIR = Path(".provenance")
UrlOpt = Annotated[
    str | None,
    typer.Option("--url", envvar="PROVENANCE_URL", help="a running service; default: in process"),
]
DataDirOpt = Annotated[
    Path,
    typer.Option("--data-dir", envvar="PROVENANCE_DATA_DIR", help="the service's data directory"),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON for scripts")]
ApiKeyOpt = Annotated[
    str | None,
    typer.Option(
        "--api-key", envvar="PROVENANCE_API_KEY", help="default: <data dir>/admin.key if present"
    ),
]


class CommandFailed(Exception):
    """A command cannot do what it was asked; ``str(self)`` is the line the user sees."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _fail(message: str, code: int) -> NoReturn:
    """Print one error line (its text is never read as markup) and exit with ``code``."""
    err.print(f"[red]error:[/red] {escape(message)}")
    raise typer.Exit(code)


@contextmanager
def reporting() -> Iterator[None]:
    """Run a block as a command: a :class:`CommandFailed` becomes its error line and status."""
    try:
        yield
    except CommandFailed as exc:
        _fail(str(exc), exc.exit_code)


P = ParamSpec("P")


def command(body: Callable[P, None]) -> Callable[P, None]:
    """Make ``body`` a command whose failures are reported by :func:`reporting`.

    ``functools.wraps`` keeps the signature, docstring and name that typer builds the command's
    options and help from.
    """

    @functools.wraps(body)
    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        with reporting():
            body(*args, **kwargs)

    return run


def emit(data: Any, as_json: bool, human: Callable[[Any], None]) -> None:
    """Print a command's answer: as JSON for scripts, else with its ``human`` renderer."""
    if as_json:
        out.print_json(json.dumps(data))
    else:
        human(data)


def show_fields(fields: list[tuple[str, Any]]) -> None:
    """One ``key  value`` line per field, never wrapped or cut: hashes are meant to be copied."""
    width = max(len(key) for key, _ in fields) + 2
    for key, value in fields:
        out.print(f"{key:<{width}}{value}", markup=False, highlight=False)


def read_json(path: Path) -> Any:
    """A JSON file given on the command line; a bad one is a user error, not a crash."""
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CommandFailed(f"{path} is not a readable JSON file: {exc}", EXIT_UNREADABLE) from None
