"""The route table: every route with what the OpenAPI document says about it.

``app.create_app`` registers exactly these routes and ``build_spec`` describes exactly these,
from the same request models and response shapes the handlers use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from sqlembed.api import health, jobs, ollama, openai, openapi, pages, sqlserver, status
from sqlembed.api.errors import Handler, Protocol
from sqlembed.api.schemas import jobs as job_s
from sqlembed.api.schemas import ollama as ollama_s
from sqlembed.api.schemas import openai as openai_s
from sqlembed.api.schemas import service as service_s
from sqlembed.api.schemas import sqlserver as sqlserver_s
from sqlembed.api.schemas.common import Limits

EMBED_ERRORS = (400, 401, 404, 413, 415, 422, 429, 503)


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    protocol: Protocol
    request: type[BaseModel] | None = None
    response: Any = None
    """The 2xx body's type (a TypedDict), or None for a text body."""
    status: int = 200
    errors: tuple[int, ...] = (401,)
    error_body: Any = None
    """The error statuses' body type where it is not the protocol's error envelope (readiness)."""
    open: bool = False
    """Served without an API key (liveness and readiness probes, Ollama's root, the status page's
    shell): the auth middleware reads this flag, so the document and the server cannot disagree."""
    content_type: str = "application/json"
    description: str = ""
    also: tuple[tuple[int, Any, str], ...] = ()
    """Other success answers: (status, body type, when), e.g. a job's dry run (200) beside its 202."""


DESCRIPTION_OPEN = False
"""Whether the API's description needs no key: /openapi.json and the reference that renders it
(/docs and its files) are open or closed together, since /docs shows nothing the document does not
hold. Closed, like every route that is not a probe: with API keys configured a browser cannot open
/docs (it sends no header when it navigates); docs/api.md says how to read the reference then."""

