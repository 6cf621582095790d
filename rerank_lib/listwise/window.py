"""The sliding window of listwise reranking: windows of `window` candidates, `stride` apart, back to front.

rank_llm (ListwiseRankLLM._sliding_windows_batched_async, the path rerank_batch takes): the first window is the
last `window` candidates of the ranked range; each next window moves `stride` towards the top; the loop ends after
the window that starts at the top. Each window is reordered in place before the next is built, so a relevant
passage found deep in the list bubbles up through the overlapping windows. With 100 candidates, window 20 and
stride 10 that is 9 windows: (80, 100), (70, 90), ..., (0, 20).
"""
from __future__ import annotations

from typing import Callable, Sequence, TypeVar

T = TypeVar("T")


def window_spans(num_candidates: int, window: int, stride: int, rank_start: int = 0,
                 rank_end: int | None = None) -> list[tuple[int, int]]:
    """The (start, end) slices the sliding window visits, in processing order (back to front)."""
    if window < 1 or stride < 1:
        raise ValueError(f"window and stride must be >= 1, got window={window}, stride={stride}")
    end = min(num_candidates if rank_end is None else rank_end, num_candidates)
    start = max(end - window, rank_start)
    spans = []
    while end > start:
        spans.append((start, end))
        if start == rank_start:
            break
        end, start = end - stride, max(start - stride, rank_start)
    return spans


def sliding_window(items: Sequence[T], rank_window: Callable[[list[T], int], Sequence[int]], window: int,
                   stride: int, rank_start: int = 0, rank_end: int | None = None) -> list[T]:
    """Reorder `items` with `rank_window(window_items, its start) -> 0-based order of that window`, window by window.

    rank_window must return a full permutation of range(len(window_items)) (parse_permutation repairs answers).
    """
    items = list(items)
    for start, end in window_spans(len(items), window, stride, rank_start, rank_end):
        chunk = items[start:end]
        order = list(rank_window(chunk, start))
        if sorted(order) != list(range(len(chunk))):
            raise ValueError(f"rank_window returned {order}, not a permutation of {len(chunk)} positions")
        items[start:end] = [chunk[i] for i in order]
    return items
