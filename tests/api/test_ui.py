"""GET /docs (Swagger UI) and GET /ui (the status page) in a real browser: Debian's chromium driven
by playwright, skipped with the reason where either is missing (scripts/install_browser.sh, run by
`make test`, installs chromium where it can). Then the checks that need no browser: /v1/status's
figures, the pages' security headers, which routes need the API key, and the packaging.

The job list is tested twice: over the real job store with a scripted runner (every state, an
untrusted error text, a queued job cancelled from the page), and end to end with Spark, a SQLite
table and the real model (a running job cancelled from the page).
"""

from __future__ import annotations

import fnmatch
import json
import re
import sqlite3
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
import pytest

from sqlembed.api import pages, routes
from sqlembed.api.metrics import Totals
from sqlembed.api.status import SPACING_S, WINDOW_S, RateWindow, quantile
from sqlembed.jobs.store import FINAL, Job, JobStore, now
from sqlembed.settings import Settings
from tests.support.fake import FakeBackend
from tests.support.server import ServerThread, running, with_settings

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Dialog, Page

ROOT = Path(__file__).parents[2]
CHROMIUM = Path("/usr/bin/chromium")
# No GPU, no sandbox (root in CI), and none of the browser's own traffic (updates, sync, field
# trials): a request to any host but the server under test is then the page's own doing.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
KEY = "ui-test-key-0123456789"
WAIT_MS = 15_000


# ---------------------------------------------------------------------------------------------
# A browser, and a page that records every request it makes

@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (the dev extra)")
    if not CHROMIUM.exists():
        pytest.skip(f"needs Debian's chromium at {CHROMIUM}: `apt-get install chromium` "
                    "(scripts/install_browser.sh does it as root)")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


class Recorded:
    def __init__(self, page: Page) -> None:
        self.page = page
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        page.on("request", lambda r: self.requests.append((r.method, r.url, r.headers)))
        # Content-Security-Policy refusals, as the page itself sees them.
        page.add_init_script("window.__refused = []; document.addEventListener('securitypolicyviolation', "
                             "e => window.__refused.push(e.violatedDirective + ' ' + e.blockedURI));")

    def hosts(self) -> set[str]:
        return {urlsplit(url).netloc for _, url, _ in self.requests}

    def refused(self) -> list[str]:
        return list(self.page.evaluate("window.__refused"))


@pytest.fixture
def page(browser: Browser) -> Iterator[Recorded]:
    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
    try:
        yield Recorded(context.new_page())
    finally:
        context.close()


def _until(check: Callable[[], bool], what: str, timeout_s: float = WAIT_MS / 1000) -> None:
    """Polled from here: Playwright's wait_for_function evaluates a string in the page, which the
    page's CSP (no 'unsafe-eval') refuses, as it should."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _number(text: str | None) -> float:
    assert text is not None and re.fullmatch(r"[\d,.]+", text), text
    return float(text.replace(",", ""))


def _embed(url: str, texts: int, headers: dict[str, str] | None = None) -> None:
    # A model name the server does not know: served all the same, and logged once (sqlembed.api.state),
    # which gives the leak scan the service's own records to look through when this file runs alone.
    r = httpx.post(url + "/api/embed", json={"model": "ui-test", "input": [f"text number {i}" for i in range(texts)]},
                   headers=headers)
    assert r.status_code == 200, r.text


# ---------------------------------------------------------------------------------------------
# A server whose jobs are scripted: the real job store and job routes, no Spark

class ScriptedRunner:
    """Stands where jobs/runner.JobRunner does (run/service.py builds it over the real job store):
    the jobs are whatever a test writes into the store; cancel does to a queued or running job what
    the real runner's cancel ends in."""

    def __init__(self, bulk: Any, databases: dict[str, str], store: JobStore, session: Any, **_: Any) -> None:
        self.store = store

    def submit(self, fields: dict[str, Any]) -> Job:
        raise AssertionError("the scripted runner takes no submissions")

    def cancel(self, job_id: str) -> Job:
        job = self.store.get(job_id)
        if job.state not in FINAL:
            job.state, job.finished, job.last_error = "cancelled", now(), "cancelled before it started"
            self.store.save(job)
        return job

    def backlog(self) -> int:
        return sum(1 for j in self.store.list() if j.state not in FINAL)

    def close(self) -> None:
        pass


