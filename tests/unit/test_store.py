from __future__ import annotations

import json
from pathlib import Path

import pytest

from sqlembed.engine.st_config import read_config
from sqlembed.engine.store import Manifest, ModelStore
from sqlembed.errors import ModelBuildError, ModelNotFound


@pytest.mark.slow
def test_built_models_are_self_describing(model_dir: Path) -> None:
    store = ModelStore(model_dir)
    ids = [m.id for m in store.list()]
    # bf16 is built too where the CPU has the instructions (tests/conftest.py).
    assert {"all-minilm-l6-v2-fp32", "all-minilm-l6-v2-int8"} <= set(ids)
    m = store.get("all-minilm-l6-v2-fp32")
    assert (m.dimensions, m.max_seq_length, m.pooling, m.normalize) == (384, 256, "mean", True)
    assert m.source_hash.startswith("sha256:") and len(m.source_hash) == 71
    assert {"torch", "onnx", "onnxruntime", "sqlembed"} <= set(m.tool_versions)
    assert store.get("all-minilm-l6-v2-int8").precision == "int8"
    assert Manifest.from_dict(json.loads(m.to_json())) == m


def test_missing_model_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFound, match="sqlembed model build"):
        ModelStore(tmp_path).get("nope-fp32")
    assert ModelStore(tmp_path / "absent").list() == []


def test_reads_pooling_from_the_model_directory() -> None:
    from sqlembed.engine.build import default_source

    cfg = read_config(default_source())
    assert (cfg.pooling, cfg.normalize, cfg.max_seq_length, cfg.dimensions) == ("mean", True, 256, 384)


def _st_dir(tmp: Path, pooling: dict[str, bool], normalize: bool = True) -> Path:
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
    (tmp / "1_Pooling").mkdir(parents=True)
    (tmp / "modules.json").write_text(json.dumps(modules))
    (tmp / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": 8, **pooling}))
    return tmp


def test_cls_pooling_without_normalize(tmp_path: Path) -> None:
    cfg = read_config(_st_dir(tmp_path, {"pooling_mode_cls_token": True}, normalize=False))
    assert (cfg.pooling, cfg.normalize, cfg.max_seq_length) == ("cls", False, 512)


def test_unsupported_configs_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(ModelBuildError, match=r"modules\.json"):
        read_config(tmp_path)
    with pytest.raises(ModelBuildError, match="exactly one"):
        read_config(_st_dir(tmp_path / "two", {"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": True}))


@pytest.mark.slow
def test_vector_id_names_the_quantization_recipe(model_dir: Path) -> None:
    """Stored vectors record vector_id: a rebuilt int8 model (another recipe, or the old dynamic
    int8 with no recipe) must not pass for the model that wrote them."""
    store = ModelStore(model_dir)
    fp32, int8 = store.get("all-minilm-l6-v2-fp32"), store.get("all-minilm-l6-v2-int8")
    assert fp32.vector_id == fp32.id
    assert int8.vector_id.startswith(int8.id + "+") and int8.quantization["recipe"] in int8.vector_id
    old = Manifest.from_dict({**json.loads(int8.to_json()), "quantization": {}})
    other = Manifest.from_dict({**json.loads(int8.to_json()),
                                "quantization": {**int8.quantization, "weights": "s8 7-bit (overflow fix, no VNNI)"}})
    assert len({old.vector_id, int8.vector_id, other.vector_id}) == 3
