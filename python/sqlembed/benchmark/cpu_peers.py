"""CPU precisions beside the peers: one run, the same texts, every engine timed in turn.

Rows (a peer that is not installed is skipped with the reason):

- sentence-transformers ``encode`` on torch, fp32, batch 32: the baseline every ratio is against,
  and the reference for fidelity;
- sentence-transformers' ONNX backend (optimum-onnx, ONNX Runtime) and OpenVINO backend
  (optimum-intel; OpenVINO's default precision, which is bf16 on a bf16 CPU);
- OpenVINO static int8 made the way sentence-transformers documents it
  (``export_static_quantized_openvino_model``, default ``OVQuantizationConfig``), calibrated on
  sqlembed's calibration texts rather than a Hub data set;
- sqlembed fp32 (ONNX Runtime, and OpenVINO f32 to check auto's choice), bf16 (where the CPU has
  it), static int8, and the dynamic int8 that static int8 replaced.

Timing includes tokenization, as ``encode`` does. The texts are cut into chunks; in every round
each chunk is run by every engine back to back, in an order that rotates, so a burst of load
from elsewhere hits all engines alike. Reported: the sum over chunks of each engine's best round
("best"), and the median and p10-p90 of the per-chunk, per-round ratios to the baseline.
Fidelity against the baseline's vectors: min and mean cosine, top-10 neighbour overlap among all
the texts, and how far a text alone moves from its in-batch vector.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import importlib
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from sqlembed.benchmark.corpus import paragraphs

F32 = npt.NDArray[np.float32]
MODEL = "all-minilm-l6-v2"
VERSIONS = ("sqlembed", "torch", "transformers", "sentence-transformers", "onnxruntime", "openvino", "nncf",
            "optimum", "optimum-onnx", "optimum-intel", "numpy")


@dataclass
class Engine:
    name: str
    kind: str
    encode: Callable[[list[str]], F32]
    note: str = ""
    times: dict[int, list[float]] = field(default_factory=dict)
    vectors: list[F32] = field(default_factory=list)


def _have(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def _unit(v: Any) -> F32:
    a: F32 = np.asarray(v, dtype=np.float32)
    out: F32 = a / np.linalg.norm(a, axis=1, keepdims=True)
    return out


def cpu_lines() -> list[str]:
    from sqlembed.engine.cpu import read_cpu_caps

    caps = read_cpu_caps()
    lines = [f"CPU: {caps.summary()}, {os.cpu_count()} logical cores, {platform.machine()}"]
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            flags = next((ln.split(":", 1)[1].split() for ln in f if ln.startswith("flags")), [])
        simd = [x for x in flags if x.startswith(("avx", "amx", "fma", "sse4", "f16c"))]
        lines.append("SIMD flags: " + " ".join(simd))
    except OSError:
        pass
    if _have("openvino"):
        import openvino as ov

        core = ov.Core()
        lines.append(f"OpenVINO CPU: {core.get_property('CPU', 'FULL_DEVICE_NAME')}, capabilities "
                     f"{core.get_property('CPU', 'OPTIMIZATION_CAPABILITIES')}, default inference precision "
                     f"{core.get_property('CPU', 'INFERENCE_PRECISION_HINT')}")
    return lines


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in VERSIONS:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    return out


def build_models(model_dir: Path, precisions: Sequence[str]) -> None:
    """sqlembed's own models, built in a child process (the export stays out of this one)."""
    code = ("import sys; from pathlib import Path; from sqlembed.engine.build import build_model; "
            "from sqlembed.engine.store import ModelStore; s = ModelStore(Path(sys.argv[1])); "
            "[build_model(s, precision=p) for p in sys.argv[2:]]")
    subprocess.run([sys.executable, "-c", code, str(model_dir), *precisions], check=True)


def build_dynamic_int8(model_dir: Path, out_root: Path) -> Path:
    """The int8 sqlembed shipped before static int8: ONNX Runtime dynamic quantization."""
    import dataclasses

    from onnxruntime.quantization import QuantType, quantize_dynamic

    from sqlembed.engine.config import model_id
    from sqlembed.engine.store import ModelStore

    src = ModelStore(model_dir)
    fp32 = src.get(model_id(MODEL, "fp32"))
    dst = out_root / model_id(MODEL, "int8")
    dst.mkdir(parents=True, exist_ok=True)
    quantize_dynamic(str(src.path(fp32.id) / "model.onnx"), str(dst / "model.onnx"), weight_type=QuantType.QInt8,
                     per_channel=True, reduce_range=True, op_types_to_quantize=["MatMul", "Gemm"])
    shutil.copy2(src.path(fp32.id) / "tokenizer.json", dst / "tokenizer.json")
    legacy = dataclasses.replace(fp32, id=dst.name, precision="int8", quantization={"method": "ort dynamic"})
    (dst / "manifest.json").write_text(legacy.to_json(), encoding="utf-8")
    return out_root


