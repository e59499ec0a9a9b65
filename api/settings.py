"""One settings object, from ``PROVENANCE_*`` environment variables, served by a dependency.

Every limit the service enforces is a field here, and each is checked in one place (listed in
``docs/architecture.md``); a refusal names the setting, as ``limit`` in its problem document.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from api.errors import FieldTooLong
from ml.datasets import Limits

__all__ = ["Settings", "get_settings"]

MiB = 1024 * 1024


class Settings(BaseSettings):
    """Everything the service can be told. Defaults run it with no configuration at all."""

    model_config = SettingsConfigDict(env_prefix="PROVENANCE_", frozen=True, extra="ignore")

    data_dir: Path = Field(Path(".provenance"), description="chain, artifacts, index, receipts")
    chain: Literal["embedded", "rpc"] = "embedded"
    rpc_url: str | None = Field(None, description="JSON-RPC node URL when chain=rpc")
    keystore: Path | None = Field(None, description="encrypted JSON keystore when chain=rpc")
    confirmations: int | None = Field(
        None,
        ge=0,
        le=64,
        description="blocks on top of a write's before it is final; default 0 on the embedded "
        "chain and development nodes (chain id 31337, 1337), 64 on any other RPC chain",
    )
    rpc_timeout: float = Field(10.0, gt=0)

    # Shared engines for several replicas (api/engines.py); unset: SQLite files and a folder
    # under data_dir. Endpoint and credentials of the object store: the standard AWS_* variables.
    database_url: str | None = Field(
        None,
        pattern=r"^postgres(ql)?://",
        description="postgresql://USER:PASSWORD@HOST:PORT/DB: the index, API keys and the "
        "deployment in PostgreSQL (schema by `provenance db upgrade`)",
    )
    database_pool_size: int = Field(10, ge=1, le=1_000, description="connections per process")
    database_pool_timeout: float = Field(
        10.0, gt=0, le=300, description="seconds a request waits for a connection, then 503"
    )
    artifacts_url: str | None = Field(
        None,
        pattern=r"^s3://[^/]+(/.*)?$",
        description="s3://BUCKET/PREFIX: artifacts in an S3-compatible object store",
    )
    artifacts_timeout: float = Field(
        10.0, gt=0, le=300, description="seconds to connect to or hear from the object store"
    )

    max_upload_bytes: int = Field(4096 * MiB, ge=1, description="one uploaded file")
    max_rows: int = Field(500_000_000, ge=1, description="rows of a dataset")
    max_columns: int = Field(1_000, ge=1, description="columns of a dataset")
    max_cells: int = Field(1_000_000_000, ge=1, description="rows times columns of a dataset")
    max_field_chars: int = Field(10_000, ge=1, le=131_072, description="one CSV field")
    max_transform_steps: int = Field(50, ge=1, le=100, description="steps of one derivation")
    max_predict_rows: int = Field(1_000, ge=1, description="rows of one prediction request")
    max_json_bytes: int = Field(8 * MiB, ge=1024, description="a JSON request body")
    max_json_depth: int = Field(32, ge=4, le=256, description="nesting of a JSON body")
    max_name_chars: int = Field(200, ge=1, description="a dataset's or an API key's name")
    max_description_chars: int = Field(2_000, ge=1, description="a dataset's description")

    anchor_batch_size: int = Field(1024, ge=1, description="anchor when this many are pending")
    anchor_interval: float = Field(5.0, gt=0, description="or when the oldest is this old (s)")
    receipt_format: Literal[1, 2] = Field(
        2, description="2: one signature per request over its receipts' Merkle root; 1: per row"
    )

    public_read: bool = Field(True, description="reads and verification need no key")
    session_max_age: int = Field(
        8 * 3600, ge=60, le=30 * 86400, description="seconds a console sign-in lasts"
    )

    # /rpc, bounded like a public node (geth's --rpc.gascap, --rpc.evmtimeout); api/service/rpc.py
    rpc_gas_cap: int = Field(5_000_000, ge=21_000, le=10**9, description="gas of one /rpc call")
    rpc_evm_timeout: float = Field(1.0, gt=0, le=60, description="seconds of EVM per /rpc call")
    rpc_request_timeout: float = Field(
        5.0, gt=0, le=300, description="seconds for one /rpc request, a batch's calls together"
    )
    rpc_readers: int = Field(2, ge=1, le=32, description="reader processes serving /rpc")
    rpc_max_batch: int = Field(100, ge=1, le=10_000, description="calls in one JSON-RPC batch")
    rpc_max_body_bytes: int = Field(1 * MiB, ge=1024, description="one /rpc request body")
    rpc_max_log_blocks: int = Field(10_000, ge=1, description="blocks one eth_getLogs spans")
    rpc_max_logs: int = Field(10_000, ge=1, description="logs one eth_getLogs returns")
    rpc_client_concurrency: int = Field(
        1, ge=1, le=64, description="/rpc requests of one client run at once; the rest wait"
    )

    # Per-client rate limits (token buckets; 0 turns one off); api/ratelimit.py
    rate_limit_anonymous: float = Field(50.0, ge=0, description="requests/s per client address")
    rate_limit_anonymous_burst: int = Field(200, ge=1, description="anonymous burst")
    rate_limit_keyed: float = Field(500.0, ge=0, description="requests/s per API key")
    rate_limit_keyed_burst: int = Field(2_000, ge=1, description="keyed burst")

    # Expensive work (retrain, re-run, bulk verification): api/jobs.py
    expensive_workers: int = Field(2, ge=1, le=64, description="expensive jobs running at once")
    expensive_queue: int = Field(8, ge=0, le=10_000, description="more waiting; past it 429")

    # Verification: api/service/verification.py
    clock_tolerance: int = Field(
        60, ge=0, le=86_400, description="seconds of clock skew allowed between receipt and chain"
    )
    max_verify_receipts: int = Field(10_000, ge=1, description="receipts of one bulk verification")

    # Datasets at real size: ml/scanning.py streams registration; what still holds data in memory
    # is estimated first (ml.training_memory.check_training_memory,
    # ml.transforms.estimate_derive_bytes)
    max_memory_bytes: int = Field(
        4096 * MiB,
        ge=1,
        description="estimated memory of one training (the loaded table) or one derivation "
        "(drop_duplicates' digests, clip_outliers' values)",
    )

    # Training and retraining run in worker processes, each job bounded; ml/training_pool.py.
    # max_memory_bytes above also caps a job's heap while it runs.
    training_workers: int = Field(2, ge=1, le=64, description="training processes (jobs at once)")
    training_warm: bool = Field(
        True,
        description="start the training processes and load the model libraries "
        "(scikit-learn) with the service, so the first training or prediction does not wait "
        "for them; false starts each when first needed (a replica that only serves "
        "predictions then holds no training process)",
    )
    training_time_limit: float = Field(
        300.0, gt=0, le=86_400, description="seconds one training or retraining may run"
    )
    training_coretype: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_]{1,32}$",
        description="OpenBLAS kernel set the training processes use (OPENBLAS_CORETYPE, e.g. "
        "Haswell); unset: the CPU's own. Pinning one across machines makes retrains identical",
    )

    # Writes: ledger/writes/pipeline.py (gathered, re-sent when stuck); POST /v1/datasets/batch
    resend_after_blocks: int = Field(
        3, ge=1, le=1_000, description="blocks a transaction may wait before it is re-sent"
    )
    max_batch_files: int = Field(1_000, ge=1, le=10_000, description="files of one batch upload")
    max_fee_per_gas: int = Field(
        500 * 10**9,
        ge=1,
        description="wei: no transaction is signed with a fee cap above it (RPC chains); writes "
        "wait while the base fee is over it",
    )

    # Streams over MQTT: api/mqtt.py (off while mqtt_url is unset)
    mqtt_url: str | None = Field(
        None,
        pattern=r"^mqtts?://",
        description="broker to subscribe to, mqtt://[user:password@]host:port (mqtts:// for TLS)",
    )
    mqtt_topic_prefix: str = Field(
        "provenance/streams",
        min_length=1,
        max_length=200,
        pattern=r"^[^+#]*[^/+#]$",
        description="readings of stream S arrive on <prefix>/S",
    )
    mqtt_client_id: str | None = Field(
        None, max_length=64, description="the MQTT client id (default: derived from data_dir)"
    )
    mqtt_connections: int = Field(
        4,
        ge=1,
        le=32,
        description="MQTT connections sharing the subscription ($share/<client id>/...): each "
        "has the broker's window of unacknowledged messages (Mosquitto: 20), and the service "
        "acknowledges only after its commit, so one connection's window bounds a commit",
    )
    mqtt_workers: int = Field(
        1,
        ge=1,
        le=16,
        description="MQTT worker processes the connections are spread over (at most one a "
        "connection): each receives, checks and stores on a core of its own; more than one "
        "pays where the machine has cores to spare (on 2 cores, 1 was as fast)",
    )

    def dataset_limits(self) -> Limits:
        """The limits ``ml`` checks while it parses a dataset, from these settings."""
        return Limits(
            max_bytes=self.max_upload_bytes,
            max_rows=self.max_rows,
            max_columns=self.max_columns,
            max_cells=self.max_cells,
            max_field_chars=self.max_field_chars,
        )

    def check_chars(self, field: str, value: str | None, limit: str) -> None:
        """Refuse ``value`` when it is longer than the setting ``limit``; never cut it."""
        maximum = getattr(self, limit)
        if value is not None and len(value) > maximum:
            raise FieldTooLong(field, len(value), limit=limit, maximum=maximum)

    @model_validator(mode="after")
    def _rpc_needs_url(self) -> Settings:
        if self.chain == "rpc" and not self.rpc_url:
            raise ValueError("PROVENANCE_RPC_URL is required when PROVENANCE_CHAIN=rpc")
        return self


@lru_cache
def get_settings() -> Settings:
    """The process's settings, read once (a route reads the app's own: ``api.deps.SettingsDep``)."""
    return Settings()
