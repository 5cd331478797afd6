"""The service driven the way SQL Server 2025 drives it (tests/support/sqlserver_client.py,
contract A1-A9, B4): HTTPS with a validated certificate, credential headers, retries that honour
Retry-After, the @response envelope, and AI_GENERATE_EMBEDDINGS in a set-based UPDATE."""

from __future__ import annotations

import json
import re
import sqlite3
import ssl
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from sqlembed.db.variables import VARIABLES
from sqlembed.settings import Settings
from sqlembed.tls import TlsFiles, write_selfsigned
from tests.support.server import running, with_settings
from tests.support.sqlserver_client import CallLog, Credential, ExternalModel, SqlError, SqlServerClient

pytestmark = pytest.mark.slow
KEY = "sim-key-7f3a9c"


def test_sp_invoke_contract(base_settings: Settings, tls_files: TlsFiles, server_tls: ssl.SSLContext,
                            tmp_path: Path) -> None:
    settings = with_settings(base_settings, api_keys=KEY)
    ca = ssl.create_default_context(cafile=str(tls_files.ca_cert))
    with running(settings, ssl_context=server_tls, verify=ca) as srv:
        url = srv.url + "/api/embed"
        base = srv.url
        sql = SqlServerClient(str(tls_files.ca_cert), credentials=[
            Credential(base, "HTTPEndpointHeaders", json.dumps({"api-key": KEY})),
            Credential(base + "/v1", "HTTPEndpointQueryString", json.dumps({"api-key": KEY})),
            Credential(base + "/elsewhere", "HTTPEndpointHeaders", json.dumps({"api-key": KEY})),
        ])
        try:
            # A2: 2xx -> 0, the envelope carries the body as JSON (A4).
            rc, response = sql.invoke(url, json.dumps({"model": "all-minilm", "input": "hello"}), credential=base)
            env = json.loads(response)
            assert rc == 0 and env["response"]["status"]["http"] == {"code": 200, "description": "OK"}
            assert len(env["result"]["embeddings"][0]) == 384
            assert env["response"]["headers"]["content-type"].startswith("application/json")
            # A6: a query-string credential on a more specific prefix.
            rc, response = sql.invoke(srv.url + "/v1/embeddings", json.dumps({"input": "q"}), credential=base + "/v1")
            assert rc == 0 and len(json.loads(response)["result"]["data"][0]["embedding"]) == 384
            # A2: a non-2xx status is the return value, the error body is still in the envelope.
            rc, response = sql.invoke(url, json.dumps({"model": "all-minilm", "input": "no key"}))
            assert rc == 401 and "error" in json.loads(response)["result"]
            rc, response = sql.invoke(url, "{not json", credential=base)
            assert rc == 400 and json.loads(response)["result"]["error"]
            # A6: a credential must be a prefix of the URL; A9: HTTPS only; A1: timeout range.
            with pytest.raises(SqlError, match="31630"):
                sql.invoke(url, "{}", credential=base + "/elsewhere")
            with pytest.raises(SqlError, match="HTTPS"):
                sql.invoke(url.replace("https://", "http://"), "{}")
            with pytest.raises(SqlError, match="230"):
                sql.invoke(url, "{}", timeout=231)
        finally:
            sql.close()
        # A9: a certificate SQL Server does not trust is a raised error, not a status.
        other = write_selfsigned(tmp_path / "other", ["localhost"], ["127.0.0.1"])
        stranger = SqlServerClient(str(other.ca_cert))
        try:
            with pytest.raises(SqlError, match="31618"):
                stranger.invoke(url, "{}")
        finally:
            stranger.close()


def test_set_based_update_at_the_admission_limit_has_no_null(base_settings: Settings, tls_files: TlsFiles,
                                                            server_tls: ssl.SSLContext, tmp_path: Path) -> None:
    """2,000 rows, 64 concurrent single-text calls against a queue of 32: 429s happen and are
    retried (sql_rest_options.retry_count, Retry-After), and no row gets a NULL vector."""
    from tests.spark.conftest import sentences

    rows = 2000
    db = tmp_path / "app.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE docs (id INTEGER PRIMARY KEY, body TEXT NOT NULL, embedding TEXT)")
    conn.executemany("INSERT INTO docs (id, body) VALUES (?, ?)", list(enumerate(sentences(rows), start=1)))
    conn.commit()
    settings = with_settings(base_settings, api_keys=KEY, max_queue_texts=32, retry_after_s=1)
    ca = ssl.create_default_context(cafile=str(tls_files.ca_cert))
    with running(settings, ssl_context=server_tls, verify=ca) as srv:
        base = srv.url
        cred = Credential(base, "HTTPEndpointHeaders", json.dumps({"api-key": KEY}))
        # What sql/objects/030_external_model.sql registers: retry_count = SQLEMBED_RETRY_COUNT's default.
        retries = int(VARIABLES["SQLEMBED_RETRY_COUNT"].default or 0)
        model = ExternalModel(base + "/api/embed", "Ollama", "all-minilm", cred,
                              {"sql_rest_options": {"retry_count": retries}})
        sql = SqlServerClient(str(tls_files.ca_cert), credentials=[cred])
        logs = [CallLog() for _ in range(rows)]
        texts = conn.execute("SELECT id, body FROM docs ORDER BY id").fetchall()
        try:
            # UPDATE docs SET embedding = AI_GENERATE_EMBEDDINGS(body USE MODEL m): the calls go out at once.
            with ThreadPoolExecutor(64) as pool:
                vectors = list(pool.map(lambda i: sql.ai_generate_embeddings(texts[i][1], model, log=logs[i]),
                                        range(rows)))
        finally:
            sql.close()
        metrics = httpx.get(base + "/metrics", verify=ca, headers={"api-key": KEY}).text
    conn.executemany("UPDATE docs SET embedding = ? WHERE id = ?",
                     [(None if v is None else json.dumps(v), texts[i][0]) for i, v in enumerate(vectors)])
    conn.commit()
    nulls = conn.execute("SELECT COUNT(*) FROM docs WHERE embedding IS NULL").fetchone()[0]
    statuses = Counter(s for log in logs for s in log.statuses)
    conn.close()
    assert statuses[429] > 0, f"the test must reach the admission limit: {statuses}"
    assert nulls == 0, f"{nulls} NULL vectors; statuses {statuses}; max attempts {max(x.attempts for x in logs)}"
    assert set(statuses) == {200, 429}, statuses
    print(f"2,000 rows: {statuses[429]} x 429 retried, max {max(x.attempts for x in logs)} attempts for one row, "
          f"{sum(x.slept for x in logs):.0f} s of Retry-After waits in total; 0 NULL")
    rejected = float(re.search(r"^sqlembed_rejected_total (\S+)$", metrics, re.M).group(1))  # type: ignore[union-attr]
    assert rejected == statuses[429]
