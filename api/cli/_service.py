"""Commands that call the HTTP API: the ``--url``, ``--api-key``, ``--data-dir`` and ``--json``
options declared once, the connection, and the check that turns a problem answer into an error.

The CLI talks HTTP only: to a running service given by ``--url`` (``PROVENANCE_URL``), or,
without one, to the service opened in process on ``--data-dir`` through starlette's TestClient.
One code path, so the CLI behaves exactly like the API. A problem answer becomes one line,
``HTTP 404: <detail> [<problem type>]`` (exit 1); a service that does not answer, exit 2.

:func:`service_command` writes a command as ``body(call, <its own options>)`` and adds the
shared options to the signature typer reads, so ten commands do not repeat them.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate

from api.cli._common import (
    DEFAULT_DATA_DIR,
    EXIT_UNREACHABLE,
    ApiKeyOpt,
    CommandFailed,
    DataDirOpt,
    JsonOpt,
    UrlOpt,
    emit,
    reporting,
)

if TYPE_CHECKING:
    import httpx

__all__ = ["ApiCall", "check", "connect", "service_command"]


def _auth_headers(api_key: str | None, data_dir: Path) -> dict[str, str]:
    key_file = data_dir / "admin.key"
    if api_key is None and key_file.exists():
        api_key = key_file.read_text().strip()
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


@contextmanager
def connect(url: str | None, data_dir: Path, api_key: str | None = None) -> Iterator[httpx.Client]:
    """An HTTP client for a running service (``url``) or for one opened in process.

    httpx, and for the in-process service the whole app, are imported here and not at the top:
    commands that never call the API (``verify``, ``--help``) must not pay for them.
    """
    import httpx

    if url:
        headers = _auth_headers(api_key, data_dir)
        try:
            with httpx.Client(base_url=url.rstrip("/"), timeout=600, headers=headers) as client:
                yield client
        except httpx.TransportError as exc:
            raise CommandFailed(f"cannot reach the service: {exc}", EXIT_UNREACHABLE) from None
        return
    import warnings

    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

    from api.app import create_app
    from api.settings import Settings

    settings = Settings(data_dir=data_dir)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        client.headers.update(_auth_headers(api_key, data_dir))  # admin.key exists once started
        yield client


def check(response: httpx.Response) -> Any:
    """The JSON of a successful answer; a problem answer raises :class:`CommandFailed`."""
    if response.is_success:
        try:
            return response.json()
        except ValueError:
            raise CommandFailed(
                f"HTTP {response.status_code}: the answer is not JSON: {response.text[:500]}"
            ) from None
    try:
        problem = response.json()
        detail = f"{problem.get('detail')} [{problem.get('type', '').rsplit(':', 1)[-1]}]"
    except (ValueError, AttributeError):  # not JSON, or JSON that is not a problem document
        detail = response.text[:500]
    raise CommandFailed(f"HTTP {response.status_code}: {detail}")


@dataclass(frozen=True)
class ApiCall:
    """One run of an API command: the service it talks to and how it answers."""

    url: str | None
    api_key: str | None
    data_dir: Path
    as_json: bool = False

    def connect(self) -> AbstractContextManager[httpx.Client]:
        """The client for this call's service (looked up at call time, so tests can swap it)."""
        return connect(self.url, self.data_dir, self.api_key)

    def emit(self, data: Any, human: Callable[[Any], None]) -> None:
        """Print the answer as JSON with ``--json``, else with ``human``."""
        emit(data, self.as_json, human)


_KEYWORD = inspect.Parameter.KEYWORD_ONLY
_CONNECTION = (
    inspect.Parameter("url", _KEYWORD, default=None, annotation=UrlOpt),
    inspect.Parameter("api_key", _KEYWORD, default=None, annotation=ApiKeyOpt),
    inspect.Parameter("data_dir", _KEYWORD, default=DEFAULT_DATA_DIR, annotation=DataDirOpt),
)
_JSON = inspect.Parameter("as_json", _KEYWORD, default=False, annotation=JsonOpt)
ApiBody = Callable[Concatenate[ApiCall, ...], None]


def service_command(*, json_output: bool = True) -> Callable[[ApiBody], Callable[..., None]]:
    """Make ``body(call: ApiCall, **options)`` a command with the shared options.

    The command's options are ``body``'s own, then ``--url``, ``--api-key``, ``--data-dir`` and
    (with ``json_output``) ``--json``; typer reads them from the ``__signature__`` built here.
    Failures are reported as every command's are (:func:`api.cli._common.reporting`).
    """
    shared = (*_CONNECTION, _JSON) if json_output else _CONNECTION

    def decorate(body: ApiBody) -> Callable[..., None]:
        own = list(inspect.signature(body, eval_str=True).parameters.values())[1:]
        clash = {p.name for p in own} & {p.name for p in shared}
        if clash:
            raise TypeError(f"{body.__name__} declares shared options itself: {sorted(clash)}")

        def run(**options: Any) -> None:
            call = ApiCall(
                url=options.pop("url"),
                api_key=options.pop("api_key"),
                data_dir=options.pop("data_dir"),
                as_json=options.pop("as_json", False),
            )
            with reporting():
                body(call, **options)

        parameters = [*own, *shared]
        run.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
        run.__annotations__ = {p.name: p.annotation for p in parameters}
        run.__name__, run.__qualname__ = body.__name__, body.__qualname__
        run.__doc__, run.__module__ = body.__doc__, body.__module__
        return run

    return decorate