def _st_engines(src: Path, work: Path, threads: int, calib: list[str]) -> tuple[list[Engine], list[str]]:
    engines: list[Engine] = []
    skipped: list[str] = []
    if not _have("sentence_transformers"):
        return engines, ["sentence-transformers peers: sentence-transformers is not installed"]
    from sentence_transformers import SentenceTransformer

    def st_encode(model: Any) -> Callable[[list[str]], F32]:
        return lambda texts: _unit(model.encode(texts, batch_size=32))

    copy = work / "st-model"
    if not copy.exists():
        shutil.copytree(src, copy)  # the ONNX and OpenVINO backends export into the model folder
    if _have("optimum.onnxruntime"):
        m = SentenceTransformer(str(copy), backend="onnx", device="cpu")
        engines.append(Engine("sentence-transformers, ONNX backend", "fp32, onnxruntime", st_encode(m)))
    else:
        skipped.append("sentence-transformers ONNX backend: optimum-onnx is not installed (pip install optimum-onnx)")
    if not _have("optimum.intel"):
        skipped.append("sentence-transformers OpenVINO backend and OpenVINO static int8: optimum-intel is not "
                       "installed (pip install optimum-intel)")
        return engines, skipped
    m = SentenceTransformer(str(copy), backend="openvino", device="cpu")
    engines.append(Engine("sentence-transformers, OpenVINO backend", f"default ({_ov_hint(m)}), openvino",
                          st_encode(m), note="OpenVINO's default precision"))
    if not _have("datasets"):
        skipped.append("OpenVINO static int8: the datasets package is not installed")
        return engines, skipped
    from sentence_transformers import export_static_quantized_openvino_model

    optimum_intel: Any = importlib.import_module("optimum.intel")
    data = work / "calibration-csv"
    data.mkdir(exist_ok=True)
    with open(data / "train.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["sentence"])
        w.writerows([t] for t in calib)
    t0 = time.perf_counter()
    # The quantizer rewrites the model it is given: a second instance, not the peer above.
    source = SentenceTransformer(str(copy), backend="openvino", device="cpu")
    export_static_quantized_openvino_model(source, optimum_intel.OVQuantizationConfig(), str(copy),
                                           dataset_name=str(data), dataset_config_name="default",
                                           dataset_split="train", column_name="sentence")
    built = time.perf_counter() - t0
    q = SentenceTransformer(str(copy), backend="openvino", device="cpu",
                            model_kwargs={"file_name": "openvino/openvino_model_qint8_quantized.xml"})
    engines.append(Engine("OpenVINO static int8 (sentence-transformers export)", f"int8, openvino ({_ov_hint(q)})",
                          st_encode(q), note=f"default OVQuantizationConfig, built in {built:.0f} s"))
    return engines, skipped


def _ov_hint(model: Any) -> str:
    """The inference precision optimum-intel compiled the model with (it compiles on first use)."""
    try:
        model.encode(["warm up"])
        hint = model[0].auto_model.request.get_property("INFERENCE_PRECISION_HINT")
        return str(hint.to_string()) if hasattr(hint, "to_string") else str(hint)
    except Exception as exc:
        return f"? ({type(exc).__name__})"


def _sqlembed_engines(model_dir: Path, legacy_root: Path | None, threads: int) -> tuple[list[Engine], list[str]]:
    from sqlembed.engine.backend import describe_backend
    from sqlembed.engine.config import EngineSettings
    from sqlembed.engine.cpu import read_cpu_caps
    from sqlembed.engine.opener import open_embedder

    engines: list[Engine] = []
    skipped: list[str] = []
    rows = [("fp32", "auto", model_dir), ("fp32", "openvino", model_dir), ("bf16", "auto", model_dir),
            ("int8", "auto", model_dir)]
    if legacy_root is not None:
        rows.append(("int8", "onnx-cpu", legacy_root))
    for precision, backend, root in rows:
        if precision == "bf16" and not read_cpu_caps().bf16:
            skipped.append(f"sqlembed bf16: {read_cpu_caps().summary()} has no native bf16")
            continue
        emb = open_embedder(EngineSettings(root, MODEL, precision, backend=backend, threads=threads))
        info = describe_backend(emb.backend)
        label = "sqlembed" + (" (dynamic int8, replaced)" if root is legacy_root else "")
        kind = f"{precision}, {info.get('runtime', info['backend'])}"
        if "inference_precision" in info:
            kind += f" ({info['inference_precision']})"
        engines.append(Engine(label, kind, emb.embed))
    return engines, skipped


def _chunks(texts: list[str], size: int) -> list[list[str]]:
    return [texts[i: i + size] for i in range(0, len(texts), size)]


def run_rounds(engines: list[Engine], chunks: list[list[str]], rounds: int) -> None:
    for e in engines:
        e.encode(chunks[0][:64])  # warm up: arenas, kernels, first-call compiles
        e.times = {c: [] for c in range(len(chunks))}
    for r in range(rounds):
        for c, chunk in enumerate(chunks):
            order = engines[(r + c) % len(engines):] + engines[:(r + c) % len(engines)]
            for e in order:
                t0 = time.perf_counter()
                v = e.encode(chunk)
                e.times[c].append(time.perf_counter() - t0)
                if r == 0:
                    e.vectors.append(_unit(v))
        print(f"round {r + 1}/{rounds} done", flush=True)


def top10(v: F32) -> npt.NDArray[np.intp]:
    sim = v @ v.T
    np.fill_diagonal(sim, -np.inf)
    return np.argpartition(-sim, 10, axis=1)[:, :10]


def report(engines: list[Engine], texts: list[str], probe_every: int) -> list[dict[str, Any]]:
    base = engines[0]
    ref = np.concatenate(base.vectors)
    ref_top = top10(ref)
    probes = list(range(0, len(texts), probe_every))
    base_best = sum(min(t) for t in base.times.values())
    rows = []
    for e in engines:
        v = np.concatenate(e.vectors)
        cos = (v * ref).sum(1)
        overlap = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(top10(v), ref_top, strict=True)]))
        alone = np.concatenate([_unit(e.encode([texts[i]])) for i in probes])
        moved = float(1 - (alone * v[probes]).sum(1).min())
        best = sum(min(t) for t in e.times.values())
        paired = [b / x for c in e.times for b, x in zip(base.times[c], e.times[c], strict=True)]
        rows.append({
            "engine": e.name, "kind": e.kind, "note": e.note, "best_s": best, "per_s": len(texts) / best,
            "x_baseline_best": base_best / best, "x_baseline_median": float(np.median(paired)),
            "x_baseline_p10": float(np.percentile(paired, 10)), "x_baseline_p90": float(np.percentile(paired, 90)),
            "min_cos": float(cos.min()), "mean_cos": float(cos.mean()), "top10": overlap,
            "alone_vs_batch_1_minus_cos": max(moved, 0.0),
        })
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    head = ("| engine | precision, runtime | texts/s | x torch (best) | x torch median [p10, p90] | min cos | "
            "mean cos | top-10 | alone vs batch (1 - min cos) |")
    lines = [head, "|" + "---|" * 9]
    for r in rows:
        lines.append(
            f"| {r['engine']} | {r['kind']} | {r['per_s']:,.1f} | **{r['x_baseline_best']:.2f}** | "
            f"{r['x_baseline_median']:.2f} [{r['x_baseline_p10']:.2f}, {r['x_baseline_p90']:.2f}] | "
            f"{r['min_cos']:.5f} | {r['mean_cos']:.5f} | {r['top10']:.4f} | {r['alone_vs_batch_1_minus_cos']:.1e} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench/cpu_peers.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--texts", type=int, default=0, help="limit the corpus (default: all ~1,950 paragraphs)")
    p.add_argument("--chunk", type=int, default=500, help="texts per timed chunk")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=0, help="inference threads (default: every core)")
    p.add_argument("--model-dir", help="sqlembed model store (default: a temporary one, models built first)")
    p.add_argument("--no-peers", action="store_true", help="sqlembed and the torch baseline only")
    p.add_argument("--probe-every", type=int, default=20, help="every n-th text is also embedded alone")
    p.add_argument("--json", help="also write the rows and the machine to this JSON file")
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    threads = args.threads or (os.cpu_count() or 1)

    from sqlembed.engine.build import calibration_texts, default_source
    from sqlembed.engine.cpu import read_cpu_caps

    machine = cpu_lines()
    vers = versions()
    print("\n".join(machine))
    print("versions: " + ", ".join(f"{k} {v}" for k, v in vers.items()), flush=True)
    texts = paragraphs(args.texts or None)
    work = Path(tempfile.mkdtemp(prefix="sqlembed-cpu-peers-"))
    model_dir = Path(args.model_dir) if args.model_dir else work / "models"
    precisions = ["fp32", "int8"] + (["bf16"] if read_cpu_caps().bf16 else [])
    build_models(model_dir, precisions)
    legacy = build_dynamic_int8(model_dir, work / "legacy") if _have("onnxruntime") else None

    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(threads)
    st = SentenceTransformer(str(default_source()), device="cpu")
    engines = [Engine("sentence-transformers, torch (baseline)", f"fp32, torch {torch.__version__}",
                      lambda t: _unit(st.encode(t, batch_size=32)))]
    skipped: list[str] = []
    if not args.no_peers:
        peers, why = _st_engines(default_source(), work, threads, calibration_texts())
        engines += peers
        skipped += why
    ours, why = _sqlembed_engines(model_dir, legacy, threads)
    engines += ours
    skipped += why
    for s in skipped:
        print(f"skipped: {s}")
    print(f"{len(texts)} texts in chunks of {args.chunk}, {args.rounds} rounds, {threads} threads; "
          f"engines: {', '.join(e.name + ' [' + e.kind + ']' for e in engines)}", flush=True)
    run_rounds(engines, _chunks(texts, args.chunk), args.rounds)
    rows = report(engines, texts, args.probe_every)
    print()
    print(f"{dt.date.today().isoformat()}, {len(texts)} texts, {threads} threads")
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine, "versions": vers, "skipped": skipped,
                                               "texts": len(texts), "threads": threads, "rows": rows}, indent=2))
    shutil.rmtree(work, ignore_errors=True)
    return 0
