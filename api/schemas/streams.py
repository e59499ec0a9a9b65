"""Streams of sensor readings: definitions, ingest answers, versions, dead letters, proofs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from api.schemas._common import CellValue, Hash, _Create, _Public

__all__ = [
    "STREAM_NAME_PATTERN",
    "ChunkPublic",
    "DeadLetterPublic",
    "DeadLettersPublic",
    "IngestPublic",
    "ReadingProofPublic",
    "RefusedReadingPublic",
    "StreamColumn",
    "StreamCreate",
    "StreamPublic",
    "StreamsPublic",
    "VersionPublic",
    "VersionsPublic",
]

# MQTT-topic safe (no "/", "+", "#") and URL-path safe.
STREAM_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"


class StreamColumn(_Create):
    name: str = Field(min_length=1, max_length=64, description="[A-Za-z_][A-Za-z0-9_.-]*")
    type: Literal["integer", "float", "string", "boolean"]


class StreamCreate(_Create):
    name: str = Field(pattern=STREAM_NAME_PATTERN, description="also the MQTT topic's last level")
    columns: list[StreamColumn] = Field(min_length=1, max_length=1000)
    seal_readings: int = Field(10_000, ge=1, le=1_000_000, description="seal every N readings")
    seal_seconds: float = Field(
        60.0, gt=0, le=86_400, description="or when the oldest unsealed reading is this old"
    )


class StreamPublic(_Public):
    name: str
    columns: list[StreamColumn]
    seal_readings: int
    seal_seconds: float
    created_at: float = Field(description="unix seconds")
    readings: int = Field(ge=0, description="readings stored (sealed or not)")
    pending: int = Field(ge=0, description="readings waiting for the next seal")
    dead_letters: int = Field(ge=0)
    versions: int = Field(ge=0)
    last_received: int | None = Field(None, description="unix milliseconds")
    last_seal: float | None = Field(None, description="unix seconds of the latest seal")
    latest_version: Hash | None = None
    rate: float = Field(0.0, ge=0, description="readings/s received over the last minute")
    schema_hash: Hash = Field(description="the schema hash of the stream's chunk files")
    topic: str | None = Field(None, description="the MQTT topic, when MQTT ingest is on")
    seal_error: str | None = Field(
        None, description="why sealing fails (retried; the readings wait, stored), if it does"
    )


class StreamsPublic(_Public):
    data: list[StreamPublic]
    count: int = Field(ge=0)


class RefusedReadingPublic(_Public):
    index: int = Field(ge=0, description="the reading's place in the body (array item or line)")
    reason: str


class IngestPublic(_Public):
    """Readings stored durably before this answer; refused ones are in the dead letters."""

    accepted: int = Field(ge=0, description="new readings stored")
    duplicates: int = Field(ge=0, description="readings whose id was seen before (stored once)")
    dead_letters: int = Field(ge=0)
    refused: list[RefusedReadingPublic]


class ChunkPublic(_Public):
    number: int = Field(ge=1)
    hash: Hash = Field(description="the chunk's dataset content hash")
    rows_root: Hash
    readings: int = Field(ge=1)
    first_row: int = Field(ge=0, description="the version row where this chunk starts")
    first_received: int = Field(description="unix milliseconds")
    last_received: int = Field(description="unix milliseconds")


class VersionPublic(_Public):
    number: int = Field(ge=1)
    hash: Hash = Field(description="a dataset hash: train on it, verify it, trace it")
    rows_root: Hash = Field(description="the Merkle root over the version's chunks")
    readings: int = Field(ge=1, description="readings in this version (all chunks so far)")
    previous: Hash | None
    chunk: ChunkPublic = Field(description="the chunk this version added")
    chunks: list[Hash] = Field(description="the chunks' hashes, in order")
    sealed_at: float = Field(description="unix seconds")


class VersionsPublic(_Public):
    data: list[VersionPublic]
    count: int = Field(ge=0)


class DeadLetterPublic(_Public):
    received_at: int = Field(description="unix milliseconds")
    source: Literal["http", "mqtt"]
    payload: str = Field(description="the reading as received (at most 1,000 characters)")
    reason: str


class DeadLettersPublic(_Public):
    data: list[DeadLetterPublic]
    count: int = Field(ge=0)


class ReadingProofPublic(_Public):
    """A reading's row in its chunk (proved against the chunk's on-chain rows root) and the
    chunk's place in a version (proved against the version's on-chain rows root)."""

    stream: str
    id: str
    received_at: int
    version: Hash
    chunk: Hash
    index: int = Field(ge=0, description="the row in the chunk")
    row: list[CellValue]
    row_digest: Hash
    leaf: Hash
    proof: list[Hash]
    root: Hash = Field(description="the chunk's rows root")
    leaf_encoding: list[str]
    chunk_leaf: list[str | int] = Field(
        description="[position, chunk hash, chunk rows root, first row, row count]"
    )
    chunk_leaf_hash: Hash
    chunk_proof: list[Hash]
    version_root: Hash = Field(description="the version's rows root")
    chunk_leaf_encoding: list[str]
