"""``GET /v1/status``: what the status page (/ui) shows, as JSON: the served model and where it
runs, the queue, and recent rates worked out here from the cumulative metrics (api/metrics.py),
so the page never parses Prometheus text and every browser sees the same figures.

Under ``serve --workers N`` the engine host answers it (fronts/front.PROXIED), as it answers
/metrics: it holds the batcher, the placement and the sum of every process's metrics; a front
would know only its own requests and a tokenizer.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Collection, Sequence

from aiohttp import web

from sqlembed import __version__
from sqlembed.api.metrics import Totals
from sqlembed.api.responses import json_response
from sqlembed.api.schemas.service import Status, StatusRates
from sqlembed.api.state import SERVICE
from sqlembed.engine.backend import describe_backend

WINDOW_S = 10.0
"""Rates are over about this long: long enough to smooth single batches, short enough that the
page shows a burst within one or two refreshes."""
SPACING_S = 0.5
"""Samples closer together than this are not kept: many open pages keep the window small."""


def quantile(q: float, before: Sequence[tuple[float, float]], after: Sequence[tuple[float, float]]) -> float | None:
    """The q-quantile of the observations between two readings of one cumulative histogram
    ((upper bound, cumulative count) pairs), interpolated inside its bucket as Prometheus'
    histogram_quantile does; None when nothing was observed. An observation in the +Inf
    bucket reads as the largest finite bound (the histogram knows no more)."""
    old = dict(before)
    buckets = [(le, count - old.get(le, 0.0)) for le, count in after]
    total = buckets[-1][1] if buckets else 0.0
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if le == float("inf"):
                return lower
            return lower + (le - lower) * (rank - below) / (count - below) if count > below else le
        lower, below = le, count
    return lower


class RateWindow:
    """Readings of the totals over the last ``WINDOW_S`` seconds, taken when someone asks; the
    rate is the difference from the newest reading at least a window old. No timer: a service
    nobody watches spends nothing, and after a quiet hour the first answer says it averages over
    that hour (``window_s``)."""

    def __init__(self, routes: Collection[str], start: float | None = None) -> None:
        self.routes = frozenset(routes)
        """The routes whose requests queue for the engine: their count and latency are shown."""
        self.started = time.monotonic() if start is None else start
        # The metrics start at zero with the app: the first answer already has a reference.
        self._readings: deque[tuple[float, Totals]] = deque([(self.started, Totals())], maxlen=256)

    def rates(self, now: float, totals: Totals) -> StatusRates:
        readings = self._readings
        if now - readings[-1][0] >= SPACING_S:
            readings.append((now, totals))
        while len(readings) > 2 and now - readings[1][0] >= WINDOW_S:
            readings.popleft()
        since, old = readings[0]
        seconds = max(now - since, 1e-9)
        batches = totals.batches - old.batches
        return {
            "window_s": round(now - since, 1),
            "texts_per_s": round((totals.texts - old.texts) / seconds, 1),
            "requests_per_s": round((totals.requests - old.requests) / seconds, 1),
            "batch_size_mean": round((totals.texts - old.texts) / batches, 1) if batches else None,
            "batch_ms_mean": round(1000 * (totals.batch_seconds - old.batch_seconds) / batches, 1) if batches else None,
            "latency_p50_ms": _ms(quantile(0.5, old.latency, totals.latency)),
            "latency_p95_ms": _ms(quantile(0.95, old.latency, totals.latency)),
        }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


WINDOW = web.AppKey("status_window", RateWindow)


async def status(request: web.Request) -> web.Response:
    svc = request.app[SERVICE]
    window = request.app[WINDOW]
    now = time.monotonic()
    totals = svc.metrics.totals(window.routes)
    placement = svc.placement.describe() if svc.placement is not None else {}
    state = svc.state(placement)
    manifest, embedder = svc.manifest, svc.embedder
    body: Status = {
        "status": state,
        "error": svc.load_error,
        "version": __version__,
        "model": manifest.id if manifest is not None else None,
        "precision": manifest.precision if manifest is not None else None,
        "dimensions": manifest.dimensions if manifest is not None else None,
        "backend": embedder.backend.name if embedder is not None else None,
        "engine": describe_backend(embedder.backend) if embedder is not None else {},
        "placement": placement,
        "front_processes": svc.settings.workers,
        "uptime_s": round(now - window.started, 1),
        "queue_depth": int(totals.queue_depth),
        "max_queue_texts": svc.settings.max_queue_texts,
        "totals": {"texts": int(totals.texts), "tokens": int(totals.tokens), "batches": int(totals.batches),
                   "requests": int(totals.requests), "rejected": int(totals.rejected)},
        "recent": window.rates(now, totals),
    }
    # Live figures: a cache (the browser's or a proxy's) must never answer for the service.
    return json_response(body, headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})
