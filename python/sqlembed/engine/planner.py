"""Batch planning by token count: a pure function, testable without a model."""

from __future__ import annotations

from collections.abc import Sequence


def plan_batches(token_lengths: Sequence[int], max_items: int, max_tokens: int) -> list[list[int]]:
    """Group item indices into batches that waste little padding.

    Items are sorted by length so each batch pads to a length close to its members'; a batch
    holds at most ``max_items`` items and at most ``max_tokens`` padded tokens (items x the
    longest member). An item longer than ``max_tokens`` alone still gets a batch of its own.
    Returns lists of original indices; every index appears exactly once.
    """
    if max_items < 1 or max_tokens < 1:
        raise ValueError("max_items and max_tokens must be >= 1")
    order = sorted(range(len(token_lengths)), key=lambda i: token_lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        length = token_lengths[i]
        # Sorted ascending, so the newcomer is the longest: padded size is count x its length.
        if current and (len(current) + 1 > max_items or (len(current) + 1) * length > max_tokens):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches
