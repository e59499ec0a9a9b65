"""The model file: a byte-stable skops archive plus a small provenance header.

Why this exists: ``skops.io.dumps`` is safe to load but not byte-stable. Three things vary
from run to run: zip entry timestamps (the clock), the ``__id__`` of every node and the
``<id>.npy`` names of array entries (``id()`` memory addresses), and ``<uuid4>.bin`` names
for bytes. Everything else (the schema's structure and order, the ``.npy`` payloads written
by ``np.save``) depends only on the fitted estimator.

So the file is rewritten canonically:

1. ``schema.json`` is walked depth-first in document order; each distinct ``__id__`` is
   renumbered 1, 2, 3... in order of first appearance (never 0: skops skips memoisation for
   a falsy id), and each referenced data entry is renamed ``<n>.npy`` / ``<n>.bin`` in order of
   first appearance. The renaming is a bijection, so references (``CachedNode``) still match.
2. ``schema.json`` is re-serialised with sorted keys and no whitespace.
3. The zip is rebuilt with entries in a fixed order (``provenance.json``, ``schema.json``,
   then data entries by number), all ``ZIP_STORED`` (no compressor version can change the
   bytes), timestamp 1980-01-01 00:00:00, Unix permissions 0644.

``provenance.json`` is canonical JSON naming the format, algorithm, task, estimator class,
feature order and target, so a loaded model knows how to build its input. The model hash is
the SHA-256 of the whole file: the artifact store and the chain use the same hash.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from typing import Any

import skops.io

from ml.errors import InvalidModelFile
from ml.hashing import canonical_json

__all__ = ["HEADER_NAME", "MODEL_FORMAT", "ModelHeader", "read_model_file", "write_model_file"]

MODEL_FORMAT = "provenance-ledger/model"
MODEL_FORMAT_VERSION = 1
HEADER_NAME = "provenance.json"
SCHEMA_NAME = "schema.json"
_EPOCH = (1980, 1, 1, 0, 0, 0)
_MAX_HEADER_BYTES = 1 << 20
# skops loaders that read their payload from a zip entry named by "file".
_FILE_LOADERS = frozenset({"NdArrayNode", "BytesNode", "BytearrayNode", "SparseMatrixNode"})


@dataclass(frozen=True)
class ModelHeader:
    """What a model file says about itself, beside the estimator."""

    algorithm: str
    task: str
    estimator: str
    features: tuple[str, ...]
    target: str

    def to_json(self) -> dict[str, Any]:
        """The header document stored as ``provenance.json``."""
        return {
            "format": MODEL_FORMAT,
            "format_version": MODEL_FORMAT_VERSION,
            "algorithm": self.algorithm,
            "task": self.task,
            "estimator": self.estimator,
            "features": list(self.features),
            "target": self.target,
        }


def write_model_file(estimator: Any, header: ModelHeader) -> bytes:
    """Serialise a fitted estimator with skops and rewrite it byte-stably."""
    raw = zipfile.ZipFile(io.BytesIO(skops.io.dumps(estimator)))
    schema = json.loads(raw.read(SCHEMA_NAME))
    ids: dict[Any, int] = {}
    files: dict[str, str] = {}

    # 1. Renumber ids and entry names in document order.
    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "__loader__" in node:
                if "__id__" in node:
                    node["__id__"] = ids.setdefault(node["__id__"], len(ids) + 1)
                entry = node.get("file")
                if node["__loader__"] in _FILE_LOADERS and isinstance(entry, str):
                    if entry not in files:
                        suffix = entry.rsplit(".", 1)[-1] if "." in entry else "bin"
                        files[entry] = f"{len(files) + 1}.{suffix}"
                    node["file"] = files[entry]
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    unreferenced = set(raw.namelist()) - set(files) - {SCHEMA_NAME}
    if unreferenced:  # a skops change we do not understand: refuse rather than drop data
        raise RuntimeError(f"skops wrote entries the schema does not reference: {unreferenced}")

    # 2-3. Rebuild the archive deterministically.
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as archive:
        _put(archive, HEADER_NAME, canonical_json(header.to_json()))
        _put(
            archive, SCHEMA_NAME, json.dumps(schema, sort_keys=True, separators=(",", ":")).encode()
        )
        for old, new in files.items():
            _put(archive, new, raw.read(old))
    return out.getvalue()


def _put(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=_EPOCH)
    info.compress_type = zipfile.ZIP_STORED
    info.create_system = 3
    info.external_attr = 0o644 << 16
    archive.writestr(info, data)


@dataclass(frozen=True)
class _Parsed:
    header: ModelHeader
    types: frozenset[str]
    loaders: frozenset[str]


def read_model_file(data: bytes) -> _Parsed:
    """Check the archive's structure and read its header and the types its schema names.

    Nothing is constructed here: this is the audit that runs before skops builds objects.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, ValueError, EOFError) as exc:
        raise InvalidModelFile(f"not a model file (not a zip archive: {exc})") from None
    names = [info.filename for info in infos]
    if HEADER_NAME not in names or SCHEMA_NAME not in names:
        raise InvalidModelFile(f"not a model file: {HEADER_NAME} or {SCHEMA_NAME} is missing")
    if len(set(names)) != len(names):
        raise InvalidModelFile("the model file has duplicate entries")
    for info in infos:
        # Stored entries cannot expand beyond the archive itself: no zip bombs.
        if info.compress_type != zipfile.ZIP_STORED or info.file_size > len(data):
            raise InvalidModelFile(f"entry {info.filename!r} is compressed or oversized")
    try:
        header_bytes = archive.read(HEADER_NAME)
        schema = json.loads(archive.read(SCHEMA_NAME))
        document = json.loads(header_bytes) if len(header_bytes) <= _MAX_HEADER_BYTES else None
    except (ValueError, zipfile.BadZipFile) as exc:
        raise InvalidModelFile(f"the model file is corrupt: {exc}") from None
    header = _parse_header(document)
    types: set[str] = set()
    loaders: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            loader = node.get("__loader__")
            if isinstance(loader, str):
                loaders.add(loader)
                if loader != "CachedNode":
                    types.add(f"{node.get('__module__')}.{node.get('__class__')}")
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return _Parsed(header=header, types=frozenset(types), loaders=frozenset(loaders))


def _parse_header(document: Any) -> ModelHeader:
    if not isinstance(document, dict):
        raise InvalidModelFile(f"{HEADER_NAME} is not a JSON object")
    if document.get("format") != MODEL_FORMAT or document.get("format_version") != (
        MODEL_FORMAT_VERSION
    ):
        raise InvalidModelFile(
            f"unsupported model format {document.get('format')!r} "
            f"version {document.get('format_version')!r}"
        )
    features = document.get("features")
    fields = [document.get(key) for key in ("algorithm", "task", "estimator", "target")]
    if (
        not all(isinstance(value, str) for value in fields)
        or not isinstance(features, list)
        or not features
        or not all(isinstance(name, str) for name in features)
    ):
        raise InvalidModelFile(f"{HEADER_NAME} is missing or mistypes a field")
    algorithm, task, estimator, target = fields
    return ModelHeader(algorithm, task, estimator, tuple(features), target)
