from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sqlembed.engine.planner import plan_batches


@given(
    lengths=st.lists(st.integers(min_value=1, max_value=600), max_size=200),
    max_items=st.integers(min_value=1, max_value=64),
    max_tokens=st.integers(min_value=1, max_value=5000),
)
def test_every_index_once_and_budgets_hold(lengths: list[int], max_items: int, max_tokens: int) -> None:
    batches = plan_batches(lengths, max_items, max_tokens)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(lengths)))
    for b in batches:
        assert 1 <= len(b) <= max_items
        padded = len(b) * max(lengths[i] for i in b)
        # Only a lone item may exceed the token budget (it cannot be split).
        assert padded <= max_tokens or len(b) == 1


@given(lengths=st.lists(st.integers(min_value=1, max_value=300), min_size=1, max_size=100))
def test_batches_are_length_sorted(lengths: list[int]) -> None:
    batches = plan_batches(lengths, 8, 10_000)
    maxima = [max(lengths[i] for i in b) for b in batches]
    minima = [min(lengths[i] for i in b) for b in batches]
    assert maxima == sorted(maxima)
    # No batch starts shorter than the previous one ended: grouping is by length.
    assert all(minima[k + 1] >= maxima[k] for k in range(len(batches) - 1))


def test_padding_is_small_for_mixed_lengths() -> None:
    lengths = [5, 200, 6, 190, 7, 210, 5, 180]
    batches = plan_batches(lengths, 4, 10_000)
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    assert padded <= sum(lengths) * 1.15


def test_token_budget_splits() -> None:
    assert plan_batches([100, 100, 100, 100], 10, 250) == [[0, 1], [2, 3]]


def test_empty_and_invalid() -> None:
    assert plan_batches([], 4, 100) == []
    with pytest.raises(ValueError):
        plan_batches([1], 0, 100)
