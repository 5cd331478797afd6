"""Command line: ``sqlembed serve | model build|list | tls selfsigned | db deploy|render|status |
embed-table | bench``.

One of the entry points that read settings from the environment (architecture.md).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, get_args

from sqlembed import __version__
from sqlembed.db.targets.spec import SyncMode
from sqlembed.engine.config import DEFAULT_MODEL, BackendName, PlacementMode, Precision
from sqlembed.errors import SqlembedError
from sqlembed.settings import Settings

log = logging.getLogger("sqlembed")


def _settings(args: argparse.Namespace, **fields: Any) -> Settings:
    overrides = {k: v for k, v in fields.items() if v is not None}
    if getattr(args, "model_dir", None):
        overrides["model_dir"] = Path(args.model_dir)
    return Settings(**overrides)


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings(args, host=args.host, port=args.port, model=args.model, precision=args.precision,
                         tls_cert=args.tls_cert, tls_key=args.tls_key, backend=args.backend,
                         placement=args.placement, spark_master=args.spark_master, workers=args.workers)
    if settings.workers > 1:
        # Before anything imports the service (and prometheus-client with it): run/host.py sets
        # up the shared metrics directory first.
        from sqlembed.run.host import serve_with_fronts

        serve_with_fronts(settings)
    else:
        from sqlembed.run.service import serve

        serve(settings)
    return 0


def cmd_model_build(args: argparse.Namespace) -> int:
    from sqlembed.engine.build import build_model
    from sqlembed.engine.store import ModelStore

    settings = _settings(args)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.backend == "tensorrt":
        # fp16 lives in the engine (built from the fp32 ONNX export); the ONNX model stays fp32.
        if args.precision not in ("fp16", "fp32"):
            raise SqlembedError("TensorRT engines are built in fp16 from the fp32 export: use --precision fp16")
        from sqlembed.engine.tensorrt_gpu import build_engine

        store = ModelStore(settings.model_dir)
        m = build_model(store, source=args.source, precision="fp32", name=args.name, force=args.force)
        path = build_engine(store.path(m.id), m)
        print(f"{m.id}\tTensorRT engine {path}")
        return 0
    if args.precision == "fp16":
        raise SqlembedError("--precision fp16 is for TensorRT engines: add --backend tensorrt")
    m = build_model(ModelStore(settings.model_dir), source=args.source, precision=args.precision,
                    name=args.name, force=args.force)
    print(f"{m.id}\t{m.dimensions} dims\tmax {m.max_seq_length} tokens\t{m.pooling}"
          f"{'+normalize' if m.normalize else ''}\t{settings.model_dir / m.id}")
    return 0


def cmd_model_list(args: argparse.Namespace) -> int:
    from sqlembed.engine.store import ModelStore

    settings = _settings(args)
    models = ModelStore(settings.model_dir).list()
    if args.json:
        print(json.dumps([json.loads(m.to_json()) for m in models], indent=2))
        return 0
    if not models:
        print(f"no models in {settings.model_dir}; run: sqlembed model build")
        return 0
    print(f"{'ID':32} {'DIMS':>5} {'MAXLEN':>6} {'POOLING':14} {'PRECISION':9} CREATED")
    for m in models:
        pooling = m.pooling + ("+norm" if m.normalize else "")
        print(f"{m.id:32} {m.dimensions:>5} {m.max_seq_length:>6} {pooling:14} {m.precision:9} {m.created_at}")
    return 0


def cmd_tls_selfsigned(args: argparse.Namespace) -> int:
    from sqlembed.tls import trust_instructions, write_selfsigned

    hosts = args.host + (["localhost"] if "localhost" not in args.host else [])
    files = write_selfsigned(Path(args.out), hosts, args.ip or [], days=args.days)
    print(trust_instructions(files, args.host[0]))
    return 0


def _db_values(args: argparse.Namespace, *, api_key: str | None) -> dict[str, str]:
    from sqlembed.db.variables import resolve

    given = {}
    for kv in args.var or []:
        if "=" not in kv:
            raise SqlembedError(f"--var takes NAME=VALUE, got {kv!r}")
        k, v = kv.split("=", 1)
        given[k.strip()] = v
    if "SQLEMBED_API_KEY" in given:
        raise SqlembedError("the API key is never passed on the command line: set the environment variable "
                            "named by --api-key-env (default SQLEMBED_API_KEY) or use --prompt-api-key")
    if api_key is not None:
        given["SQLEMBED_API_KEY"] = api_key
    return resolve(given)


def cmd_db_render(args: argparse.Namespace) -> int:
    from sqlembed.db.sqlfiles import load, render

    settings = _settings(args)
    script = render(load(settings.sql_dir), _db_values(args, api_key=None), __version__)
    if args.out == "-":
        sys.stdout.write(script)
    else:
        Path(args.out).write_text(script, encoding="utf-8")
        print(f"wrote {args.out}: run it with sqlcmd (or SSMS in SQLCMD mode), passing -v SQLEMBED_API_KEY=<key>")
    return 0


def _connect(args: argparse.Namespace, settings: Settings) -> Any:
    from sqlembed.db.connect import connect

    dsn = args.dsn or settings.dsn.get_secret_value()
    if not dsn:
        raise SqlembedError("give --dsn or set SQLEMBED_DSN (an ODBC connection string or mssql+pyodbc:// URL)")
    token = os.environ.get(args.access_token_env) if args.access_token_env else None
    return connect(dsn, access_token=token)


def cmd_db_deploy(args: argparse.Namespace) -> int:
    import getpass

    from sqlembed.db.deploy import deploy
    from sqlembed.db.sqlfiles import load

    key = os.environ.get(args.api_key_env, "")
    if args.prompt_api_key:
        key = getpass.getpass("sqlembed service API key (empty: none): ")
    values = _db_values(args, api_key=key)
    settings = _settings(args)
    files = load(settings.sql_dir)
    conn = _connect(args, settings)
    report = deploy(conn, files, values, version=__version__,
                    on_batch=lambda name: log.debug("ran a batch of %s", name))
    print(f"deployed sqlembed {__version__}: migrations applied {report.applied_migrations or 'none'}, "
          f"already applied {len(report.skipped_migrations)}, objects {len(report.objects)}")
    return 0


def cmd_db_status(args: argparse.Namespace) -> int:
    from sqlembed.db.deploy import status

    print(json.dumps(status(_connect(args, _settings(args))), indent=2))
    return 0


def cmd_embed_table(args: argparse.Namespace) -> int:
    from sqlembed.db.targets import TableSpec
    from sqlembed.run.bulk import embed_table

    spec = TableSpec(args.db, args.table, args.key, args.text, args.vector, args.where, args.target_table,
                     chunk_table=args.chunk_table, chunk_tokens=args.chunk_tokens, chunk_overlap=args.chunk_overlap)
    sync = args.sync or ("auto" if not args.watch else "changes")
    if args.dry_run:
        from sqlembed.run.bulk import dry_run_table

        return dry_run_table(_settings(args), spec, as_json=args.json, dimensions=args.dimensions, sync=sync)
    return embed_table(_settings(args), spec, spark_master=args.spark, watch=args.watch, interval_s=args.interval,
                       dimensions=args.dimensions, batch_rows=args.batch_rows, sync=sync)


def cmd_bench(args: argparse.Namespace, rest: list[str]) -> int:
    from sqlembed.benchmark.throughput import main as bench_main

    return int(bench_main(rest))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sqlembed", description="Embeddings for SQL Server 2025")
    p.add_argument("--version", action="version", version=f"sqlembed {__version__}")
    p.add_argument("--model-dir", help="model store (default: $SQLEMBED_MODEL_DIR or ~/.cache/sqlembed/models)")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run the HTTP service")
    s.add_argument("--host")
    s.add_argument("--port", type=int)
    s.add_argument("--model", help=f"model name (default {DEFAULT_MODEL})")
    s.add_argument("--precision", choices=get_args(Precision))
    s.add_argument("--backend", choices=get_args(BackendName),
                   help="inference backend (default $SQLEMBED_BACKEND or auto)")
    s.add_argument("--placement", choices=get_args(PlacementMode),
                   help="where online batches run: local engine, Spark executors, or executors when any "
                        "is up (default $SQLEMBED_PLACEMENT or local)")
    s.add_argument("--spark-master", help="Spark master URL for --placement spark|auto and bulk jobs")
    s.add_argument("--workers", type=int, help="front processes on the port (SO_REUSEPORT), one engine host "
                                               "(default $SQLEMBED_WORKERS or 1)")
    s.add_argument("--tls-cert")
    s.add_argument("--tls-key")
    s.set_defaults(func=cmd_serve)

    m = sub.add_parser("model", help="build and list models").add_subparsers(dest="model_cmd", required=True)
    b = m.add_parser("build", help="export a sentence-transformers model (ONNX; OpenVINO IR for int8)")
    b.add_argument("--source", help="model directory or Hugging Face id (default: bundled all-MiniLM-L6-v2)")
    b.add_argument("--precision", choices=[*get_args(Precision), "fp16"], default="fp32",
                   help="fp32 (default, ONNX); bf16 (the fp32 graph run in bf16 by OpenVINO, CPUs with "
                        "avx512_bf16/AMX); int8 (calibrated static quantization, OpenVINO IR); fp16 with "
                        "--backend tensorrt")
    b.add_argument("--backend", choices=["onnx", "tensorrt"], default="onnx",
                   help="tensorrt: also build a TensorRT engine for this GPU (needs the gpu extra)")
    b.add_argument("--name", help="model name (default: from the source)")
    b.add_argument("--force", action="store_true", help="rebuild even if present")
    b.set_defaults(func=cmd_model_build)
    ls = m.add_parser("list", help="show built models")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_model_list)

    t = sub.add_parser("tls", help="TLS helpers").add_subparsers(dest="tls_cmd", required=True)
    ss = t.add_parser("selfsigned", help="write a CA + server certificate for SQL Server to trust")
    ss.add_argument("--host", action="append", required=True, help="DNS name in the URL (repeatable)")
    ss.add_argument("--ip", action="append", help="IP address in the URL (repeatable)")
    ss.add_argument("--out", required=True)
    ss.add_argument("--days", type=int, default=825)
    ss.set_defaults(func=cmd_tls_selfsigned)

    e = sub.add_parser("embed-table", help="embed a whole table on Spark and write the vectors back")
    e.add_argument("--db", required=True, help="sqlite:///file.db, mssql+mssqlpython://..., mssql+pyodbc://... "
                                               "or an ODBC connection string")
    e.add_argument("--table", required=True)
    e.add_argument("--key", required=True)
    e.add_argument("--text", required=True)
    e.add_argument("--vector", required=True)
    e.add_argument("--where", help="row filter: one boolean expression over the table's columns and literals")
    e.add_argument("--dimensions", type=int, help="keep the first n dimensions and re-normalize "
                                                  "(default: the column's VECTOR(n), else the model's)")
    e.add_argument("--target-table", help="write (key, vector) here instead of the source's vector column")
    e.add_argument("--chunk-table", help="write each row's chunks here: (key, chunk_no, chunk_offset, chunk_length, "
                                         "vector), created where it does not exist")
    e.add_argument("--chunk-tokens", type=int, help="with --chunk-table: at most this many model tokens per chunk")
    e.add_argument("--chunk-overlap", type=int, default=0, help="tokens repeated between neighbouring chunks")
    e.add_argument("--sync", choices=get_args(SyncMode),
                   help="how changed rows are found: auto (Change Tracking or the SQLite change queue where the "
                        "table has it, else a hash comparison in the database), hash, changes (required; on "
                        "SQLite the queue is created)")
    e.add_argument("--watch", action="store_true", help="keep the table in sync: run again every --interval seconds "
                                                         "(implies --sync changes unless given)")
    e.add_argument("--interval", type=float, help="seconds between syncs with --watch (default "
                                                  "$SQLEMBED_SYNC_INTERVAL_S)")
    e.add_argument("--spark", help="Spark master: local[2], spark://host:7077 (default $SQLEMBED_SPARK_MASTER)")
    e.add_argument("--batch-rows", type=int, help="rows per embed + write chunk")
    e.add_argument("--dry-run", action="store_true",
                   help="check the job and print what it would do (rows pending, text bytes, tokens, time on 1/2/4/8 "
                        "workers, cost where SQLEMBED_WORKER_HOUR_PRICE is set); writes nothing, starts no Spark")
    e.add_argument("--json", action="store_true",
                   help="with --dry-run: print the answer as JSON (POST /v1/jobs' shape)")
    e.set_defaults(func=cmd_embed_table)

    d = sub.add_parser("db", help="deploy the T-SQL assets").add_subparsers(dest="db_cmd", required=True)
    for name, fn, helptext in (("deploy", cmd_db_deploy, "apply bootstrap, pending migrations and all objects"),
                               ("render", cmd_db_render, "write one .sql script for sqlcmd/SSMS"),
                               ("status", cmd_db_status, "show applied migrations and the last deployment")):
        c = d.add_parser(name, help=helptext)
        c.set_defaults(func=fn)
        if name != "render":
            c.add_argument("--dsn", help="ODBC connection string or mssql+pyodbc:// URL (default: $SQLEMBED_DSN)")
            c.add_argument("--access-token-env", help="environment variable holding a Microsoft Entra access token")
        if name != "status":
            c.add_argument("--var", action="append", metavar="NAME=VALUE", help="sqlcmd variable (repeatable)")
        if name == "deploy":
            c.add_argument("--api-key-env", default="SQLEMBED_API_KEY",
                           help="environment variable holding the service's API key (default SQLEMBED_API_KEY)")
            c.add_argument("--prompt-api-key", action="store_true", help="ask for the API key")
        if name == "render":
            c.add_argument("--out", default="sqlembed.sql", help="output file, or - for stdout")

    sub.add_parser("bench", help="throughput benchmark (see bench/throughput.py --help)", add_help=False)
    return p


def _log_level() -> str:
    try:
        return Settings(**{}).log_level.upper()  # the environment decides (mypy sees no defaults here)
    except ValueError:  # a settings error is reported, one line, by the command itself
        return "INFO"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # models come from disk, never from a hub at run time
    logging.basicConfig(level=_log_level(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if argv[:1] == ["bench"]:
        return cmd_bench(argparse.Namespace(), argv[1:])
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except SqlembedError as exc:
        log.error("%s", exc.message)
        return 2
    except ValueError as exc:  # settings (pydantic) and configuration files: one clear line, no traceback
        log.error("configuration error: %s", " ".join(str(exc).split())[:2000])
        return 2
