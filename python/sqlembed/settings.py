"""Typed settings, read from ``SQLEMBED_*`` environment variables once, at an entry point.

Every field carries its description: the README's configuration table is generated from this class
(``python -m sqlembed.settings``), and a test fails when the two differ.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sqlembed.db.targets.spec import VectorType
from sqlembed.engine.config import (
    DEFAULT_MODEL,
    BackendName,
    Direction,
    EngineSettings,
    PlacementMode,
    Precision,
    model_id,
)

__all__ = ["DEFAULT_MODEL", "Precision", "Settings", "VectorType"]


def _default_model_dir() -> Path:
    return Path(os.path.expanduser("~/.cache/sqlembed/models"))


def _default_state_dir() -> Path:
    return Path(os.path.expanduser("~/.cache/sqlembed/state"))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SQLEMBED_", extra="ignore", frozen=True)

    # --- serving
    host: str = Field("127.0.0.1", description="listen address")
    port: int = Field(8888, ge=0, le=65535, description="listen port")
    workers: int = Field(
        1,
        ge=1,
        le=64,
        description="front processes on one port (SO_REUSEPORT); with more than one, an engine process owns the model "
        "and the batcher and the fronts hand it token ids (docs/architecture.md)",
    )
    tls_cert: Path | None = Field(None, description="certificate file: serve HTTPS (SQL Server calls only HTTPS)")
    tls_key: Path | None = Field(None, description="its private key")
    event_loop: Literal["auto", "uvloop", "asyncio"] = Field(
        "auto",
        description="the server processes' event loop: `auto` = uvloop where installed (less CPU per request and "
        "per TLS handshake, docs/benchmarks.md), else asyncio's",
    )
    api_keys: SecretStr = Field(SecretStr(""), description="comma-separated API keys; empty: no auth (secret)")
    api_keys_file: Path | None = Field(
        None,
        description="one key per line (`#` comments); re-read when it changes and on SIGHUP "
        "(rotation without a restart)",
    )
    log_level: str = Field("INFO", description="DEBUG, INFO, WARNING or ERROR")

    # --- the model and the engine
    model_dir: Path = Field(
        default_factory=_default_model_dir,
        description="model store",
        json_schema_extra={"doc_default": "~/.cache/sqlembed/models"},
    )
    model: str = Field(DEFAULT_MODEL, description="served model name")
    precision: Precision = Field(
        "fp32",
        description="`fp32`, `int8` (calibrated static int8) or `bf16` (CPUs with avx512_bf16/AMX); "
        "part of the model id, "
        "so vectors of different precisions never share a column",
    )
    model_aliases: str = Field(
        "all-minilm,all-minilm:l6-v2,all-MiniLM-L6-v2,sentence-transformers/all-MiniLM-L6-v2",
        description="comma-separated names clients may send for the served model, besides its id",
    )
    strict_model: bool = Field(False, description="404 for unknown model names (else served by the loaded model)")
    build_on_start: bool = Field(True, description="build the default model on first start when it is missing")
    backend: BackendName = Field(
        "auto",
        description="`auto` (TensorRT, else torch CUDA, else the CPU runtime for the precision), "
        "`onnx-cpu`, `openvino`, "
        "`torch`, `tensorrt`",
    )
    threads: int = Field(0, ge=0, description="inference threads of the service's engine; 0 = all cores")
    spin: bool = Field(True, description="ONNX Runtime threads spin between operators (faster, burns CPU)")
    cuda_device: str | None = Field(None, description="GPU index for the service's engine (Spark tasks use theirs)")

    # --- requests and batching
    max_body_bytes: int = Field(
        100 * 1024 * 1024, ge=1024, description="request body limit (SQL Server sends at most 100 MB, contract A7)"
    )
    max_inputs: int = Field(2048, ge=1, description="texts per request (OpenAI's documented limit, contract F1)")
    max_queue_texts: int = Field(8192, ge=1, description="texts accepted and not yet answered; beyond it, 429")
    max_batch_items: int = Field(32, ge=1, description="texts per inference batch")
    max_batch_tokens: int = Field(4096, ge=16, description="padded tokens per inference batch")
    max_wait_ms: float = Field(
        0.0, ge=0,
        description="how long a request that finds the engine idle waits for company; 0 = runs at once "
        "(arrivals while the engine is busy form the next batch)",
    )
    max_padding_share: float = Field(
        0.15, ge=0, le=1, description="largest share of an online batch's padded tokens that may be padding"
    )
    retry_after_s: int = Field(1, ge=1, description="`Retry-After` on 429 and 503")
    truncation_direction: Direction = Field(
        "right",
        description="which end of an over-long text is cut: `right` keeps the start, `left` keeps the end "
        "(per request: "
        "`truncation_direction`)",
    )
    long_text: Literal["truncate", "chunk-mean"] = Field(
        "truncate",
        description="single-text routes: an over-long text is truncated, or (`chunk-mean`) embedded as the "
        "normalized mean "
        "of its chunks' vectors (docs/benchmarks.md)",
    )
    custom_formats: str = Field(
        "[]", description="JSON list of your own request shapes under `/custom/...` (docs/formats.md)"
    )

    # --- bulk jobs (Spark)
    databases: SecretStr = Field(
        SecretStr("{}"),
        description='JSON `{"name": "url or ODBC string"}`: job targets, so T-SQL sends a name, '
        "never a password (secret)",
    )
    job_store: SecretStr = Field(
        SecretStr(""),
        description="job records: empty = a SQLite file in STATE_DIR (local disk only), `db:<name>` = that database's "
        "`sqlembed.jobs` (SQL Server), or a database URL",
    )
    state_dir: Path = Field(
        default_factory=_default_state_dir,
        description="local state (the default job store)",
        json_schema_extra={"doc_default": "~/.cache/sqlembed/state"},
    )
    spark_master: str = Field("local[*]", description="Spark master URL of the service's long-lived SparkSession")
    spark_gpu: bool = Field(False, description="executors are given GPUs (one per executor)")
    spark_task_gpu_amount: float = Field(1.0, gt=0, le=1, description="GPU share of a bulk task")
    job_batch_rows: int = Field(512, ge=1, le=100_000, description="rows per embed + write chunk on executors")
    task_threads: int = Field(0, ge=0, description="inference threads per bulk executor task; 0 = spark.task.cpus")
    dry_run_sample_rows: int = Field(
        1000, ge=1, le=100_000,
        description="a job's dry run tokenizes (and times) this many pending rows, spread over the table")
    worker_rows_per_s: float | None = Field(
        None, gt=0, description="rows/s one bulk worker (one GPU) embeds, for dry-run estimates; unset: measure "
                                "this host's engine on the dry run's sample")
    worker_hour_price: float | None = Field(
        None, ge=0, description="price of one worker-hour: dry runs then add a cost to each estimate")
    price_currency: str = Field("USD", min_length=1, max_length=8, description="the currency of worker_hour_price")
    progress_port: int = Field(
        0,
        ge=0,
        le=65535,
        description="port the driver listens on for per-chunk progress from bulk tasks; 0 = any free port",
    )
    db_retry_s: float = Field(
        60.0,
        ge=0,
        description="a bulk task retries an unreachable or locked database this long (backoff), then the job fails",
    )
    vector_type: VectorType | None = Field(
        None,
        description="vector base type written by bulk jobs where the column does not say (SQLite targets): "
        "`float32` or "
        "`float16`",
    )
    sync_interval_s: float = Field(60.0, gt=0, description="`embed-table --watch`: seconds between syncs")
    dsn: SecretStr = Field(
        SecretStr(""),
        description="`sqlembed db deploy|status`: the database (ODBC connection string or mssql URL) when "
        "`--dsn` is not given (secret)",
    )
    sql_dir: Path | None = Field(None, description="`sqlembed db`: T-SQL files to use instead of the packaged `sql/`")

    # --- scaling and online placement
    scale_max_workers: int = Field(
        1, ge=0, le=100, description="`workers_wanted` on /v1/scale while bulk jobs are pending"
    )
    scale_idle_s: float = Field(
        300.0, ge=0, description="online traffic this recent keeps one GPU worker wanted (placement spark|auto)"
    )
    placement: PlacementMode = Field(
        "local",
        description="where online batches run: the local engine, Spark executors, or executors when any is connected",
    )
    dispatch_host: str | None = Field(
        None,
        description="the name executors reach the driver at (online batches, bulk progress); default spark.driver.host",
    )
    dispatch_port: int = Field(0, ge=0, le=65535, description="port for online executor tasks; 0 = any free port")
    dispatch_timeout_s: float = Field(
        10.0, gt=0, description="a batch not answered by its executor this long is rerun on the local engine"
    )
    dispatch_wait_s: float = Field(
        20.0,
        gt=0,
        description="placement=spark: how long a text waits for an executor before 503 (SQL Server waits 30 s)",
    )
    dispatch_concurrency: int = Field(16, ge=1, le=1024, description="online batches in flight at once")
    spark_online_gpu_amount: float = Field(
        0.5, gt=0, le=1, description="GPU share of the long-running online task, so a bulk task fits beside it"
    )

    @field_validator("model_aliases")
    @classmethod
    def _strip_aliases(cls, v: str) -> str:
        return ",".join(a.strip() for a in v.split(",") if a.strip())

    def api_key_list(self) -> list[str]:
        return [k.strip() for k in self.api_keys.get_secret_value().split(",") if k.strip()]

    def alias_list(self) -> list[str]:
        return [a for a in self.model_aliases.split(",") if a]

    def served_model_id(self) -> str:
        """The model directory / id the service loads: name plus precision (engine.store.model_id)."""
        return model_id(self.model, self.precision)

    def engine_settings(self) -> EngineSettings:
        """What this process's engine is opened with (composition roots only)."""
        return EngineSettings(model_dir=self.model_dir, model=self.model, precision=self.precision,
                              backend=self.backend, threads=self.threads, spin=self.spin, device=self.cuda_device,
                              max_batch_items=self.max_batch_items, max_batch_tokens=self.max_batch_tokens,
                              build_on_start=self.build_on_start)

    def database_urls(self) -> dict[str, str]:
        import json

        raw = self.databases.get_secret_value().strip() or "{}"
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as e:
            raise ValueError("SQLEMBED_DATABASES must be a JSON object of name -> URL") from e
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise ValueError("SQLEMBED_DATABASES must be a JSON object of name -> URL")
        return value

    def job_store_url(self) -> str:
        raw = self.job_store.get_secret_value().strip()
        if not raw:
            return f"sqlite:///{self.state_dir / 'jobs.db'}"
        if raw.startswith("db:"):
            url = self.database_urls().get(raw[3:])
            if url is None:
                raise ValueError(f"SQLEMBED_JOB_STORE names database {raw[3:]!r}, which SQLEMBED_DATABASES lacks")
            return url
        return raw

    @property
    def progress_host(self) -> str | None:
        """Executors reach the driver at the dispatch host for progress reports too."""
        return self.dispatch_host


def _default_text(name: str, info: Any) -> str:
    extra = info.json_schema_extra or {}
    if isinstance(extra, dict) and extra.get("doc_default"):
        return f"`{extra['doc_default']}`"
    default = info.get_default(call_default_factory=False)
    if isinstance(default, SecretStr):
        default = default.get_secret_value()
    if default is None or default == "":
        return "none"
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    if isinstance(default, float) and default.is_integer():
        default = int(default)
    return f"`{default}`"


def markdown_table() -> str:
    """The README's configuration table, one row per setting, in declaration order."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, info in Settings.model_fields.items():
        rows.append(f"| `SQLEMBED_{name.upper()}` | {_default_text(name, info)} | {info.description} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")
