"""Fixed logarithmic buckets for numbers: mergeable by adding counts, quantiles to ~1%.

A value v > 0 falls in bucket `p<k>` with k = ceil(log(v) / log(GAMMA)); negatives in
`n<k>` (k of |v|); |v| < ZERO in `z`. Every bucket of every deployment, minute and
process lines up, so counts from anywhere can be summed, and percentiles or histograms
over any window are computed from the sums (the idea of DDSketch, without its collapse).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np

GAMMA = 1.02
ZERO = 1e-9
_LOG_GAMMA = math.log(GAMMA)

Counts = dict[str, int]


def bucket_keys(values: np.ndarray) -> tuple[list[str], list[int]]:
    """The bucket key of each finite value and how many fell in it (vectorised)."""
    values = values[np.isfinite(values)]
    if values.size == 0:
        return [], []
    magnitude = np.abs(values)
    small = magnitude < ZERO
    index = np.ceil(np.log(np.where(small, 1.0, magnitude)) / _LOG_GAMMA).astype(np.int64)
    # one integer per bucket, index * 3 + kind (0 zero, 1 positive, 2 negative), so that a
    # 1-D count does the grouping (np.unique over pairs would sort rows, which is far slower)
    code = np.where(small, 0, index * 3 + np.where(values > 0, 1, 2))
    low = int(code.min())
    span = int(code.max()) - low + 1
    if span <= 1 << 20:
        tally = np.bincount(code - low, minlength=span)
        present = np.flatnonzero(tally)
        uniq, counts = present + low, tally[present]
    else:  # absurdly spread values (1e-300 .. 1e300): sort instead of a huge tally
        uniq, counts = np.unique(code, return_counts=True)
    keys = []
    for c in uniq.tolist():
        index_, kind = divmod(c, 3)
        keys.append("z" if kind == 0 else ("p" if kind == 1 else "n") + str(index_))
    return keys, counts.tolist()


def add_values(counts: Counts, values: Iterable[float] | np.ndarray) -> int:
    """Add numbers to `counts`; returns how many were not finite (not counted)."""
    array = np.asarray(values, dtype=float) if not isinstance(values, np.ndarray) else values.astype(float)
    keys, numbers = bucket_keys(array)
    for key, n in zip(keys, numbers, strict=True):
        counts[key] = counts.get(key, 0) + n
    return int(array.size - sum(numbers))


def add_value(counts: Counts, value: float) -> None:
    """One number (the hot path of a single latency)."""
    if not math.isfinite(value):
        return
    if abs(value) < ZERO:
        key = "z"
    else:
        k = math.ceil(math.log(abs(value)) / _LOG_GAMMA)
        key = ("p" if value > 0 else "n") + str(k)
    counts[key] = counts.get(key, 0) + 1


def merge(into: Counts, other: Mapping[str, int]) -> Counts:
    for key, n in other.items():
        into[key] = into.get(key, 0) + int(n)
    return into


def representative(key: str) -> float:
    """The value a bucket stands for (its geometric middle)."""
    if key == "z":
        return 0.0
    k = int(key[1:])
    value = GAMMA ** (k - 0.5)
    return value if key[0] == "p" else -value


def sorted_buckets(counts: Mapping[str, int]) -> list[tuple[float, int]]:
    return sorted(((representative(k), n) for k, n in counts.items() if n), key=lambda pair: pair[0])


def quantile(counts: Mapping[str, int], q: float) -> float | None:
    """The q-quantile (0..1) of what was counted; None when nothing was."""
    items = sorted_buckets(counts)
    total = sum(n for _, n in items)
    if total == 0:
        return None
    rank = q * (total - 1)
    seen = 0
    for value, n in items:
        seen += n
        if seen > rank:
            return value
    return items[-1][0]


def histogram(counts: Mapping[str, int], edges: list[float]) -> list[int]:
    """Counts per bin of `edges` (len(edges) - 1 bins); values outside go to the end bins."""
    bins = [0] * max(len(edges) - 1, 1)
    if len(edges) < 2:
        bins[0] = sum(counts.values())
        return bins
    inner = np.asarray(edges[1:-1], dtype=float)
    for key, n in counts.items():
        if n:
            bins[int(np.searchsorted(inner, upper_bound(key), side="right"))] += n
    return bins


def upper_bound(key: str) -> float:
    """The largest value a bucket holds (for negatives, the bound nearest zero).

    Histograms place a bucket by this bound, so a bucket holding an edge goes to the bin
    right of it, as np.histogram places a value equal to an edge. Training-data baselines
    put their edges on data values (quantiles of often discrete data): placing buckets by
    their middle instead split those values across the edge and showed drift where there
    was none."""
    if key == "z":
        return 0.0
    k = int(key[1:])
    return GAMMA**k if key[0] == "p" else -(GAMMA ** (k - 1))


def quantile_edges(counts: Mapping[str, int], bins: int = 10) -> list[float]:
    """Edges splitting what was counted into about `bins` equal-count bins."""
    values = [quantile(counts, i / bins) for i in range(bins + 1)]
    edges = sorted({v for v in values if v is not None})
    if len(edges) < 2:
        centre = edges[0] if edges else 0.0
        return [centre - 0.5, centre + 0.5]
    return edges