class JobsServer:
    def __init__(self, srv: ServerThread) -> None:
        self.srv = srv
        self.url = srv.url
        from sqlembed.api.jobs import JOBS

        assert srv.app is not None
        self.store: JobStore = srv.app[JOBS].runner.store  # type: ignore[attr-defined]

    def add(self, **fields: Any) -> Job:
        job = self.store.create({"db": "app", "table": "dbo.docs", "key": "id", "text": "body", "vector": "embedding"})
        for name, value in fields.items():
            setattr(job, name, value)
        self.store.save(job)
        return job


@pytest.fixture(scope="module")
def jobs_server(fake_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[JobsServer]:
    settings = with_settings(fake_settings, state_dir=tmp_path_factory.mktemp("ui-jobs"))
    with pytest.MonkeyPatch.context() as mp:
        # Looked up once, when the server's job context starts.
        mp.setattr("sqlembed.run.service.JobRunner", ScriptedRunner)
        srv = ServerThread(settings, backend=FakeBackend()).start()
    try:
        yield JobsServer(srv)
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def keyed_server(fake_settings: Settings) -> Iterator[ServerThread]:
    with running(with_settings(fake_settings, api_keys=KEY), backend=FakeBackend()) as srv:
        yield srv


# ---------------------------------------------------------------------------------------------
# In the browser

@pytest.mark.slow
def test_docs_render_the_services_operations_from_the_service_alone(page: Recorded, fake_url: str) -> None:
    page.page.goto(fake_url + "/docs")
    for path in ("/api/embed", "/v1/embeddings", "/v1/jobs/{job_id}", "/v1/status"):
        page.page.locator(".opblock-summary-path", has_text=re.compile("^" + re.escape(path) + "$")).first \
            .wait_for(timeout=WAIT_MS)
    assert "OAS 3.1" in (page.page.locator(".info").text_content() or "")
    # Open an operation and run it from the page: "Try it out" must work under the CSP too.
    page.page.locator(".opblock-summary-path", has_text=re.compile("^/api/embed$")).first.click()
    page.page.get_by_role("button", name="Try it out").first.click()
    page.page.get_by_role("button", name="Execute").first.click()
    status = page.page.locator(".live-responses-table tbody .response-col_status").first
    status.wait_for(timeout=WAIT_MS)
    assert (status.text_content() or "").strip() == "200"
    server = urlsplit(fake_url).netloc
    assert page.hosts() == {server}, page.requests
    assert {urlsplit(u).path for _, u, _ in page.requests} >= {"/docs", "/docs/swagger-ui-bundle.js", "/docs/docs.js",
                                                            "/openapi.json", "/api/embed"}
    assert page.refused() == []


@pytest.mark.slow
def test_ui_shows_the_engine_and_live_figures(page: Recorded, fake_settings: Settings) -> None:
    # A server of its own: rates are over the window since the newest reading at least WINDOW_S
    # old, which on the session's shared server may be the start of the session (a rate near 0).
    with running(fake_settings, backend=FakeBackend()) as srv:
        _live_figures(page, srv)


def _live_figures(page: Recorded, fake_server: ServerThread) -> None:
    url = fake_server.url
    ready = httpx.get(url + "/readyz").json()
    p = page.page
    p.goto(url + "/ui?refresh=0.5")
    p.locator("#model", has_text=ready["model"]).wait_for(timeout=WAIT_MS)
    assert p.text_content("#precision") == "fp32"
    assert p.text_content("#backend") == "fake"
    assert p.text_content("#placement") == "local"
    assert p.text_content("#state") == "ready"
    p.locator("#docs-link").wait_for(timeout=WAIT_MS)  # /docs opens without a key here
    before = _number(p.text_content("#texts-total"))
    _embed(url, 40)
    _until(lambda: _number(p.text_content("#texts-total")) >= before + 40, "the page to count 40 more texts")
    assert _number(p.text_content("#texts-per-s")) > 0
    assert _number(p.text_content("#batch-size")) >= 1
    assert _number(p.text_content("#latency-p50")) > 0
    assert (p.text_content("#queue") or "").endswith("/ " + f"{fake_server.settings.max_queue_texts:,}")
    assert page.hosts() == {urlsplit(url).netloc}
    assert page.refused() == []


@pytest.mark.slow
def test_ui_lists_jobs_with_progress_and_shows_errors_as_text(page: Recorded, jobs_server: JobsServer) -> None:
    running_job = jobs_server.add(state="running", started=now(), rows_total=300_000, rows_done=120_000,
                                  rows_failed=30, rows_per_s=240.0)
    hostile = '<img src=x onerror="window.__owned=1"><b>bold</b> & "quotes"'
    failed = jobs_server.add(state="failed", started=now(), finished=now(), rows_total=10, rows_done=4,
                             rows_failed=6, last_error=hostile)
    p = page.page
    p.goto(jobs_server.url + "/ui?refresh=0.5")
    row = p.locator(f"tr[data-job='{running_job.id}']")
    row.wait_for(timeout=WAIT_MS)
    assert row.locator("progress").evaluate("b => [b.max, b.value]") == [300_000, 120_030]
    assert "120,000 / 300,000" in (row.text_content() or "")
    assert row.locator("td.state").text_content() == "running"
    assert row.locator("td.num").nth(0).text_content() == "240"
    assert row.locator("td.num").nth(1).text_content() == "12 min 30 s"  # (300,000 - 120,030) / 240 s
    assert row.get_by_role("button", name="Cancel").is_visible()
    bad = p.locator(f"tr[data-job='{failed.id}']")
    assert bad.locator("td.last-error").text_content() == hostile
    assert bad.locator("img, b").count() == 0 and bad.get_by_role("button").count() == 0
    assert p.evaluate("window.__owned") is None
    assert page.refused() == []


@pytest.mark.slow
def test_ui_cancel_button_cancels_a_queued_job(page: Recorded, jobs_server: JobsServer) -> None:
    job = jobs_server.add(state="queued")
    p = page.page
    p.goto(jobs_server.url + "/ui?refresh=0.5")
    row = p.locator(f"tr[data-job='{job.id}']")
    row.wait_for(timeout=WAIT_MS)
    # Declining the confirmation cancels nothing.
    p.once("dialog", lambda d: d.dismiss())
    row.get_by_role("button", name="Cancel").click()
    time.sleep(1.0)  # two refreshes
    assert httpx.get(f"{jobs_server.url}/v1/jobs/{job.id}").json()["state"] == "queued"
    assert not any(m == "DELETE" for m, _, _ in page.requests)
    messages: list[str] = []

    def accept(dialog: Dialog) -> None:
        messages.append(dialog.message)
        dialog.accept()

    p.once("dialog", accept)
    p.locator(f"tr[data-job='{job.id}'] button.cancel").click()
    p.locator(f"tr[data-job='{job.id}'] td.state", has_text="cancelled").wait_for(timeout=WAIT_MS)
    assert job.id[:8] in messages[0] and "dbo.docs" in messages[0]
    assert httpx.get(f"{jobs_server.url}/v1/jobs/{job.id}").json()["state"] == "cancelled"
    assert p.locator(f"tr[data-job='{job.id}'] button").count() == 0
    assert [m for m, u, _ in page.requests if urlsplit(u).path == f"/v1/jobs/{job.id}"] == ["DELETE"]


@pytest.mark.slow
def test_ui_asks_for_the_key_and_works_after_it(page: Recorded, keyed_server: ServerThread) -> None:
    url = keyed_server.url
    p = page.page
    p.goto(url + "/ui?refresh=0.5")
    form = p.locator("#key-form")
    form.wait_for(timeout=WAIT_MS)
    assert p.locator("#content").is_hidden()
    p.fill("#key", "not-the-key")
    p.click("#key-form button[type=submit]")
    p.locator("#key-error", has_text="refused").wait_for(timeout=WAIT_MS)
    p.fill("#key", KEY)
    typed = len(page.requests)
    p.click("#key-form button[type=submit]")
    p.locator("#model", has_text="all-minilm").wait_for(timeout=WAIT_MS)
    assert form.is_hidden()
    assert p.evaluate("sessionStorage.getItem('sqlembed.api-key')") == KEY
    _embed(url, 5, {"api-key": KEY})
    _until(lambda: _number(p.text_content("#texts-total")) >= 5, "the page to count the texts")
    # A reload in the same tab keeps the key (sessionStorage); it never appears in a URL.
    p.reload()
    p.locator("#model", has_text="all-minilm").wait_for(timeout=WAIT_MS)
    assert form.is_hidden()
    assert p.locator("#docs-link").is_hidden(), "no link to a reference the browser cannot open"
    assert all(KEY not in u for _, u, _ in page.requests)
    data = [h for _, u, h in page.requests[typed:] if urlsplit(u).path in ("/v1/status", "/v1/jobs")]
    assert len(data) >= 4 and all(h.get("api-key") == KEY for h in data)
    assert page.hosts() == {urlsplit(url).netloc}


@pytest.mark.slow
@pytest.mark.spark
def test_cancel_a_running_spark_job_from_the_page(page: Recorded, base_settings: Settings, spark_local: Any,
                                                  tmp_path_factory: pytest.TempPathFactory) -> None:
    """The real runner: a job over a SQLite table of 8,000 rows, running on Spark with the real model,
    shows its progress on the page and is cancelled by its Cancel button."""
    from tests.spark.conftest import make_table, sentences

    root = tmp_path_factory.mktemp("ui-spark")
    base = sentences(2000)
    make_table(root / "big.db", [f"{base[i % len(base)]} ({i})" for i in range(8000)])
    settings = with_settings(base_settings, databases=json.dumps({"big": f"sqlite:///{root / 'big.db'}"}),
                             state_dir=root / "state")
    srv = ServerThread(settings, spark_factory=lambda: spark_local).start()
    try:
        job = httpx.post(srv.url + "/v1/jobs", json={"db": "big", "table": "docs", "key": "id", "text": "body",
                                                    "vector": "embedding", "batch_rows": 32}).json()
        p = page.page
        p.goto(srv.url + "/ui?refresh=0.5")
        row = f"tr[data-job='{job['id']}']"
        p.locator(f"{row} td.state", has_text="running").wait_for(timeout=180_000)
        _until(lambda: p.locator(f"{row} progress").evaluate("b => b.value") > 0, "progress", 180)
        p.once("dialog", lambda d: d.accept())
        p.locator(f"{row} button.cancel").click()
        p.locator(f"{row} td.state", has_text="cancelled").wait_for(timeout=120_000)
        final = httpx.get(f"{srv.url}/v1/jobs/{job['id']}").json()
        assert final["state"] == "cancelled" and 0 < final["rows_done"] < 8000, final
        left = sqlite3.connect(root / "big.db").execute("SELECT COUNT(*) FROM docs WHERE embedding IS NULL")
        assert left.fetchone()[0] > 0, "cancelled before the end"
    finally:
        srv.stop()


# ---------------------------------------------------------------------------------------------
# Without a browser

def test_status_reports_the_engine_and_recent_traffic(fake_settings: Settings) -> None:
    # A server of its own: the rates are over the window since the newest reading at least
    # WINDOW_S old, which on the session's shared server may be the start of the whole session.
    with running(fake_settings, backend=FakeBackend()) as srv:
        _status_and_traffic(srv.url)


def _status_and_traffic(fake_url: str) -> None:
    before = httpx.get(fake_url + "/v1/status")
    assert before.status_code == 200
    assert before.headers["Cache-Control"] == "no-store" and before.headers["X-Content-Type-Options"] == "nosniff"
    _embed(fake_url, 12)
    _embed(fake_url, 3)
    after = httpx.get(fake_url + "/v1/status").json()
    b = before.json()
    assert (after["status"], after["backend"], after["precision"], after["placement"]["mode"]) == \
        ("ready", "fake", "fp32", "local")
    assert after["model"] == httpx.get(fake_url + "/readyz").json()["model"]
    assert after["totals"]["texts"] - b["totals"]["texts"] == 15
    # Only the embedding routes count: these /v1/status and /readyz calls do not.
    assert after["totals"]["requests"] - b["totals"]["requests"] == 2
    recent = after["recent"]
    assert recent["texts_per_s"] > 0 and recent["requests_per_s"] > 0 and recent["window_s"] > 0
    assert recent["batch_size_mean"] is not None and recent["batch_size_mean"] >= 1
    assert recent["latency_p50_ms"] is not None and 0 < recent["latency_p50_ms"] <= recent["latency_p95_ms"]
    assert after["queue_depth"] == 0 and after["front_processes"] == 1


def test_quantile_interpolates_within_buckets_as_prometheus_does() -> None:
    inf = float("inf")
    after = ((0.1, 10.0), (0.5, 20.0), (1.0, 20.0), (inf, 20.0))
    assert quantile(0.5, (), after) == pytest.approx(0.1)
    assert quantile(0.75, (), after) == pytest.approx(0.3)  # halfway into (0.1, 0.5]
    assert quantile(0.25, (), after) == pytest.approx(0.05)
    # Only what was observed between the readings counts.
    assert quantile(0.5, ((0.1, 10.0), (0.5, 10.0), (1.0, 10.0), (inf, 10.0)), after) == pytest.approx(0.3)
    assert quantile(0.5, after, after) is None
    # Beyond the last finite bound the histogram knows no more than that bound.
    assert quantile(0.99, (), ((0.1, 1.0), (1.0, 1.0), (inf, 5.0))) == pytest.approx(1.0)


def test_rates_are_over_the_last_window() -> None:
    w = RateWindow({"/api/embed"}, start=100.0)

    def at(texts: float) -> Totals:
        return Totals(texts=texts, batches=texts / 10, batch_seconds=texts / 1000)

    first = w.rates(102.0, at(200))  # the metrics were zero at the start
    assert (first["window_s"], first["texts_per_s"], first["batch_size_mean"]) == (2.0, 100.0, 10.0)
    assert first["batch_ms_mean"] == 10.0 and first["latency_p50_ms"] is None
    t, texts = 102.0, 200.0
    for _ in range(20):  # a page polling every second, 50 texts/s
        t, texts = t + 1, texts + 50
        r = w.rates(t, at(texts))
    assert r["texts_per_s"] == 50.0 and WINDOW_S <= r["window_s"] < WINDOW_S + 1
    # A quiet hour, then one answer: the window says what the rate is over.
    quiet = w.rates(t + 3600, at(texts))
    assert quiet["texts_per_s"] == 0.0 and quiet["window_s"] >= 3600 and quiet["batch_size_mean"] is None
    # Calls closer together than SPACING_S keep no new reading (many open pages, bounded memory).
    n = len(w._readings)
    w.rates(t + 3600 + SPACING_S / 2, at(texts))
    assert len(w._readings) == n


@pytest.mark.parametrize("path", ["/ui", "/ui/ui.js", "/ui/ui.css", "/ui/favicon.svg", "/docs", "/docs/docs.js",
                                  "/docs/swagger-ui-bundle.js", "/docs/swagger-ui.css"])
def test_pages_send_a_strict_content_security_policy(fake_url: str, path: str) -> None:
    r = httpx.get(fake_url + path)
    assert r.status_code == 200 and r.content
    csp = {d.split(" ", 1)[0]: d.split(" ", 1)[1] for d in r.headers["Content-Security-Policy"].split("; ")}
    assert csp["default-src"] == "'none'" and csp["script-src"] == "'self'" and csp["connect-src"] == "'self'"
    assert csp["frame-ancestors"] == "'none'" and csp["base-uri"] == "'none'"
    assert "unsafe" not in r.headers["Content-Security-Policy"]
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    suffix = Path(path).suffix or ".html"
    assert r.headers["Content-Type"].startswith({".html": "text/html", ".js": "text/javascript", ".css": "text/css",
                                                 ".svg": "image/svg+xml"}[suffix])


@pytest.mark.parametrize("path", ["/ui/ui.html", "/ui/..%2Fstatus.py", "/docs/swagger-ui-bundle.js.map",
                                  "/docs/swagger-ui-standalone-preset.js", "/docs/index.html", "/ui/", "/docs/"])
def test_only_the_listed_files_are_served(fake_url: str, path: str) -> None:
    assert httpx.get(fake_url + path).status_code == 404


def test_the_pages_never_write_data_as_html() -> None:
    for name in ("ui.js", "docs.js"):
        source = (pages.STATIC / name).read_text("utf-8")
        assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(", source), name
    assert "<script>" not in (pages.STATIC / "ui.html").read_text("utf-8")
    assert "<script>" not in (pages.STATIC / "docs.html").read_text("utf-8")
    assert "validatorUrl: null" in (pages.STATIC / "docs.js").read_text("utf-8")


def test_every_route_needs_the_key_exactly_when_the_route_table_says(keyed_server: ServerThread) -> None:
    """One rule: the route table's ``open`` flag is what the server enforces (and what the OpenAPI
    document says); /docs and its files are open exactly when /openapi.json is."""
    examples = {"{asset}": "", "{job_id}": "0123456789abcdef0123456789abcdef"}
    spec = httpx.get(keyed_server.url + "/openapi.json", headers={"api-key": KEY}).json()
    for r in routes.ROUTES:
        if r.method != "GET":
            continue
        path = r.path
        if path == "/ui/{asset}":
            path = "/ui/ui.js"
        elif path == "/docs/{asset}":
            path = "/docs/swagger-ui-bundle.js"
        for name, value in examples.items():
            path = path.replace(name, value)
        without = httpx.get(keyed_server.url + path)
        assert (without.status_code != 401) == r.open, (r.path, without.status_code)
        assert (spec["paths"][r.path]["get"].get("security") == [{}]) == r.open, r.path
        if r.open:
            continue
        assert "401" in spec["paths"][r.path]["get"]["responses"], r.path
        assert httpx.get(keyed_server.url + path, headers={"api-key": KEY}).status_code != 401, r.path
    _embed(keyed_server.url, 1, {"api-key": KEY})
    reference = {r.path: r.open for r in routes.ROUTES if r.path in ("/openapi.json", "/docs", "/docs/{asset}")}
    assert len(reference) == 3 and len(set(reference.values())) == 1, reference
    assert {r.path: r.open for r in routes.ROUTES if r.path.startswith("/ui")} == {"/ui": True, "/ui/{asset}": True}


def test_the_swagger_bundle_renders_openapi_3_1() -> None:
    """Swagger UI 4 refuses an OpenAPI 3.1 document (this service's); swagger-ui-bundle-v2 ships 5."""
    folder = pages._swagger_dir()
    major = int(re.fullmatch(r"swagger-ui-(\d+)\.\d+\.\d+", folder.name).group(1))  # type: ignore[union-attr]
    assert major >= 5, folder
    assert all((folder / name).is_file() for name in pages.SWAGGER_ASSETS)


def test_the_pages_files_are_packaged() -> None:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["tool"]["setuptools"]["package-data"]
    patterns = data["sqlembed"]
    package = ROOT / "python" / "sqlembed"
    files = [p.relative_to(package).as_posix() for p in pages.STATIC.iterdir()]
    assert set(files) >= {"api/static/ui.html", "api/static/ui.js", "api/static/ui.css", "api/static/favicon.svg",
                          "api/static/docs.html", "api/static/docs.js"}
    missing = [f for f in files if not any(fnmatch.fnmatch(f, p) for p in patterns)]
    assert missing == [], f"not in [tool.setuptools.package-data]: {missing}"
