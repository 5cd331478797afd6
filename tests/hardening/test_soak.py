"""The 60-second soak (python/sqlembed/benchmark/soak.py; `python bench/soak.py` runs 10 minutes):
mixed online traffic, pull batches, bulk jobs and 5% bad requests against `sqlembed serve`."""

from __future__ import annotations

from pathlib import Path

import pytest

from sqlembed.benchmark.soak import report, run_soak

# alone: its p99-over-time check measures the service, not a neighbour's changing load.
pytestmark = [pytest.mark.slow, pytest.mark.spark, pytest.mark.alone]


def test_soak_60_seconds(model_dir: Path, tmp_path: Path) -> None:
    r = run_soak(60, model_dir, tmp_path, clients=8, job_rows=800)
    print(report(r))
    assert r.requests > 500 and r.bad_sent > 0 and r.pull_ids_sent > 0, report(r)
    assert r.ok(), report(r)
