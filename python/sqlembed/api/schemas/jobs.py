"""The bulk job API (submit-and-poll: SQL Server waits at most 230 s, contract A7/A9)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field
from typing_extensions import TypedDict

from sqlembed.api.schemas.common import Dimensions, Request
from sqlembed.db.targets.spec import SyncMode

JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]

Name = Annotated[str, Field(min_length=1, max_length=300)]


class JobRequest(Request):
    db: Name = Field(description="a name from SQLEMBED_DATABASES, never a connection string")
    table: Name = Field(description="table or view: name or schema.name")
    key: Name
    text: Name
    vector: Name
    where: str | None = Field(
        None, min_length=1, max_length=4000,
        description="one boolean expression over the table's columns and literals (comparisons, AND/OR/NOT, "
                    "IN, BETWEEN, LIKE, IS NULL); anything else is refused with 400 before any SQL runs")
    target_table: Name | None = Field(None, description="write (key, vector) here instead of the vector column")
    chunk_table: Name | None = Field(
        None, description="write each row's chunks here (key, chunk_no, chunk_offset, chunk_length, vector; "
                          "1-based offsets in characters of the text), created where it does not exist")
    chunk_tokens: int | None = Field(None, ge=8, le=8192, description="tokens per chunk (with chunk_table)")
    chunk_overlap: int = Field(0, ge=0, le=4096, description="tokens shared by consecutive chunks")
    sync: SyncMode = Field(
        "auto", description="auto: only changed rows where the table records changes (Change Tracking), else "
                            "compare every row's text hash in the database; changes: require it; hash: always compare")
    batch_rows: int | None = Field(None, ge=1, le=100_000, description="rows per embed + write chunk")
    dimensions: Dimensions | None = Field(
        None, description="keep the first n dimensions and re-normalize (default: the column's size)")

    expect_database: Name | None = Field(
        None, description="the database the caller means (sqlembed.submit_job sends DB_NAME()); the job is "
                          "refused if the 'db' name points elsewhere")
    dry_run: bool = Field(
        False, description="true: check the job and answer 200 with what it would do (rows pending, text bytes, "
                           "tokens, time on 1/2/4/8 workers, cost where a price is configured); nothing is written "
                           "and no job is recorded")

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"db": "app", "table": "dbo.docs", "key": "id", "text": "body", "vector": "embedding"},
        {"db": "app", "table": "dbo.docs", "key": "id", "text": "body", "vector": "embedding",
         "dimensions": 256, "batch_rows": 1024},
    ]})


class JobRecord(TypedDict):
    """A job as the API shows it (GET /v1/jobs/{id}); the OpenAPI schema is generated from this."""

    id: str
    state: JobState
    request: dict[str, Any]
    created: str
    started: str | None
    finished: str | None
    rows_total: int
    rows_done: int
    rows_failed: int
    rows_per_s: float
    last_error: str | None
    gpus: list[str]
    rows_deleted: int
    """Rows gone from the table whose state, chunks or target rows the job removed."""
    mode: str | None
    """How the job found its rows: hash (compared every row in the database) or changes."""


Job = JobRecord


class Rate(TypedDict):
    rows_per_s: float
    source: str
    """Where the figure comes from: measured on this host's engine over the sample, or configured."""


class Estimate(TypedDict, total=False):
    workers: int
    seconds: float
    cost: float
    """Only where SQLEMBED_WORKER_HOUR_PRICE is set: workers x hours x price."""


class DryRun(TypedDict):
    """``POST /v1/jobs`` with ``"dry_run": true`` (200): what the job would do; nothing written."""

    dry_run: bool
    rows_pending: int
    """Exact: the rows the job would read (those whose text, model or embedding changed, or that
    have no vector), by the job's own selection; NULL or empty texts among them would fail."""
    text_bytes: int
    """The pending texts' size as the database stores them (SQL Server: as nvarchar, UTF-16; SQLite: UTF-8)."""
    tokens_estimate: int
    """Tokens the model would process (prompt, special tokens, truncation or chunks included): the
    model's tokenizer over a sample of the pending rows, scaled to all of them."""
    sample_rows: int
    mode: str
    dimensions: int
    rate: Rate
    estimates: list[Estimate]
    currency: str | None
    price_per_worker_hour: float | None


class JobList(TypedDict):
    jobs: list[JobRecord]


class Scale(TypedDict):
    backlog_jobs: int
    workers_wanted: int
    placement: str
    online_idle_s: float | None
    queued_texts: int
    connected_workers: int
