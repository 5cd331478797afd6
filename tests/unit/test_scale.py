"""The scale signal (/v1/scale -> KEDA): bulk backlog wants every worker; with placement spark|auto,
recent online traffic wants one, an online queue past a quarter of its limit wants them all."""

from __future__ import annotations

from sqlembed.api.jobs import workers_wanted
from sqlembed.settings import Settings


def test_workers_wanted() -> None:
    now = 10_000.0
    auto = Settings(placement="auto", scale_max_workers=4, scale_idle_s=300, max_queue_texts=800)
    local = Settings(placement="local", scale_max_workers=4)
    assert workers_wanted(auto, backlog_jobs=1, last_request=0, queued_texts=0, now=now) == 4
    assert workers_wanted(local, backlog_jobs=2, last_request=now, queued_texts=0, now=now) == 4
    assert workers_wanted(local, backlog_jobs=0, last_request=now, queued_texts=500, now=now) == 0
    assert workers_wanted(auto, backlog_jobs=0, last_request=0, queued_texts=0, now=now) == 0
    assert workers_wanted(auto, backlog_jobs=0, last_request=now - 10, queued_texts=5, now=now) == 1
    assert workers_wanted(auto, backlog_jobs=0, last_request=now - 301, queued_texts=0, now=now) == 0
    assert workers_wanted(auto, backlog_jobs=0, last_request=now, queued_texts=201, now=now) == 4
    zero = Settings(placement="auto", scale_max_workers=0)
    assert workers_wanted(zero, backlog_jobs=0, last_request=now, queued_texts=0, now=now) == 0
