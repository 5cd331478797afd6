"""Reads a sentence-transformers model directory's configuration (no torch needed)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from sqlembed.engine.pooling import PoolingMode
from sqlembed.errors import ModelBuildError

_POOLING_KEYS: dict[str, PoolingMode] = {
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_cls_token": "cls",  # nosec B105
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len",
    "pooling_mode_lasttoken": "lasttoken",
}
# Weights and configuration that determine the vectors; README and git files do not.
_HASHED_SUFFIXES = (".safetensors", ".bin", ".json", ".txt", ".model")


@dataclass(frozen=True)
class SentenceTransformerConfig:
    transformer_dir: Path
    pooling: PoolingMode
    normalize: bool
    max_seq_length: int
    dimensions: int
    prompts: dict[str, str] = field(default_factory=dict)
    """Named prompts (config_sentence_transformers.json), prepended to the text as
    sentence-transformers does; e5 and bge declare a query prompt, nomic query and document."""
    default_prompt_name: str | None = None


def read_config(src: Path) -> SentenceTransformerConfig:
    modules_path = src / "modules.json"
    if not modules_path.is_file():
        raise ModelBuildError(f"{src} is not a sentence-transformers directory (no modules.json)")
    modules = json.loads(modules_path.read_text(encoding="utf-8"))
    by_type = {m["type"].rsplit(".", 1)[-1]: m for m in modules}
    if "Transformer" not in by_type or "Pooling" not in by_type:
        raise ModelBuildError(f"{src}/modules.json needs a Transformer and a Pooling module")
    extra = set(by_type) - {"Transformer", "Pooling", "Normalize"}
    if extra:
        raise ModelBuildError(f"unsupported sentence-transformers modules: {sorted(extra)}")
    transformer_dir = src / by_type["Transformer"]["path"]
    pool_cfg = json.loads((src / by_type["Pooling"]["path"] / "config.json").read_text(encoding="utf-8"))
    modes = [mode for key, mode in _POOLING_KEYS.items() if pool_cfg.get(key)]
    if pool_cfg.get("pooling_mode_weightedmean_tokens"):
        modes.append("weightedmean")  # type: ignore[arg-type]
    if len(modes) != 1 or modes[0] not in _POOLING_KEYS.values():
        raise ModelBuildError(f"exactly one supported pooling mode is needed, found {modes}")
    max_len = 512
    for name in ("sentence_bert_config.json",):
        p = transformer_dir / name
        if p.is_file():
            max_len = int(json.loads(p.read_text(encoding="utf-8")).get("max_seq_length", max_len))
    if pool_cfg.get("include_prompt", True) is False:
        # Pooling that leaves the prompt's tokens out needs the prompt length next to every row's
        # token ids through the batcher and the executors; refused rather than served differently.
        raise ModelBuildError("pooling with include_prompt=false is not supported")
    prompts: dict[str, str] = {}
    default_prompt = None
    st_path = src / "config_sentence_transformers.json"
    if st_path.is_file():
        st = json.loads(st_path.read_text(encoding="utf-8"))
        prompts = {str(k): str(v) for k, v in (st.get("prompts") or {}).items()}
        default_prompt = st.get("default_prompt_name") or None
        if default_prompt is not None and default_prompt not in prompts:
            raise ModelBuildError(f"default_prompt_name {default_prompt!r} is not one of the prompts {sorted(prompts)}")
    return SentenceTransformerConfig(
        transformer_dir=transformer_dir,
        pooling=modes[0],
        normalize="Normalize" in by_type,
        max_seq_length=max_len,
        dimensions=int(pool_cfg["word_embedding_dimension"]),
        prompts=prompts,
        default_prompt_name=default_prompt,
    )


def source_hash(src: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(src.rglob("*")):
        if p.is_file() and p.suffix in _HASHED_SUFFIXES and p.name != "README.md":
            h.update(str(p.relative_to(src)).encode())
            with p.open("rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
    return "sha256:" + h.hexdigest()
