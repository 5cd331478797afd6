"""An HTTP client that behaves as ../shared/docs/sqlserver-contract.md says SQL Server 2025 does.

This is a test double for the *caller*, used to drive the service the way SQL Server would; it is
never presented as SQL Server (the real one runs in tests/mssql where a Docker engine exists).

- ``invoke`` is ``sp_invoke_external_rest_endpoint`` (A1-A9): HTTPS only with certificate
  validation (A9), no redirects (A9: a 3xx is returned as is), ``@timeout`` default 30 s, range
  1-230, cumulative across retries (A1), ``@retry_count`` 0-10 on 408/429/500/502/503/504 with
  ``Retry-After`` honoured, else 200 ms (A8), flat ``@headers`` (A1), credentials turned into
  headers or query parameters (A6) with the URL-prefix rule, system headers (A5), the
  ``@response`` envelope with ``result`` omitted on 204 (A4), and the return value: 0 on 2xx, else
  the status (A2); no HTTP exchange at all raises (A2).
- ``ai_generate_embeddings`` is ``AI_GENERATE_EMBEDDINGS(text USE MODEL m)`` (B4, C1): one text
  per request, the body per API_FORMAT with PARAMETERS merged at the top level, retries from
  ``sql_rest_options.retry_count``, and NULL (None) when the call finally fails, as observed in the
  community (B4 "Errors").
"""

from __future__ import annotations

import json
import ssl
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx

RETRIED = {408, 429, 500, 502, 503, 504}


class SqlError(Exception):
    """What T-SQL would see as a raised error (catchable with TRY/CATCH)."""

    def __init__(self, number: int, message: str) -> None:
        super().__init__(f"Msg {number}: {message}")
        self.number = number


@dataclass(frozen=True)
class Credential:
    name: str  # a URL prefix (A6)
    identity: str  # HTTPEndpointHeaders | HTTPEndpointQueryString
    secret: str  # flat JSON


@dataclass(frozen=True)
class ExternalModel:
    location: str
    api_format: str  # Ollama | OpenAI | Azure OpenAI
    model: str | None = None
    credential: Credential | None = None
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass
class CallLog:
    attempts: int = 0
    statuses: list[int] = field(default_factory=list)
    slept: float = 0.0


def _flat_json(text: str, what: str) -> dict[str, str]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise SqlError(31611, f"{what} is not valid JSON") from e
    if not isinstance(value, dict) or any(isinstance(v, (dict, list)) for v in value.values()):
        raise SqlError(31612, f"{what} must be a flat JSON object")
    return {str(k): str(v) for k, v in value.items()}


def _credential_applies(cred: Credential, url: str) -> bool:
    c, u = urlsplit(cred.name), urlsplit(url)
    if c.query or c.scheme.lower() != u.scheme.lower() or c.netloc.lower() != u.netloc.lower():
        return False
    c_parts = [p for p in c.path.split("/") if p]
    u_parts = [p for p in u.path.split("/") if p]
    return u_parts[: len(c_parts)] == c_parts


