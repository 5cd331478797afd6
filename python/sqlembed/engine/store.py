"""Model store: self-describing model directories under ``SQLEMBED_MODEL_DIR``.

Each model lives in ``<root>/<id>/`` with ``manifest.json``, ``tokenizer.json`` and the graph its
manifest names (``model_file``): ``model.onnx`` for fp32 and bf16, the OpenVINO IR ``model.xml`` +
``model.bin`` for static int8. The id carries the precision so vectors of different precisions
never mix in one column.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlembed.engine.pooling import PoolingMode
from sqlembed.errors import ModelNotFound

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1


@dataclass(frozen=True)
class Manifest:
    id: str
    name: str
    source: str
    source_hash: str
    dimensions: int
    max_seq_length: int
    pooling: PoolingMode
    normalize: bool
    precision: str
    family: str
    parameters: int
    input_names: tuple[str, ...]
    tool_versions: dict[str, str] = field(default_factory=dict)
    created_at: str = ""
    format_version: int = MANIFEST_VERSION
    prompts: dict[str, str] = field(default_factory=dict)
    default_prompt_name: str | None = None
    runtime: str = "onnxruntime"
    """The runtime the graph was built for: onnxruntime (fp32, and int8 built before static int8) or
    openvino (bf16 on the fp32 graph, the static int8 IR). Older manifests have none: onnxruntime."""
    model_file: str = "model.onnx"
    quantization: dict[str, Any] = field(default_factory=dict)
    """How the int8 graph was made (method, calibration set and its hash, settings); empty otherwise."""

    @property
    def vector_id(self) -> str:
        """What a stored vector records as its model: the id, plus the quantization recipe (and
        weight range) where there is one, so vectors of a rebuilt int8 model with another recipe,
        or an old dynamic int8 model, never pass for each other's."""
        recipe = self.quantization.get("recipe")
        if not recipe:
            return self.id
        narrow = "" if str(self.quantization.get("weights", "")).startswith("s8 full") else "-w7"
        return f"{self.id}+{recipe}{narrow}"

    def prompt_for(self, input_type: str | None) -> str | None:
        """The prompt text for a request's input type, as sentence-transformers would apply it.

        ``query`` takes the prompt named query; ``passage`` and ``document`` take the first of
        passage, document, corpus the model declares (nomic calls it document, e5 passage); no
        input type takes the model's default prompt. None when the model has no such prompt.
        """
        if input_type is None:
            name = self.default_prompt_name
        elif input_type == "query":
            name = "query" if "query" in self.prompts else None
        else:
            name = next((n for n in ("passage", "document", "corpus") if n in self.prompts), None)
        return self.prompts.get(name) if name else None

    def prompts_by_input_type(self) -> dict[str, str]:
        return {t: p for t in ("query", "passage") if (p := self.prompt_for(t)) is not None}

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        data = dict(data)
        data["input_names"] = tuple(data.get("input_names", ()))
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})




class ModelStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, mid: str) -> Path:
        return self.root / mid

    def exists(self, mid: str) -> bool:
        """A manifest that can be read and the graph file it names."""
        p = self.path(mid) / MANIFEST
        if not p.is_file():
            return False
        try:
            manifest = Manifest.from_dict(json.loads(p.read_text(encoding="utf-8")))
        except (ValueError, TypeError):
            return False
        return self.model_file(mid, manifest).is_file()

    def model_file(self, mid: str, manifest: Manifest) -> Path:
        """The graph of a model (``model.onnx`` or ``model.xml``), for sizes and backends."""
        return self.path(mid) / manifest.model_file

    def get(self, mid: str) -> Manifest:
        p = self.path(mid) / MANIFEST
        if not p.is_file():
            raise ModelNotFound(
                f"model '{mid}' is not built in {self.root}; run: sqlembed model build"
            )
        return Manifest.from_dict(json.loads(p.read_text(encoding="utf-8")))

    def list(self) -> list[Manifest]:
        if not self.root.is_dir():
            return []
        return [self.get(p.name) for p in sorted(self.root.iterdir()) if (p / MANIFEST).is_file()]
