"""Row-by-row benchmark: SQL Server's own call pattern, one text per call, one call after another.

``AI_GENERATE_EMBEDDINGS`` calls the endpoint once per row with one text; for a statement that
makes its calls one after another, rows/s is 1 / latency. Phases, in one run, on one corpus
(real paragraphs that fit the model's 256 tokens, so no peer truncates differently):

  1. the engine in process, one text per call (``Embedder.embed([text])``, the service's own
     engine settings): the floor the service is measured against;
  2. the service over HTTP (Ollama's ``/api/embed`` body, as SQL Server sends it): keep-alive,
     and a new connection per call;
  3. the service over HTTPS (TLS 1.3, the ECDSA certificate of ``sqlembed tls selfsigned``):
     keep-alive; a new connection per call with a full handshake; a new connection per call that
     resumes the previous TLS session (a session ticket); the same three on ``GET /healthz``,
     which never reaches the engine (TLS alone);
  4. where nginx is installed, nginx terminating TLS in front of the HTTP service (native TLS,
     kept-alive upstream connections), the same three ways;
  5. optionally the same service started from another source tree (``--baseline-src``: an A/B of
     a change in the same run);
  6. optionally llama.cpp's own server (the engine inside Ollama) on the same model converted to
     GGUF (``bench/llama_cpp.sh`` builds both), keep-alive, its OpenAI route;
  7. the keyed-rows route ``sqlembed.embed_rows`` calls (``/v1/sqlserver/embed``), rows per call
     as ``--rows-per-call``: the service's share of pull mode, for the DBA's comparison.

Phases 1-6 take turns every ``--block`` calls over ``--rounds`` rounds, so a slow minute of a
shared machine lands on all of them alike; every served phase's vectors are compared with the
engine's (min cosine).

The client is a raw HTTP/1.1 client over loopback with requests built before the clock starts,
so the figures are the server's latency plus the least a client can add; it shares the two cores
with the server, as SQL Server on the same host would. Run on demand, never in CI.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sqlembed.benchmark.cluster import free_port
from sqlembed.benchmark.corpus import paragraphs
from sqlembed.benchmark.machine import describe

LLAMA_DIR = Path(os.environ.get("SQLEMBED_BENCH_DIR", Path.home() / ".cache" / "sqlembed" / "bench")) / "llama.cpp"


@dataclass
class Phase:
    name: str
    latencies_ms: list[float] = field(default_factory=list)
    seconds: float = 0.0
    note: str = ""
    server_cpu_ms: float | None = None
    """The server process's CPU time (all threads, /proc) per call: what a call costs the host,
    whoever the client is (with ONNX Runtime spinning, the spin counts too)."""
    versus: Phase | None = None
    """The keep-alive phase a new-connection phase is compared with."""

    @property
    def rows_per_s(self) -> float:
        return len(self.latencies_ms) / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q))


def _wait_http(url_ok: Callable[[], bool], proc: subprocess.Popen[bytes], what: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before it was ready")
        try:
            if url_ok():
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{what} did not become ready in {timeout:g} s")


def get_status(port: int, path: str, ctx: ssl.SSLContext | None = None) -> int:
    conn: http.client.HTTPConnection = (http.client.HTTPSConnection("localhost", port, context=ctx, timeout=5)
                                        if ctx else http.client.HTTPConnection("127.0.0.1", port, timeout=5))
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        r.read()
        return r.status
    finally:
        conn.close()


@dataclass(frozen=True)
class Server:
    port: int
    pid: int
    behind: Server | None = None
    """The server this one proxies to (a TLS terminator's upstream): its CPU counts too."""

    def cpu_s(self) -> float:
        """User + system CPU seconds of the process so far (all threads), and of ``behind``."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return own + (self.behind.cpu_s() if self.behind else 0.0)


@contextmanager
def service(model_dir: Path, precision: str, *, tls: tuple[Path, Path] | None = None,
            src: Path | None = None, env: dict[str, str] | None = None,
            client_ctx: ssl.SSLContext | None = None) -> Iterator[Server]:
    """``sqlembed serve`` as a subprocess (from ``src``'s ``python/`` when given)."""
    port = free_port()
    e = {**os.environ, "SQLEMBED_MODEL_DIR": str(model_dir), "SQLEMBED_PRECISION": precision,
         "SQLEMBED_LOG_LEVEL": "WARNING", "SQLEMBED_API_KEYS": "", **(env or {})}
    if src is not None:
        e["PYTHONPATH"] = str(src / "python")
    cmd = [sys.executable, "-m", "sqlembed", "serve", "--host", "127.0.0.1", "--port", str(port)]
    if tls:
        cmd += ["--tls-cert", str(tls[0]), "--tls-key", str(tls[1])]
    proc = subprocess.Popen(cmd, env=e)
    try:
        _wait_http(lambda: get_status(port, "/readyz", client_ctx if tls else None) == 200, proc, "sqlembed serve")
        yield Server(port, proc.pid)
    finally:
        proc.terminate()
        proc.wait(30)


class RawClient:
    """Serial POSTs of prepared bodies over one kept-alive connection, or a new one per call.

    A raw HTTP/1.1 client (request bytes built before the clock starts, one ``sendall``, the reply
    read to its Content-Length): ``http.client`` parses headers with the email package and added
    ~1 ms per call here (measured against wrk), which would be charged to the server.
    """

    def __init__(self, port: int, path: str, *, ctx: ssl.SSLContext | None = None, new_conn: bool = False,
                 resume: bool = False, method: str = "POST") -> None:
        self.port, self.path, self.ctx, self.new_conn, self.resume = port, path, ctx, new_conn, resume
        self.method = method
        self.session: ssl.SSLSession | None = None
        self.resumed = 0
        self.handshakes = 0
        self.closed_by_server = 0
        self._sock: socket.socket | None = None

    def request(self, body: bytes) -> bytes:
        if self.method == "GET":
            return f"GET {self.path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode()
        return (f"{self.method} {self.path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode() + body

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.ctx is None:
            return sock
        tls = self.ctx.wrap_socket(sock, server_hostname="localhost",
                                   session=self.session if self.resume else None)
        self.handshakes += 1
        self.resumed += int(bool(tls.session_reused))
        return tls

    def post(self, request: bytes) -> bytes:
        if self._sock is None or self.new_conn:
            self._sock = self._connect()
        sock = self._sock
        sock.sendall(request)
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65536)
            if not chunk:
                raise RuntimeError(f"{self.path}: connection closed mid-response")
            buf += chunk
        head, _, data = buf.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        length = next((int(line.split(b":", 1)[1]) for line in lines[1:]
                       if line[:15].lower() == b"content-length:"), None)
        if length is None:
            raise RuntimeError(f"{self.path}: a reply without Content-Length")
        while len(data) < length:
            chunk = sock.recv(65536)
            if not chunk:
                raise RuntimeError(f"{self.path}: connection closed mid-response")
            data += chunk
        status = int(lines[0].split()[1])
        if status != 200:
            raise RuntimeError(f"HTTP {status} from {self.path}: {data[:300]!r}")
        if not self.new_conn and any(line.lower() == b"connection: close" for line in lines[1:]):
            self.closed_by_server += 1  # cpp-httplib (llama.cpp) ends a connection after a few requests
            sock.close()
            self._sock = None
        if self.new_conn:
            if isinstance(sock, ssl.SSLSocket) and sock.session is not None:
                self.session = sock.session  # TLS 1.3 tickets arrive after the handshake, with the data
            sock.close()
            self._sock = None
        return data

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _ollama_bodies(texts: list[str]) -> list[bytes]:
    return [json.dumps({"model": "all-minilm", "input": [t]}).encode() for t in texts]


def _min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return float(np.min(np.sum(a * b, axis=1)))


@contextmanager
def llama_server(binary: Path, gguf: Path, threads: int) -> Iterator[Server]:
    port = free_port()
    # A BERT model's whole sequence must fit one micro-batch (non-causal attention).
    cmd = [str(binary), "-m", str(gguf), "--embeddings", "--pooling", "mean", "--host", "127.0.0.1",
           "--port", str(port), "-t", str(threads), "-tb", str(threads), "-c", "512", "-b", "512",
           "-ub", "512", "-np", "1", "--log-disable",
           # Its start-up warm-up crashed (SIGSEGV) on q8_0 here; the benchmark warms every phase alike.
           "--no-warmup"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_http(lambda: get_status(port, "/health") == 200, proc, "llama-server")
        yield Server(port, proc.pid)
    finally:
        proc.terminate()
        proc.wait(30)


NGINX_CONF = """daemon off; master_process off; worker_processes 1; pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy; fastcgi_temp_path {tmp}/fcgi;
  uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;
  client_max_body_size 100m;
  upstream sqlembed {{ server 127.0.0.1:{upstream}; keepalive 16; }}
  server {{
    listen 127.0.0.1:{port} ssl;
    ssl_certificate {cert}; ssl_certificate_key {key};
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_tickets on; ssl_session_cache shared:tls:1m;
    keepalive_timeout 75s;
    location / {{
      proxy_pass http://sqlembed; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_buffering off;
    }}
  }}
}}
"""


@contextmanager
def nginx(binary: str, upstream: Server, cert: Path, key: Path, tmp: Path) -> Iterator[Server]:
    """nginx terminating TLS in front of the plain-HTTP service, with kept-alive upstream
    connections: the native TLS stack Container Apps' ingress (Envoy) or a host proxy would put
    there."""
    port = free_port()
    tmp.mkdir(parents=True, exist_ok=True)
    conf = tmp / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=tmp, upstream=upstream.port, port=port, cert=cert, key=key))
    proc = subprocess.Popen([binary, "-c", str(conf), "-p", str(tmp)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        ctx = ssl.create_default_context(cafile=str(cert.parent / "ca.crt"))
        _wait_http(lambda: get_status(port, "/healthz", ctx) == 200, proc, "nginx")
        yield Server(port, proc.pid, behind=upstream)
    finally:
        proc.terminate()
        proc.wait(30)


def keyed_rows_phase(server: Server, texts: list[str], per_call: int, rounds: int) -> Phase:
    """The body ``sqlembed.embed_rows`` sends, ``per_call`` rows each; one latency per call."""
    bodies = []
    for start in range(0, len(texts), per_call):
        chunk = [{"id": i + 1, "text": t} for i, t in enumerate(texts[start:start + per_call])]
        bodies.append(json.dumps({"model": "all-minilm", "dimensions": 384, "input_type": "passage",
                                  "inputs": chunk}).encode())
    client = RawClient(server.port, "/v1/sqlserver/embed")
    bodies = [client.request(b) for b in bodies]
    client.post(bodies[0])
    phase = Phase(f"keyed rows route (embed_rows), {per_call} rows per call")
    rows = 0
    t0 = time.perf_counter()
    for _ in range(rounds):
        for b in bodies:
            t = time.perf_counter()
            client.post(b)
            phase.latencies_ms.append((time.perf_counter() - t) * 1000)
        rows += len(texts)
    phase.seconds = time.perf_counter() - t0
    client.close()
    phase.note = f"{rows / phase.seconds:.1f} rows/s (latency and x engine are per call of {per_call} rows)"
    return phase


@dataclass
class Driver:
    """One phase's way of making a call for text ``i``; the drivers take turns, block by block."""

    phase: Phase
    call: Callable[[int], bytes | None]
    server: Server | None = None
    client: RawClient | None = None
    outputs: dict[int, bytes] = field(default_factory=dict)


def run_interleaved(drivers: list[Driver], n: int, rounds: int, block: int, warmup: int) -> None:
    """Every driver over texts ``0..n`` ``rounds`` times, taking turns every ``block`` calls, so
    a slow minute of a shared machine lands on every phase alike."""
    for d in drivers:
        for i in range(min(warmup, n)):
            d.call(i)
        if d.client is not None:
            d.client.resumed = d.client.handshakes = d.client.closed_by_server = 0
    cpu = {id(d): 0.0 for d in drivers}
    for _ in range(rounds):
        for start in range(0, n, block):
            for d in drivers:
                c0 = d.server.cpu_s() if d.server else 0.0
                t0 = time.perf_counter()
                for i in range(start, min(start + block, n)):
                    t = time.perf_counter()
                    out = d.call(i)
                    d.phase.latencies_ms.append((time.perf_counter() - t) * 1000)
                    if out is not None and i not in d.outputs:
                        d.outputs[i] = out
                d.phase.seconds += time.perf_counter() - t0
                if d.server is not None:
                    cpu[id(d)] += d.server.cpu_s() - c0
    for d in drivers:
        calls = len(d.phase.latencies_ms)
        if d.server is not None:
            d.phase.server_cpu_ms = cpu[id(d)] / calls * 1000
        c = d.client
        if c is not None and c.handshakes and c.ctx is not None and c.new_conn:
            d.phase.note = f"{c.resumed}/{c.handshakes} handshakes resumed"
        if c is not None and c.closed_by_server:
            d.phase.note = f"the server closed the connection {c.closed_by_server} times (reconnected, counted)"


def _http_driver(name: str, server: Server, path: str, bodies: list[bytes], versus: Driver | None = None,
                 **kw: Any) -> Driver:
    client = RawClient(server.port, path, **kw)
    requests = [client.request(b) for b in bodies]
    phase = Phase(name, versus=versus.phase if versus else None)
    return Driver(phase, lambda i: client.post(requests[i]), server, client)


def report(phases: list[Phase], floor: Phase) -> str:
    lines = [f"{'phase':58} {'p50 ms':>7} {'p95 ms':>7} {'rows/s':>7} {'x engine':>8} {'srv CPU':>7}  note"]
    for p in phases:
        keyed = p.name.startswith("keyed")
        rate = "-" if keyed else f"{p.rows_per_s:7.1f}"
        ratio = "-" if keyed or "/healthz" in p.name else f"{p.pct(50) / floor.pct(50):.2f}"
        cpu = "-" if p.server_cpu_ms is None else f"{p.server_cpu_ms:.2f}"
        note = p.note
        if p.versus is not None:
            note = f"+{p.pct(50) - p.versus.pct(50):.2f} ms p50 over {p.versus.name}; {note}"
        lines.append(f"{p.name:58} {p.pct(50):7.2f} {p.pct(95):7.2f} {rate:>7} {ratio:>8} {cpu:>7}  {note}")
    return "\n".join(lines) + ("\n(x engine: p50 over the in-process engine's p50; srv CPU: the server "
                               "process's CPU ms per call, all threads)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench/rowbyrow.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--texts", type=int, default=300, help="distinct texts; every phase calls each once per round")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--block", type=int, default=25, help="calls per turn before the next phase's turn")
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--model-dir", help="model store (default: a temporary one, the model built first)")
    ap.add_argument("--baseline-src", type=Path, help="a source tree whose service is measured beside (A/B)")
    ap.add_argument("--llama-server", type=Path, default=LLAMA_DIR / "llama-server",
                    help="llama.cpp's server binary (bench/llama_cpp.sh builds it)")
    ap.add_argument("--gguf", type=Path, default=LLAMA_DIR / "all-minilm-l6-v2-f32.gguf")
    ap.add_argument("--rows-per-call", type=int, default=500)
    ap.add_argument("--nginx", default=shutil.which("nginx") or "",
                    help="nginx binary for the TLS-terminator phases (default: on PATH; empty: skip them)")
    ap.add_argument("--env", action="append", default=[], help="KEY=VALUE for the service (repeatable)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    from sqlembed.engine.build import build_model
    from sqlembed.engine.config import model_id
    from sqlembed.engine.opener import open_embedder
    from sqlembed.engine.store import ModelStore
    from sqlembed.engine.tokenizer import Tokenizer
    from sqlembed.settings import Settings
    from sqlembed.tls import write_selfsigned

    tmp = Path(tempfile.mkdtemp(prefix="sqlembed-rowbyrow-"))
    model_dir = Path(args.model_dir) if args.model_dir else tmp / "models"
    store = ModelStore(model_dir)
    build_model(store, precision=args.precision)
    tok = Tokenizer(store.path(model_id("all-minilm-l6-v2", args.precision)) / "tokenizer.json", 256)
    corpus = paragraphs(4 * args.texts)
    # Texts no peer truncates (<= 254 word pieces + [CLS] + [SEP]); the same order every run.
    texts = [t for t, ids in zip(corpus, tok.encode(corpus).ids, strict=True) if len(ids) < 256][:args.texts]
    n = len(texts)
    lengths = [len(ids) for ids in tok.encode(texts).ids]
    env = dict(kv.split("=", 1) for kv in args.env)
    print(f"machine: {describe()}")
    print(f"corpus: {n} paragraphs, mean {np.mean(lengths):.1f} tokens, p95 "
          f"{np.percentile(lengths, 95):.0f}, max {max(lengths)}; precision {args.precision}; "
          f"{args.rounds} rounds, turns of {args.block} calls", flush=True)

    # The service's own engine settings (threads, spinning), so the floor is the same engine.
    fields: dict[str, Any] = {"model_dir": model_dir, "precision": args.precision}
    emb = open_embedder(Settings(**fields).engine_settings())
    emb.warmup()
    floor = Phase("engine in process, 1 text per call")

    def engine_call(i: int) -> bytes:
        return bytes(emb.embed([texts[i]])[0].tobytes())

    bodies = _ollama_bodies(texts)
    files = write_selfsigned(tmp / "tls", ["localhost"], ["127.0.0.1"])
    ctx = ssl.create_default_context(cafile=str(files.ca_cert))
    llama = args.llama_server.is_file() and args.gguf.is_file()
    if not llama:
        print(f"llama.cpp phase skipped: {args.llama_server} or {args.gguf} missing (run bench/llama_cpp.sh)")
    with ExitStack() as stack:
        http_srv = stack.enter_context(service(model_dir, args.precision, env=env))
        https_srv = stack.enter_context(service(model_dir, args.precision, env=env, tls=(files.cert, files.key),
                                                client_ctx=ctx))
        http_ka = _http_driver("service, HTTP keep-alive", http_srv, "/api/embed", bodies)
        https_ka = _http_driver("service, HTTPS keep-alive", https_srv, "/api/embed", bodies, ctx=ctx)
        # TLS alone: GET /healthz never touches the engine, so the server's CPU per call is the
        # connection's and the request's, without ONNX Runtime's spinning.
        ping_ka = _http_driver("GET /healthz, HTTPS keep-alive", https_srv, "/healthz", bodies, ctx=ctx,
                               method="GET")
        drivers = [
            Driver(floor, engine_call),
            http_ka,
            _http_driver("service, HTTP new connection per call", http_srv, "/api/embed", bodies, http_ka,
                         new_conn=True),
            https_ka,
            _http_driver("service, HTTPS new connection per call (full handshake)", https_srv, "/api/embed",
                         bodies, https_ka, ctx=ctx, new_conn=True),
            _http_driver("service, HTTPS new connection per call (resumed session)", https_srv, "/api/embed",
                         bodies, https_ka, ctx=ctx, new_conn=True, resume=True),
            ping_ka,
            _http_driver("GET /healthz, HTTPS new connection (full handshake)", https_srv, "/healthz", bodies,
                         ping_ka, ctx=ctx, new_conn=True, method="GET"),
            _http_driver("GET /healthz, HTTPS new connection (resumed session)", https_srv, "/healthz", bodies,
                         ping_ka, ctx=ctx, new_conn=True, resume=True, method="GET"),
        ]
        if args.nginx:
            front = stack.enter_context(nginx(args.nginx, http_srv, files.cert, files.key, tmp / "nginx"))
            nginx_ka = _http_driver("nginx TLS -> service, keep-alive", front, "/api/embed", bodies, ctx=ctx)
            drivers += [
                nginx_ka,
                _http_driver("nginx TLS -> service, new connection per call (full handshake)", front,
                             "/api/embed", bodies, nginx_ka, ctx=ctx, new_conn=True),
                _http_driver("nginx TLS -> service, new connection per call (resumed session)", front,
                             "/api/embed", bodies, nginx_ka, ctx=ctx, new_conn=True, resume=True),
            ]
        else:
            print("nginx phases skipped: no nginx on PATH (--nginx)")
        if args.baseline_src:
            base = stack.enter_context(service(model_dir, args.precision, env=env, src=args.baseline_src))
            drivers.append(_http_driver(f"baseline source ({args.baseline_src.name}), HTTP keep-alive", base,
                                        "/api/embed", bodies))
        if llama:
            lsrv = stack.enter_context(llama_server(args.llama_server, args.gguf, os.cpu_count() or 1))
            drivers.append(_http_driver(f"llama.cpp server ({args.gguf.stem}), HTTP keep-alive", lsrv,
                                        "/v1/embeddings", bodies))
        run_interleaved(drivers, n, args.rounds, args.block, args.warmup)
        ref = np.stack([np.frombuffer(drivers[0].outputs[i], dtype=np.float32) for i in range(n)])
        for d in drivers[1:]:
            if d.outputs and "new connection" not in d.phase.name and "/healthz" not in d.phase.name:
                docs = [json.loads(d.outputs[i]) for i in range(n)]
                got = np.asarray([doc["embeddings"][0] if "embeddings" in doc else doc["data"][0]["embedding"]
                                  for doc in docs], dtype=np.float32)
                d.phase.note = (d.phase.note + "; " if d.phase.note else "") + \
                    f"min cosine to engine {_min_cosine(got, ref):.6f}"
        keyed = keyed_rows_phase(http_srv, texts, args.rows_per_call, rounds=args.rounds)
    emb.close()
    phases = [d.phase for d in drivers] + [keyed]
    print()
    print(f"machine: {describe()}")
    print(report(phases, floor))
    if args.json:
        args.json.write_text(json.dumps({
            "machine": describe(), "precision": args.precision, "texts": n, "rounds": args.rounds,
            "phases": [{"name": p.name, "p50_ms": p.pct(50), "p95_ms": p.pct(95), "rows_per_s": p.rows_per_s,
                        "server_cpu_ms_per_call": p.server_cpu_ms, "note": p.note} for p in phases]}, indent=2))
    shutil.rmtree(tmp, ignore_errors=True)
    return 0
