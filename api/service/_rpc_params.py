"""JSON-RPC parameters, checked before anything runs: each method's parameters by name, and one
parser per kind of value (address, quantity, block, call object, log filter...).

A parser takes the JSON value and returns what web3 wants, or raises :class:`InvalidParams`
whose message names the argument and says what is wrong in plain words, the way geth does
(``invalid argument 0: hex string has length 38, want 40 for an address``). Nothing a caller
sends reaches the chain before it has passed here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from eth_utils import to_checksum_address

__all__ = [
    "REQUIRED",
    "InvalidParams",
    "Param",
    "address",
    "addresses",
    "block",
    "boolean",
    "call_object",
    "hash32",
    "log_filter",
    "parse_params",
    "percentiles",
    "quantity",
    "state_overrides",
]

REQUIRED: Any = object()
MAX_UINT256 = 2**256 - 1
MAX_FILTER_ITEMS = 100  # addresses, or choices at one topic position, in one log filter
MAX_PERCENTILES = 100
BLOCK_TAGS = frozenset({"latest", "earliest", "pending", "safe", "finalized"})

_HEX = re.compile(r"0x[0-9a-fA-F]*")
_CALL_QUANTITIES = ("gas", "gasPrice", "value", "nonce", "maxFeePerGas", "maxPriorityFeePerGas",
                    "chainId", "type")  # fmt: skip
_CALL_FIELDS = frozenset({"from", "to", "data", "input", "accessList", *_CALL_QUANTITIES})


class InvalidParams(ValueError):
    """A parameter a JSON-RPC method cannot use; the message is for the caller as it is."""


@dataclass(frozen=True)
class Param:
    """One positional parameter: its name, its parser, and its default (or ``REQUIRED``)."""

    name: str
    parse: Callable[[Any], Any]
    default: Any = REQUIRED


def parse_params(spec: tuple[Param, ...], params: Any) -> list[Any]:
    """The parsed positional arguments for ``spec``, or :class:`InvalidParams`."""
    if params is None:
        params = []
    if not isinstance(params, list):
        raise InvalidParams("params must be an array of positional arguments")
    if len(params) > len(spec):
        raise InvalidParams(f"too many arguments, want at most {len(spec)}")
    parsed = []
    for position, param in enumerate(spec):
        given = params[position] if position < len(params) else None
        if given is None:
            if param.default is REQUIRED:
                raise InvalidParams(
                    f"missing value for required argument {position} ({param.name})"
                )
            parsed.append(param.default)
            continue
        try:
            parsed.append(param.parse(given))
        except InvalidParams as exc:
            raise InvalidParams(f"invalid argument {position} ({param.name}): {exc}") from None
    return parsed


def _hex_string(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidParams(f"{what} must be a hex string, got {_kind(value)}")
    if not _HEX.fullmatch(value):
        if not value.startswith("0x"):
            raise InvalidParams(f"{what} must be a hex string with 0x prefix")
        raise InvalidParams(f"{what} has characters that are not hex digits")
    return value


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", bool: "a boolean", str: "a string"}.get(
        type(value), "a number" if isinstance(value, int | float) else "something else"
    )


def _fixed(value: Any, digits: int, what: str) -> str:
    text = _hex_string(value, what)
    if len(text) - 2 != digits:
        raise InvalidParams(f"hex string has length {len(text) - 2}, want {digits} for {what}")
    return text.lower()


def address(value: Any) -> str:
    """``0x`` + 40 hex digits, in any case, as a checksummed address."""
    return to_checksum_address(_fixed(value, 40, "an address"))


def addresses(value: Any) -> str | list[str]:
    """One address or a list of at most ``MAX_FILTER_ITEMS``."""
    if isinstance(value, list):
        if len(value) > MAX_FILTER_ITEMS:
            raise InvalidParams(f"at most {MAX_FILTER_ITEMS} addresses, got {len(value)}")
        return [address(item) for item in value]
    return address(value)


def hash32(value: Any) -> str:
    """``0x`` + 64 hex digits (a block or transaction hash, a topic)."""
    return _fixed(value, 64, "a 32-byte hash")


def quantity(value: Any) -> int:
    """A hex quantity (``0x1f``), or a non-negative JSON integer, at most 2**256 - 1."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        text = _hex_string(value, "a quantity")
        if len(text) == 2:
            raise InvalidParams("a quantity needs at least one hex digit after 0x")
        if len(text) > 66:
            raise InvalidParams("a quantity is at most 256 bits")
        number = int(text, 16)
    if not 0 <= number <= MAX_UINT256:
        raise InvalidParams("a quantity must be between 0 and 2**256 - 1")
    return number