ROUTES: tuple[Route, ...] = (
    Route("POST", "/api/embed", ollama.embed, "Ollama embed (AI_GENERATE_EMBEDDINGS, API_FORMAT 'Ollama')",
          "ollama", ollama_s.EmbedRequest, ollama_s.EmbedResponse, errors=EMBED_ERRORS),
    Route("POST", "/api/embeddings", ollama.embeddings_legacy, "Ollama legacy embeddings (one prompt)",
          "ollama", ollama_s.LegacyRequest, ollama_s.LegacyResponse, errors=EMBED_ERRORS),
    Route("GET", "/api/tags", ollama.tags, "models served (Ollama)", "ollama", response=ollama_s.TagsResponse,
          errors=(401, 503)),
    Route("POST", "/api/show", ollama.show, "model card: context and embedding length, capabilities (Ollama)",
          "ollama", ollama_s.ShowRequest, ollama_s.ShowResponse, errors=(400, 401, 404, 413, 415, 503)),
    Route("GET", "/api/ps", ollama.ps, "the loaded model (Ollama)", "ollama", response=ollama_s.PsResponse,
          errors=(401, 503)),
    Route("GET", "/api/version", ollama.version, "Ollama-compatible version", "ollama",
          response=ollama_s.VersionResponse),
    Route("GET", "/", ollama.root, "liveness text, as Ollama answers", "ollama", open=True,
          content_type="text/plain", errors=()),
    Route("POST", "/v1/embeddings", openai.embeddings, "OpenAI embeddings (API_FORMAT 'OpenAI')", "openai",
          openai_s.EmbeddingsRequest, openai_s.EmbeddingsResponse, errors=EMBED_ERRORS),
    Route("POST", "/embeddings", openai.embeddings, "OpenAI embeddings under any prefix", "openai",
          openai_s.EmbeddingsRequest, openai_s.EmbeddingsResponse, errors=EMBED_ERRORS),
    Route("POST", "/openai/v1/embeddings", openai.embeddings, "Azure OpenAI v1 embeddings", "openai",
          openai_s.EmbeddingsRequest, openai_s.EmbeddingsResponse, errors=EMBED_ERRORS),
    Route("POST", "/openai/deployments/{deployment}/embeddings", openai.embeddings,
          "Azure OpenAI deployment embeddings (API_FORMAT 'Azure OpenAI'; api-version accepted)", "openai",
          openai_s.EmbeddingsRequest, openai_s.EmbeddingsResponse, errors=EMBED_ERRORS),
    Route("GET", "/v1/models", openai.models, "models served (OpenAI)", "openai", response=openai_s.ModelList,
          errors=(401, 503)),
    Route("POST", "/v1/sqlserver/embed", sqlserver.embed,
          "keyed rows in, keyed vectors and per-row errors out (sqlembed.embed_rows)", "openai",
          sqlserver_s.EmbedRowsRequest, sqlserver_s.EmbedRowsResponse, errors=EMBED_ERRORS,
          description=sqlserver_s.NDJSON_DESCRIPTION),
    Route("POST", "/v1/jobs", jobs.submit, "submit a bulk embedding job (202 at once; poll GET /v1/jobs/{job_id})",
          "openai", job_s.JobRequest, job_s.Job, status=202, errors=(400, 401, 413, 415, 422, 503),
          also=((200, job_s.DryRun, "dry_run: what the job would do; nothing written, no job recorded"),)),
    Route("GET", "/v1/jobs", jobs.list_jobs, "recent jobs", "openai", response=job_s.JobList, errors=(401, 503)),
    Route("GET", "/v1/jobs/{job_id}", jobs.get, "job state and progress", "openai", response=job_s.Job,
          errors=(401, 404, 503)),
    Route("DELETE", "/v1/jobs/{job_id}", jobs.cancel, "cancel (the Spark job group)", "openai",
          response=job_s.Job, errors=(401, 404, 503)),
    Route("GET", "/v1/scale", jobs.scale, "scale signal for GPU workers (KEDA metrics-api)", "openai",
          response=job_s.Scale, errors=(401, 503)),
    Route("GET", "/healthz", health.healthz, "liveness", "ollama", response=service_s.Health, open=True, errors=()),
    Route("GET", "/readyz", health.readyz, "readiness: model loaded and warmed", "ollama",
          response=service_s.Ready, open=True, errors=(503,), error_body=service_s.Ready),
    Route("GET", "/metrics", health.metrics, "Prometheus metrics", "ollama", content_type="text/plain"),
    Route("GET", "/openapi.json", openapi.openapi, "this document", "ollama", response=dict[str, Any],
          open=DESCRIPTION_OPEN, errors=() if DESCRIPTION_OPEN else (401,)),
    Route("GET", "/docs", pages.docs, "interactive API reference (Swagger UI over /openapi.json)", "ollama",
          content_type="text/html", open=DESCRIPTION_OPEN, errors=() if DESCRIPTION_OPEN else (401,)),
    Route("GET", "/docs/{asset}", pages.docs_asset, "the API reference's scripts, styles and icons", "ollama",
          content_type="*/*", open=DESCRIPTION_OPEN, errors=(404,) if DESCRIPTION_OPEN else (401, 404)),
    # The status page's shell and files are open: they hold no data (every figure comes from
    # /v1/status and /v1/jobs, which need the key), and a browser cannot send the api-key header
    # when it navigates, so a closed shell would need the key in the URL (access logs, history,
    # Referer) or a cookie (which a cross-site form would send along to DELETE /v1/jobs/{id}).
    Route("GET", "/ui", pages.ui, "status page for operators (asks for the API key where one is configured)",
          "ollama", content_type="text/html", open=True, errors=()),
    Route("GET", "/ui/{asset}", pages.ui_asset, "the status page's script, style and icon", "ollama",
          content_type="*/*", open=True, errors=(404,)),
    Route("GET", "/v1/status", status.status, "the status page's figures: model, placement, queue, recent rates",
          "openai", response=service_s.Status, errors=(401,)),
)


def build_spec(limits: Limits | None = None, extra_paths: tuple[str, ...] = ()) -> dict[str, Any]:
    """The OpenAPI document of this route table (``GET /openapi.json``)."""
    return openapi.spec_for(ROUTES, limits, extra_paths)
