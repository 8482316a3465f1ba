"""Duplicate groups from pairs: connected components (union-find), one survivor per group.

Everything is in row-position space (0..n-1, the input order), vectorized with numpy so ten
million rows take seconds. A group's id is its rank among groups ordered by their earliest row,
so ids do not depend on the algorithm that found the pairs or on the keep policy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def components(n: int, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """For each of ``n`` points, the smallest index of its connected component under the edges
    ``first[i] — second[i]``. Parallel union-find: hook the larger root under the smaller one,
    then compress paths; repeat while an edge still joins two roots.

    Kept hand-written rather than ``scipy.sparse.csgraph.connected_components``, which gives the
    same labels (mapped to each component's smallest index; tests/dedup/test_groups.py checks it
    on random edge lists): scipy is no dependency of curate nor of any extra (the env has it only
    through scikit-learn), exact and near dedup run on the core install, and the gain is small.
    Measured (2 shared cores, random edges): 1M rows/0.5M edges 1.00 s here vs 0.90 s scipy;
    10M rows/3M edges 13.6 s vs 9.5 s; scipy's import adds 1.1 s cold."""
    parent = np.arange(n, dtype=np.int64)
    a = np.asarray(first, dtype=np.int64)
    b = np.asarray(second, dtype=np.int64)
    while a.size:
        root_a, root_b = parent[a], parent[b]
        live = root_a != root_b
        a, b, root_a, root_b = a[live], b[live], root_a[live], root_b[live]
        if not a.size:
            break
        low, high = np.minimum(root_a, root_b), np.maximum(root_a, root_b)
        # Roots only ever hook under smaller roots, so every root is its component's minimum.
        np.minimum.at(parent, high, low)
        while True:
            grand = parent[parent]
            if np.array_equal(grand, parent):
                break
            parent = grand
    return parent


def priority_from_keys(*keys: np.ndarray) -> np.ndarray:
    """Rank of each row when sorted by ``keys`` (the first key most significant) and then by
    position; 0 is the preferred survivor. Every rank is distinct, so survivors are unique."""
    n = len(keys[0]) if keys else 0
    position = np.arange(n)
    order = np.lexsort((position, *reversed(keys)))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    return rank


def value_priority(values: np.ndarray, largest_first: bool) -> np.ndarray:
    """Ranks that prefer the largest (or smallest) value; NaN (a null) last; ties to the earliest."""
    values = np.asarray(values, dtype=np.float64)
    missing = np.isnan(values)
    key = np.where(missing, 0.0, -values if largest_first else values)
    return priority_from_keys(missing, key)


@dataclass
class Groups:
    """The outcome of a dedup over n rows."""

    group: np.ndarray  # group id per row, -1 when the row has no duplicate
    survivor: np.ndarray  # position of the row that stays for this row's group (itself if kept)

    @property
    def dropped(self) -> np.ndarray:
        return self.survivor != np.arange(self.survivor.size)

    @property
    def n_groups(self) -> int:
        return int(self.group.max()) + 1 if self.group.size and self.group.max() >= 0 else 0

    def sizes(self) -> np.ndarray:
        grouped = self.group[self.group >= 0]
        return np.bincount(grouped, minlength=self.n_groups) if grouped.size else np.zeros(0, np.int64)


def make_groups(labels: np.ndarray, priority: np.ndarray) -> Groups:
    """One survivor per component of ``labels`` (from :func:`components`): the member with the
    lowest ``priority``. Components of one row are not groups."""
    n = labels.size
    if n == 0:
        return Groups(np.zeros(0, np.int64), np.zeros(0, np.int64))
    counts = np.bincount(labels, minlength=n)
    in_group = counts[labels] > 1
    # Number groups by their root, which is their earliest row: ids follow the input order.
    is_root = (counts > 1) & (labels == np.arange(n))
    ids = np.cumsum(is_root) - 1
    group = np.where(in_group, ids[labels], -1)
    order = np.lexsort((priority, labels))
    first_of_label = np.ones(n, dtype=bool)
    first_of_label[1:] = labels[order][1:] != labels[order][:-1]
    best = np.empty(n, dtype=np.int64)
    best[labels[order][first_of_label]] = order[first_of_label]
    return Groups(group=group.astype(np.int64), survivor=best[labels])