def _data(value: Any) -> str:
    text = _hex_string(value, "data")
    if len(text) % 2:
        raise InvalidParams("data must have an even number of hex digits")
    return text


def block(value: Any) -> int | str:
    """A tag (``latest``...), a number, a block hash, or an EIP-1898 object naming one of them."""
    if isinstance(value, str) and value in BLOCK_TAGS:
        return value
    if isinstance(value, dict):
        unknown = set(value) - {"blockHash", "blockNumber", "requireCanonical"}
        if unknown:
            raise InvalidParams(f"unknown block field {sorted(unknown)[0]!r}")
        if "blockHash" in value:
            return hash32(value["blockHash"])
        if "blockNumber" in value:
            return block(value["blockNumber"])
        raise InvalidParams("a block object needs blockHash or blockNumber")
    if isinstance(value, str) and len(value) == 66:
        return hash32(value)
    try:
        return quantity(value)
    except InvalidParams:
        raise InvalidParams(
            "a block is a tag (latest, earliest, pending, safe, finalized), a hex number "
            "or a block hash"
        ) from None


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidParams(f"must be true or false, got {_kind(value)}")
    return value


def call_object(value: Any) -> dict[str, Any]:
    """A call (``eth_call``, ``eth_estimateGas``): known fields only, each one checked."""
    if not isinstance(value, dict):
        raise InvalidParams(f"a call must be an object, got {_kind(value)}")
    unknown = set(value) - _CALL_FIELDS
    if unknown:
        raise InvalidParams(f"unknown call field {sorted(unknown)[0]!r}")
    call: dict[str, Any] = {}
    for key, given in value.items():
        if given is None:
            continue
        if key in ("from", "to"):
            call[key] = address(given)
        elif key in ("data", "input"):
            call["data"] = _data(given)
        elif key == "accessList":
            if not isinstance(given, list) or given:
                raise InvalidParams("accessList is not supported (give [] or leave it out)")
        else:
            call[key] = quantity(given)
    if "data" in value and "input" in value and value["data"] != value["input"]:
        raise InvalidParams("data and input differ; give one of them")
    return call


def _topics(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise InvalidParams("topics must be an array")
    if len(value) > 4:
        raise InvalidParams(f"at most 4 topic positions, got {len(value)}")
    topics: list[Any] = []
    for position in value:
        if position is None:
            topics.append(None)
        elif isinstance(position, list):
            if len(position) > MAX_FILTER_ITEMS:
                raise InvalidParams(f"at most {MAX_FILTER_ITEMS} topics at one position")
            topics.append([None if t is None else hash32(t) for t in position])
        else:
            topics.append(hash32(position))
    return topics


def log_filter(value: Any) -> dict[str, Any]:
    """An ``eth_getLogs`` filter: a block range or one block hash, addresses, topics."""
    if not isinstance(value, dict):
        raise InvalidParams(f"a filter must be an object, got {_kind(value)}")
    unknown = set(value) - {"fromBlock", "toBlock", "blockHash", "address", "topics"}
    if unknown:
        raise InvalidParams(f"unknown filter field {sorted(unknown)[0]!r}")
    query: dict[str, Any] = {}
    if value.get("blockHash") is not None:
        if value.get("fromBlock") is not None or value.get("toBlock") is not None:
            raise InvalidParams("give blockHash or a block range, not both")
        query["blockHash"] = hash32(value["blockHash"])
    for key in ("fromBlock", "toBlock"):
        if value.get(key) is not None:
            given = value[key]
            if (isinstance(given, str) and len(given) == 66) or isinstance(given, dict):
                raise InvalidParams(f"{key} must be a tag or a block number")
            query[key] = block(given)
    if value.get("address") is not None:
        query["address"] = addresses(value["address"])
    if value.get("topics") is not None:
        query["topics"] = _topics(value["topics"])
    return query


def percentiles(value: Any) -> list[float]:
    """``eth_feeHistory`` reward percentiles: at most 100 numbers from 0 to 100, ascending."""
    if not isinstance(value, list) or len(value) > MAX_PERCENTILES:
        raise InvalidParams(f"must be an array of at most {MAX_PERCENTILES} numbers")
    numbers = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int | float) or not 0 <= item <= 100:
            raise InvalidParams("each percentile is a number from 0 to 100")
        numbers.append(float(item))
    if numbers != sorted(numbers):
        raise InvalidParams("percentiles must be in ascending order")
    return numbers


def state_overrides(value: Any) -> None:
    """State overrides are not supported; an empty object is accepted and means none."""
    if value != {}:
        raise InvalidParams("state overrides are not supported by this node")
