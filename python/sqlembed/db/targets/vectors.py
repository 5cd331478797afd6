"""Vectors as the text both databases accept: a JSON array (contract D2), float32 or float16-rounded."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from sqlembed.db.targets.spec import VectorType


def as_type(vector: Any, vector_type: VectorType) -> Any:
    v = np.asarray(vector, dtype=np.float32)
    # float16 columns store half precision: round here so SQLite (tests) holds what SQL Server would.
    return v.astype(np.float16).astype(np.float32) if vector_type == "float16" else v


def vector_json(vector: Any, vector_type: VectorType = "float32") -> str:
    # float32 shortest round-trip text: compact and exact.
    return orjson.dumps(as_type(vector, vector_type), option=orjson.OPT_SERIALIZE_NUMPY).decode()
