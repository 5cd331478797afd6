"""Prometheus metrics, one registry per app so several apps can live in one process (tests).

Under ``serve --workers N`` (PROMETHEUS_MULTIPROC_DIR set by run/host.py before this is
imported) every process writes its values to the shared directory and ``render`` adds them up:
counters and histograms summed over the processes, gauges as the live processes' sum.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, values

# prometheus-client chose its value store when it was imported (PROMETHEUS_MULTIPROC_DIR, set by
# run/host.py before that): ask it, rather than reading the environment a second time.
_MULTIPROCESS = values.ValueClass is not values.MutexValue

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


@dataclass(frozen=True)
class Totals:
    """Cumulative figures at one moment: GET /v1/status (api/status.py) turns two of them into rates."""

    texts: float = 0.0
    tokens: float = 0.0
    batches: float = 0.0
    batch_seconds: float = 0.0
    requests: float = 0.0
    """Requests to the routes asked for (those that queue for the engine)."""
    rejected: float = 0.0
    latency: tuple[tuple[float, float], ...] = ()
    """The request-latency histogram of those routes: (upper bound in seconds, cumulative count)."""
    queue_depth: float = 0.0


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "sqlembed_requests", "HTTP requests by route and status", ["route", "method", "status"], registry=r
        )
        self.latency = Histogram(
            "sqlembed_request_duration_seconds", "HTTP request latency", ["route"],
            buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.batch_size = Histogram(
            "sqlembed_batch_size", "texts per inference batch", buckets=_BATCH_BUCKETS, registry=r
        )
        self.batch_seconds = Histogram(
            "sqlembed_batch_duration_seconds", "inference time per batch", buckets=_LATENCY_BUCKETS, registry=r
        )
        self.tokens = Counter("sqlembed_tokens", "real tokens embedded", registry=r)
        self.padded_tokens = Counter("sqlembed_padded_tokens", "tokens processed including padding", registry=r)
        self.texts = Counter("sqlembed_texts", "texts embedded", registry=r)
        self.queue_depth = Gauge("sqlembed_queue_depth", "texts accepted and not yet answered", registry=r,
                                 multiprocess_mode="livesum")
        self._depth: Callable[[], int] | None = None
        self.rejected = Counter("sqlembed_rejected", "requests refused because the queue was full", registry=r)
        self.placement_batches = Counter(
            "sqlembed_placement_batches", "online batches by where they ran (local, spark, fallback)",
            ["placement"], registry=r,
        )
        self.placement_texts = Counter(
            "sqlembed_placement_texts", "online texts by where they ran", ["placement"], registry=r
        )
        self.dispatch_overhead = Histogram(
            "sqlembed_dispatch_overhead_seconds", "round trip to a Spark executor minus its compute time",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0), registry=r,
        )
        self.spark_workers = Gauge(
            "sqlembed_spark_workers", "executor tasks connected for online batches", registry=r,
            multiprocess_mode="livesum",
        )

    def observe_batch(self, texts: int, tokens: int, padded: int, seconds: float, placement: str = "local") -> None:
        self.placement_batches.labels(placement).inc()
        self.placement_texts.labels(placement).inc(texts)
        self.batch_size.observe(texts)
        self.batch_seconds.observe(seconds)
        self.tokens.inc(tokens)
        self.padded_tokens.inc(padded)
        self.texts.inc(texts)

    def track_queue(self, depth: Callable[[], int]) -> None:
        self._depth = depth

    def _collected(self) -> CollectorRegistry:
        """This process's registry, or under ``serve --workers`` every process's values added up."""
        if self._depth is not None:
            self.queue_depth.set(self._depth())  # read at scrape time (set_function has no multiprocess form)
        if not _MULTIPROCESS:
            return self.registry
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return registry

    def render(self) -> bytes:
        return bytes(generate_latest(self._collected()))

    def totals(self, routes: Collection[str]) -> Totals:
        """The figures the status page shows, read from the same samples /metrics renders, so the
        two never disagree; request counts and latency are those of ``routes`` only (the status
        page's own polling is not traffic an operator wants to see)."""
        sums: dict[str, float] = defaultdict(float)
        latency: dict[float, float] = defaultdict(float)
        for family in self._collected().collect():
            for s in family.samples:
                if s.name.startswith("sqlembed_request_duration_seconds"):
                    if s.labels.get("route") not in routes:
                        continue
                    if s.name.endswith("_bucket"):
                        latency[float(s.labels["le"])] += s.value
                        continue
                sums[s.name] += s.value
        return Totals(texts=sums["sqlembed_texts_total"], tokens=sums["sqlembed_tokens_total"],
                      batches=sums["sqlembed_batch_size_count"],
                      batch_seconds=sums["sqlembed_batch_duration_seconds_sum"],
                      requests=sums["sqlembed_request_duration_seconds_count"],
                      rejected=sums["sqlembed_rejected_total"], latency=tuple(sorted(latency.items())),
                      queue_depth=sums["sqlembed_queue_depth"])
