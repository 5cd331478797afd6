"""docs/ui.png: the status page (/ui) during a running bulk job, reproducibly.

Starts `sqlembed serve` (the real service, the reference model, local Spark) over a SQLite
database it fills here, runs a small job to the end and starts a large one, sends some online
traffic, and when the large job is running with some of its rows done, takes a 1200x800 shot of
/ui with headless chromium (Debian's, as the tests use; scripts/install_browser.sh installs it).
The large job is cancelled before the service stops.

    .venv/bin/python scripts/ui_screenshot.py [--out docs/ui.png] [--rows 20000]

The model comes from SQLEMBED_TEST_MODEL_DIR (default .venv/test-models, where `make test`
builds it) and is built there if it is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


def model_dir() -> Path:
    from sqlembed.engine.build import build_model, is_current
    from sqlembed.engine.config import model_id
    from sqlembed.engine.store import ModelStore

    root = Path(os.environ.get("SQLEMBED_TEST_MODEL_DIR") or ROOT / ".venv" / "test-models")
    store = ModelStore(root)
    mid = model_id("all-minilm-l6-v2", "fp32")
    if not store.exists(mid) or not is_current(store.get(mid)):
        print(f"building {mid} in {root} (once)")
        build_model(store, precision="fp32", force=store.exists(mid))
    return root


def sentences(n: int) -> list[str]:
    """Real sentences from the benchmark corpus, numbered so that every row's text differs."""
    from sqlembed.benchmark.corpus import paragraphs

    found = [s for p in paragraphs(min_chars=20) for s in re.split(r"(?<=\.)\s+", p) if len(s) > 20]
    return [f"{found[i % len(found)]} ({i})" for i in range(n)]


def make_db(path: Path, tables: dict[str, int]) -> None:
    conn = sqlite3.connect(path)
    for name, rows in tables.items():  # the names are this script's own constants
        conn.execute(f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, body TEXT, embedding TEXT)")
        conn.executemany(f"INSERT INTO {name} (id, body) VALUES (?, ?)",  # noqa: S608
                         list(enumerate(sentences(rows), start=1)))
    conn.commit()
    conn.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(url: str, job_id: str, ok: Any, timeout_s: float, what: str) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job: dict[str, Any] = httpx.get(f"{url}/v1/jobs/{job_id}").json()
        if ok(job):
            return job
        if job["state"] in ("failed", "cancelled"):
            raise SystemExit(f"job {job_id} {job['state']}: {job['last_error']}")
        time.sleep(0.3)
    raise SystemExit(f"timed out waiting for {what}")


def traffic(url: str, stop: threading.Event) -> None:
    """Online requests while the job runs, so the live figures are not all zeros."""
    texts = sentences(64)
    i = 0
    with httpx.Client(timeout=30) as c:
        while not stop.is_set():
            n = 1 + i % 8
            c.post(url + "/api/embed", json={"model": "all-minilm", "input": texts[i % 56: i % 56 + n]})
            i += 1
            stop.wait(0.05)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "ui.png")
    ap.add_argument("--rows", type=int, default=20_000, help="rows of the table the running job embeds")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    from sqlembed.api.status import WINDOW_S

    models = model_dir()
    work = Path(tempfile.mkdtemp(prefix="sqlembed-ui-shot-"))
    make_db(work / "app.db", {"faq": 300, "docs": args.rows})
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "SQLEMBED_MODEL_DIR": str(models), "SQLEMBED_API_KEYS": "", "HF_HUB_OFFLINE": "1",
           "SQLEMBED_DATABASES": json.dumps({"app": f"sqlite:///{work / 'app.db'}"}),
           "SQLEMBED_STATE_DIR": str(work / "state"), "SQLEMBED_SPARK_MASTER": "local[2]",
           "SQLEMBED_LOG_LEVEL": "WARNING"}
    server = subprocess.Popen([sys.executable, "-m", "sqlembed", "serve", "--port", str(port)], env=env)
    stop = threading.Event()
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the service did not become ready")
            time.sleep(0.3)
        job = {"db": "app", "key": "id", "text": "body", "vector": "embedding"}
        small = httpx.post(url + "/v1/jobs", json={**job, "table": "faq"}).json()
        wait_for(url, small["id"], lambda j: j["state"] == "succeeded", 300, "the small job")
        big = httpx.post(url + "/v1/jobs", json={**job, "table": "docs", "batch_rows": 128}).json()
        threading.Thread(target=traffic, args=(url, stop), daemon=True).start()
        wait_for(url, big["id"], lambda j: j["state"] == "running" and j["rows_done"] >= args.rows // 5, 600,
                 "the large job to be running with a fifth of its rows done")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1200, "height": 800}, locale="en-US")
            page.goto(url + "/ui?refresh=1")
            page.locator(f"tr[data-job='{big['id']}'] td.state", has_text="running").wait_for(timeout=30_000)
            # Rates are over the last WINDOW_S seconds of readings; a page that has just opened
            # has only the start to compare with, so let it read for a full window first.
            time.sleep(WINDOW_S + 1.5)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(args.out))
            browser.close()
        httpx.delete(f"{url}/v1/jobs/{big['id']}")
        print(f"wrote {args.out} ({args.out.stat().st_size:,} bytes)")
    finally:
        stop.set()
        server.send_signal(signal.SIGINT)
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
