"""Typed settings, read from ``SQLEMBED_*`` environment variables once, at an entry point."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Precision = Literal["fp32", "int8"]

DEFAULT_MODEL = "all-minilm-l6-v2"


def _default_model_dir() -> Path:
    return Path(os.path.expanduser("~/.cache/sqlembed/models"))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SQLEMBED_", extra="ignore", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(8888, ge=0, le=65535)
    model_dir: Path = Field(default_factory=_default_model_dir)
    model: str = DEFAULT_MODEL
    precision: Precision = "fp32"
    # Names that clients may send for the served model, besides the model id itself.
    model_aliases: str = "all-minilm,all-minilm:l6-v2,all-MiniLM-L6-v2,sentence-transformers/all-MiniLM-L6-v2"
    strict_model: bool = False
    build_on_start: bool = True

    api_keys: SecretStr = SecretStr("")
    # One key per line; re-read when it changes and on SIGHUP (rotation without a restart).
    api_keys_file: Path | None = None

    tls_cert: Path | None = None
    tls_key: Path | None = None

    # Contract A7: SQL Server sends at most 100 MB per request.
    max_body_bytes: int = Field(100 * 1024 * 1024, ge=1024)
    # OpenAI's documented limit on inputs per request (contract F1).
    max_inputs: int = Field(2048, ge=1)
    max_queue_texts: int = Field(8192, ge=1)
    max_batch_items: int = Field(32, ge=1)
    max_batch_tokens: int = Field(4096, ge=16)
    max_wait_ms: float = Field(1.0, ge=0)
    # Largest share of a batch's padded tokens that may be padding (online batches).
    max_padding_share: float = Field(0.15, ge=0, le=1)
    # ONNX Runtime worker threads spin between operators: faster, but burns CPU the event loop needs.
    spin: bool = True
    threads: int = Field(0, ge=0, description="inference threads; 0 = all cores")
    # auto: TensorRT if installed with an engine for this GPU, else torch CUDA, else ONNX Runtime CPU.
    backend: Literal["auto", "onnx-cpu", "torch", "tensorrt"] = "auto"
    cuda_device: str | None = None
    retry_after_s: int = Field(1, ge=1)

    log_level: str = "INFO"

    # Bulk jobs (Spark). Database targets are named here so T-SQL sends a name, never a password:
    # a JSON object {"name": "sqlalchemy-url"}.
    databases: SecretStr = SecretStr("{}")
    state_dir: Path = Field(default_factory=lambda: Path(os.path.expanduser("~/.cache/sqlembed/state")))
    spark_master: str = "local[*]"
    spark_gpu: bool = False
    spark_task_gpu_amount: float = Field(1.0, gt=0, le=1)
    job_batch_rows: int = Field(512, ge=1, le=100_000)
    # Where job records live: "" = a SQLite file in state_dir (local disk only), "db:<name>" = the
    # sqlembed.jobs table of a SQLEMBED_DATABASES target (SQL Server), or a database URL.
    job_store: SecretStr = SecretStr("")
    # Inference threads per bulk executor task; 0 = spark.task.cpus.
    task_threads: int = Field(0, ge=0)
    # Port the driver listens on for per-chunk progress from bulk tasks; 0 = any free port.
    progress_port: int = Field(0, ge=0, le=65535)
    # A bulk job's task retries an unreachable or locked database (with backoff) this long, then fails.
    db_retry_s: float = Field(60.0, ge=0)
    # Configurable adapters: a JSON list of {"name", "path", "texts", "ids"?, "response"} (docs/formats.md).
    custom_formats: str = "[]"
    # GPU workers wanted while bulk jobs are queued or running (read by the KEDA rule via /v1/scale).
    scale_max_workers: int = Field(1, ge=0, le=100)
    # Online requests within this many seconds keep one GPU worker wanted (placement spark|auto).
    scale_idle_s: float = Field(300.0, ge=0)

    # Where online batches run (spark/dispatch.py): local engine, Spark executors, or executors
    # when any is connected and the local engine otherwise.
    placement: Literal["local", "spark", "auto"] = "local"
    # Address executors connect back to for online batches; default: spark.driver.host, any free port.
    dispatch_host: str | None = None
    dispatch_port: int = Field(0, ge=0, le=65535)
    # A batch not answered by its executor within this time is retried on the local engine.
    dispatch_timeout_s: float = Field(10.0, gt=0)
    # placement=spark: how long a text waits for an executor before 503 (SQL Server waits 30 s, contract A7).
    dispatch_wait_s: float = Field(20.0, gt=0)
    # Online batches in flight at once (one per connected executor task, plus the local fallback).
    dispatch_concurrency: int = Field(16, ge=1, le=1024)
    # GPU share of the long-running online task, so bulk tasks (spark_task_gpu_amount) fit beside it.
    spark_online_gpu_amount: float = Field(0.5, gt=0, le=1)

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
        return f"{self.model}-{self.precision}"

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
