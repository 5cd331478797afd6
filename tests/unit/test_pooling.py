from __future__ import annotations

import numpy as np
import pytest

from sqlembed.engine.pooling import l2_normalize, pool, truncate_dimensions
from sqlembed.errors import UnprocessableInput

RNG = np.random.default_rng(0)
HIDDEN = RNG.normal(size=(3, 5, 4)).astype(np.float32)
MASK = np.array([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]], dtype=np.int64)


def test_mean_ignores_padding() -> None:
    out = pool(HIDDEN, MASK, "mean")
    np.testing.assert_allclose(out[1], HIDDEN[1, :2].mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(out[2], HIDDEN[2, 0], rtol=1e-6)


def test_other_modes() -> None:
    np.testing.assert_allclose(pool(HIDDEN, MASK, "cls"), HIDDEN[:, 0])
    np.testing.assert_allclose(pool(HIDDEN, MASK, "max")[1], HIDDEN[1, :2].max(axis=0))
    np.testing.assert_allclose(pool(HIDDEN, MASK, "lasttoken")[1], HIDDEN[1, 1])
    np.testing.assert_allclose(pool(HIDDEN, MASK, "mean_sqrt_len")[1], HIDDEN[1, :2].sum(axis=0) / np.sqrt(2),
                               rtol=1e-6)


def test_normalize_and_truncate() -> None:
    v = l2_normalize(RNG.normal(size=(4, 8)).astype(np.float32))
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-6)
    t = truncate_dimensions(v, 3)
    assert t.shape == (4, 3)
    np.testing.assert_allclose(np.linalg.norm(t, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(t, l2_normalize(v[:, :3].copy()), rtol=1e-6)
    assert truncate_dimensions(v, None) is v
    with pytest.raises(UnprocessableInput, match="larger than the model's 8"):
        truncate_dimensions(v, 9)