class SqlServerClient:
    def __init__(self, ca_file: str, *, credentials: list[Credential] | None = None) -> None:
        ctx = ssl.create_default_context(cafile=ca_file)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        self._http = httpx.Client(verify=ctx, follow_redirects=False, http2=False)
        self.credentials = {c.name: c for c in credentials or []}

    def close(self) -> None:
        self._http.close()

    def invoke(self, url: str, payload: str | None = None, headers: str | None = None, method: str = "POST",
               timeout: int = 30, credential: str | None = None, retry_count: int = 0,
               log: CallLog | None = None) -> tuple[int, str]:
        """(return value, @response). Raises SqlError where T-SQL would raise."""
        if not url.lower().startswith("https://"):
            raise SqlError(31608, "The URL must use HTTPS")
        if len(url) > 8192:
            raise SqlError(31609, "The URL is longer than 8 KB")
        if not 1 <= timeout <= 230:
            raise SqlError(31610, "@timeout must be between 1 and 230 seconds")
        if not 0 <= retry_count <= 10:
            raise SqlError(31613, "@retry_count must be between 0 and 10")
        if method not in ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"):
            raise SqlError(31614, f"unsupported @method {method}")
        sent_headers = _flat_json(headers, "@headers") if headers else {}
        sent_headers = {k: v for k, v in sent_headers.items() if k.lower() != "user-agent"}
        sent_headers.setdefault("content-type", "application/json; charset=utf-8")
        sent_headers.setdefault("accept", "application/json")
        sent_headers["user-agent"] = "SQL Server/17.0 (sqlembed test simulator)"
        if credential is not None:
            cred = self.credentials.get(credential)
            if cred is None or not _credential_applies(cred, url):
                raise SqlError(31630, f"The database scoped credential '{credential}' cannot be used to invoke "
                                      "an external rest endpoint.")
            secret = _flat_json(cred.secret, "the credential secret")
            if cred.identity == "HTTPEndpointHeaders":
                sent_headers.update(secret)
            elif cred.identity == "HTTPEndpointQueryString":
                parts = urlsplit(url)
                query = "&".join(q for q in (parts.query, urlencode(secret)) if q)
                url = urlunsplit(parts._replace(query=query))
            else:
                raise SqlError(31631, f"unsupported credential identity {cred.identity}")
        if sum(len(k) + len(v) for k, v in sent_headers.items()) > 8192:
            raise SqlError(31615, "request headers exceed 8 KB")
        body = payload.encode("utf-8") if payload is not None else None
        if body is not None and len(body) > 100 * 1024 * 1024:
            raise SqlError(31616, "payload exceeds 100 MB")
        log = log or CallLog()
        deadline = time.monotonic() + timeout  # cumulative across retries (A1)
        backoff = 0.2
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise SqlError(31617, f"The operation timed out after {timeout} seconds")
            log.attempts += 1
            try:
                r = self._http.request(method, url, content=body, headers=sent_headers, timeout=remaining)
            except httpx.TimeoutException as e:
                raise SqlError(31617, f"The operation timed out after {timeout} seconds") from e
            except httpx.HTTPError as e:  # DNS, connect, TLS: no HTTP exchange happened (A2)
                raise SqlError(31618, f"Could not connect to the endpoint: {type(e).__name__}") from e
            log.statuses.append(r.status_code)
            if r.status_code in RETRIED and log.attempts <= retry_count:
                retry_after = r.headers.get("Retry-After")
                if retry_after is not None and retry_after.strip().isdigit():
                    delay = float(retry_after)
                else:
                    delay, backoff = backoff, min(backoff * 2, 10.0)
                if time.monotonic() + delay >= deadline:
                    raise SqlError(31617, f"The operation timed out after {timeout} seconds")
                log.slept += delay
                time.sleep(delay)
                continue
            break
        return (0 if 200 <= r.status_code < 300 else r.status_code), self._envelope(r)

    @staticmethod
    def _envelope(r: httpx.Response) -> str:
        try:
            description = HTTPStatus(r.status_code).phrase
        except ValueError:
            description = r.reason_phrase
        env: dict[str, Any] = {"response": {"status": {"http": {"code": r.status_code, "description": description}},
                                            "headers": dict(r.headers.items())}}
        if r.status_code != 204:
            try:
                env["result"] = r.json()
            except ValueError:
                env["result"] = r.text
        return json.dumps(env)

    def ai_generate_embeddings(self, text: str | None, model: ExternalModel,
                               call_parameters: dict[str, Any] | None = None,
                               log: CallLog | None = None) -> list[float] | None:
        if text is None:
            return None
        params = {**model.parameters, **(call_parameters or {})}
        rest = params.pop("sql_rest_options", {}) or {}
        body: dict[str, Any] = {"input": text, **params}
        if model.api_format in ("Ollama", "OpenAI") and model.model is not None:
            body = {"model": model.model, **body}
        cred = model.credential.name if model.credential is not None else None
        try:
            rc, response = self.invoke(model.location, json.dumps(body), credential=cred,
                                       retry_count=int(rest.get("retry_count", 0)),
                                       timeout=int(rest.get("timeout", 30)), log=log)
        except SqlError:
            return None
        if rc != 0:
            return None  # the community-observed behaviour: NULL, not an error (B4 "Errors")
        result = json.loads(response).get("result", {})
        try:
            if model.api_format == "Ollama":
                return [float(x) for x in result["embeddings"][0]]
            return [float(x) for x in result["data"][0]["embedding"]]
        except (KeyError, IndexError, TypeError):
            return None
