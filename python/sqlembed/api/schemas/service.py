"""Health, readiness and the status page's figures."""

from __future__ import annotations

from typing import Any, NotRequired

from typing_extensions import TypedDict


class Health(TypedDict):
    status: str


class Ready(TypedDict):
    status: str
    model: NotRequired[str]
    dimensions: NotRequired[int]
    prompts: NotRequired[dict[str, str]]
    """The model's prompt per input type (query, passage): embed_rows records which it used."""
    backend: NotRequired[str | None]
    vector_id: NotRequired[str]
    """What stored vectors record as their model: the id, plus the quantization recipe for int8
    (a rebuilt int8 model gives other vectors). embed_rows and bulk jobs compare it."""
    engine: NotRequired[dict[str, Any]]
    """The backend's own description: runtime, the precision it computes in, threads, CPU flags or
    device, and why it was chosen."""
    placement: NotRequired[dict[str, Any]]
    error: NotRequired[str]


class StatusTotals(TypedDict):
    """Counts since the service started (every front process's, under ``serve --workers N``)."""

    texts: int
    tokens: int
    batches: int
    requests: int
    """Requests to the routes that queue for the engine (embedding routes)."""
    rejected: int
    """Requests refused with 429 because the queue was full."""


class StatusRates(TypedDict):
    """Rates over the last ``window_s`` seconds (about 10 while a page polls; since the previous
    answer, or the start, otherwise)."""

    window_s: float
    texts_per_s: float
    requests_per_s: float
    batch_size_mean: float | None
    """Texts per inference batch; null when no batch ran in the window."""
    batch_ms_mean: float | None
    latency_p50_ms: float | None
    """Request latency of the embedding routes (from the histogram's buckets); null without requests."""
    latency_p95_ms: float | None


class Status(TypedDict):
    """What the status page (GET /ui) shows: the engine, the queue and recent throughput."""

    status: str
    """ready, loading, failed, or waiting for executors (placement=spark without one)."""
    error: str | None
    version: str
    model: str | None
    precision: str | None
    dimensions: int | None
    backend: str | None
    engine: dict[str, Any]
    """The backend's own description (runtime, compute precision, threads, device)."""
    placement: dict[str, Any]
    """Where batches run: mode, active, and the Spark workers behind it."""
    front_processes: int
    """``serve --workers N``: N front processes share the port (1: a single process)."""
    uptime_s: float
    queue_depth: int
    """Texts accepted and not yet answered."""
    max_queue_texts: int
    """Past this many queued texts, requests are refused with 429."""
    totals: StatusTotals
    recent: StatusRates
