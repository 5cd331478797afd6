// The status page: reads GET /v1/status and GET /v1/jobs every few seconds and fills ui.html in;
// Cancel sends DELETE /v1/jobs/{id}. Every value from the service is written as text
// (textContent, properties), never parsed as HTML: a job's last error is untrusted text that can
// quote a table's rows or a database's message.
"use strict";
(function () {
  const KEY = "sqlembed.api-key";
  // ?refresh=SECONDS (0.5 to 60, default 2): how often the figures are read.
  const asked = Number(new URLSearchParams(location.search).get("refresh"));
  const every = 1000 * (asked >= 0.5 && asked <= 60 ? asked : 2);
  const $ = (id) => document.getElementById(id);
  let timer = 0;
  let waitingForKey = false;

  class Refused extends Error {}

  // Paths are relative to the page (/ui): /v1/..., or <prefix>/v1/... behind a proxy.
  async function call(method, path) {
    const headers = { Accept: "application/json" };
    const key = sessionStorage.getItem(KEY);
    // A header, never the URL: a URL ends up in access logs, the history and Referer headers.
    if (key) headers["api-key"] = key;
    const resp = await fetch(path, { method, headers, cache: "no-store", credentials: "omit" });
    if (resp.status === 401) throw new Refused("API key refused");
    let body = null;
    try { body = await resp.json(); } catch (e) { body = null; }
    if (!resp.ok) {
      const err = body && body.error;
      const message = typeof err === "string" ? err : (err && err.message);
      throw new Error(message || resp.status + " " + resp.statusText);
    }
    return body;
  }

  function show(id, value) {
    $(id).textContent = value === null || value === undefined || value === "" ? "—" : String(value);
  }

  function num(value, digits) {
    if (value === null || value === undefined) return "—";
    return Number(value).toLocaleString(undefined, { maximumFractionDigits: digits === undefined ? 1 : digits });
  }

  function duration(seconds) {
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
    return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
  }

  function placementText(p) {
    if (!p || !p.mode) return null;
    let out = p.mode;
    if (p.active && p.active !== p.mode) out += " (" + p.active + ")";
    if (Array.isArray(p.workers) && p.workers.length) out += ", " + p.workers.length + " executor(s)";
    return out;
  }

  function renderStatus(s) {
    const pill = $("state");
    pill.textContent = s.status;
    pill.className = "pill " + (s.status === "ready" ? "ok" : s.status === "failed" ? "bad" : "warn");
    show("version", "v" + s.version);
    show("model", s.model);
    show("precision", s.precision);
    show("backend", s.backend);
    show("placement", placementText(s.placement));
    show("dimensions", s.dimensions);
    show("fronts", s.front_processes);
    show("uptime", duration(s.uptime_s));
    const details = Object.entries(s.engine || {}).flatMap(([name, value]) => {
      const dt = document.createElement("dt");
      const dd = document.createElement("dd");
      dt.textContent = name;
      dd.textContent = typeof value === "object" && value !== null ? JSON.stringify(value) : String(value);
      return [dt, dd];
    });
    $("engine").replaceChildren(...details);
    const r = s.recent;
    show("window", "over the last " + duration(r.window_s));
    show("texts-per-s", num(r.texts_per_s));
    show("requests-per-s", num(r.requests_per_s));
    show("batch-size", num(r.batch_size_mean));
    show("batch-ms", num(r.batch_ms_mean));
    show("latency-p50", num(r.latency_p50_ms));
    show("latency-p95", num(r.latency_p95_ms));
    show("queue", num(s.queue_depth, 0) + " / " + num(s.max_queue_texts, 0));
    show("rejected", num(s.totals.rejected, 0));
    show("texts-total", num(s.totals.texts, 0));
    show("batches-total", num(s.totals.batches, 0));
    show("requests-total", num(s.totals.requests, 0));
    problem(s.error ? "Model load failed: " + s.error : null);
  }

  function cell(content, className) {
    const td = document.createElement("td");
    if (content instanceof Node) td.append(content);
    else td.textContent = content === null || content === undefined ? "—" : String(content);
    if (className) td.className = className;
    return td;
  }

  function eta(job) {
    const left = job.rows_total - job.rows_done - job.rows_failed;
    if (job.state !== "running" || !(job.rows_per_s > 0) || !(left > 0)) return "—";
    return duration(left / job.rows_per_s);
  }

  function progress(job) {
    const box = document.createElement("div");
    box.className = "progress";
    const bar = document.createElement("progress");
    if (job.rows_total > 0) {
      bar.max = job.rows_total;
      bar.value = Math.min(job.rows_done + job.rows_failed, job.rows_total);
    } else if (job.state !== "running") {
      bar.max = 1;
      bar.value = job.state === "succeeded" ? 1 : 0;
    } // else running before its rows are counted: an indeterminate bar
    const label = document.createElement("span");
    label.textContent = num(job.rows_done, 0) + " / " + num(job.rows_total, 0);
    box.append(bar, label);
    return box;
  }

  function jobRow(job) {
    const tr = document.createElement("tr");
    tr.className = "job " + job.state;
    tr.dataset.job = job.id;
    const req = job.request || {};
    const id = cell(job.id.slice(0, 8), "id");
    id.title = job.id;
    const target = req.chunk_table || req.target_table || req.vector;
    const table = cell((req.db || "?") + ": " + (req.table || "?") + (target ? " → " + target : ""));
    let action = "";
    if (job.state === "queued" || job.state === "running") {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "cancel";
      button.textContent = "Cancel";
      button.addEventListener("click", () => cancel(job, button));
      action = button;
    }
    tr.append(id, table, cell(job.state, "state"), cell(progress(job)),
              cell(job.state === "running" || job.rows_per_s ? num(job.rows_per_s) : "—", "num"),
              cell(eta(job), "num"), cell(num(job.rows_failed, 0), "num"),
              cell(job.last_error || "", "last-error"), cell(action));
    return tr;
  }

  function renderJobs(jobs) {
    $("job-rows").replaceChildren(...jobs.slice(0, 50).map(jobRow));
    $("no-jobs").hidden = jobs.length > 0;
    $("jobs").hidden = jobs.length === 0;
  }

  async function cancel(job, button) {
    const short = job.id.slice(0, 8);
    if (!confirm("Cancel job " + short + " (" + (job.request || {}).table + ")? Rows written so far are kept; " +
                 "submitting the job again embeds only the rows still pending.")) return;
    button.disabled = true;
    try {
      await call("DELETE", "v1/jobs/" + encodeURIComponent(job.id));
    } catch (e) {
      if (e instanceof Refused) { askForKey(); return; }
      problem("Cancel failed: " + e.message);
    }
    tick();
  }

  function problem(message) {
    $("problem").hidden = !message;
    $("problem").textContent = message || "";
  }

  function askForKey() {
    waitingForKey = true;
    const hadKey = sessionStorage.getItem(KEY) !== null;
    sessionStorage.removeItem(KEY);
    $("key-error").textContent = hadKey ? "That key was refused." : "";
    $("key-form").hidden = false;
    $("content").hidden = true;
    $("forget").hidden = true;
    $("state").textContent = "API key needed";
    $("state").className = "pill warn";
    $("key").focus();
  }

  async function refresh() {
    const [status, jobs] = await Promise.allSettled([call("GET", "v1/status"), call("GET", "v1/jobs")]);
    if ([status, jobs].some((r) => r.status === "rejected" && r.reason instanceof Refused)) {
      askForKey();
      return;
    }
    $("forget").hidden = sessionStorage.getItem(KEY) === null;
    if (status.status === "fulfilled") {
      renderStatus(status.value);
    } else {
      $("state").textContent = "unreachable";
      $("state").className = "pill bad";
      problem("The service did not answer: " + status.reason.message);
    }
    if (jobs.status === "fulfilled") {
      $("jobs-note").hidden = true;
      renderJobs(jobs.value.jobs);
    } else {
      // 503 where the job runner or its store is not available: online embedding still works.
      $("jobs-note").hidden = false;
      $("jobs-note").textContent = "Jobs are not available: " + jobs.reason.message;
    }
  }

  // One refresh at a time: a refresh asked for meanwhile (after a cancel, say) runs right after.
  let busy = false;
  let again = false;
  async function tick() {
    clearTimeout(timer);
    if (busy) { again = true; return; }
    if (waitingForKey) return;
    busy = true;
    try {
      if (!document.hidden) await refresh();  // a background tab costs the service nothing
    } finally {
      busy = false;
    }
    if (waitingForKey) return;
    timer = setTimeout(tick, again ? 0 : every);
    again = false;
  }

  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("key").value.trim();
    if (!value) return;
    sessionStorage.setItem(KEY, value);
    $("key").value = "";
    $("key-form").hidden = true;
    $("content").hidden = false;
    waitingForKey = false;
    tick();
  });
  $("forget").addEventListener("click", () => {
    sessionStorage.removeItem(KEY);
    askForKey();
  });
  document.addEventListener("visibilitychange", () => { if (!document.hidden && !waitingForKey) tick(); });
  // The API reference needs a key exactly when /openapi.json does, and a link cannot send one:
  // the link shows only where the reference opens without it.
  fetch("docs", { method: "HEAD", credentials: "omit" }).then((r) => { $("docs-link").hidden = !r.ok; }, () => {});
  tick();
})();
