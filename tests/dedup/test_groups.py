from __future__ import annotations

import numpy as np
from curate_dedup.groups import components, make_groups, value_priority
from hypothesis import given
from hypothesis import strategies as st


def reference_components(n: int, edges: list[tuple[int, int]]) -> list[int]:
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            x = parent[x]
        return x

    for a, b in edges:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return [find(x) for x in range(n)]


EDGES = st.integers(1, 60).flatmap(lambda n: st.tuples(
    st.just(n), st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=80)))


@given(EDGES)
def test_components_match_a_reference_union_find(case):
    n, edges = case
    first = np.array([a for a, _ in edges], dtype=np.int64)
    second = np.array([b for _, b in edges], dtype=np.int64)
    labels = components(n, first, second)
    assert labels.tolist() == reference_components(n, edges)


@given(EDGES)
def test_components_match_scipy_connected_components(case):
    """The groups scipy's connected_components finds (why we keep ours: see components)."""
    import pytest

    csgraph = pytest.importorskip("scipy.sparse.csgraph")
    sparse = pytest.importorskip("scipy.sparse")
    n, edges = case
    first = np.array([a for a, _ in edges], dtype=np.int64)
    second = np.array([b for _, b in edges], dtype=np.int64)
    graph = sparse.coo_matrix((np.ones(first.size), (first, second)), shape=(n, n))
    count, labels = csgraph.connected_components(graph, directed=False)
    smallest = np.full(count, n, dtype=np.int64)
    np.minimum.at(smallest, labels, np.arange(n))
    assert components(n, first, second).tolist() == smallest[labels].tolist()


def test_a_long_chain_is_one_component():
    n = 10_000
    labels = components(n, np.arange(n - 1)[::-1], np.arange(1, n)[::-1])
    assert set(labels.tolist()) == {0}


@given(EDGES, st.randoms(use_true_random=False))
def test_one_survivor_per_component_with_the_best_priority(case, random):
    n, edges = case
    labels = components(n, np.array([a for a, _ in edges], dtype=np.int64),
                        np.array([b for _, b in edges], dtype=np.int64))
    priority = np.array(random.sample(range(n), n))
    groups = make_groups(labels, priority)
    for label in set(labels.tolist()):
        members = np.flatnonzero(labels == label)
        best = members[np.argmin(priority[members])]
        assert (groups.survivor[members] == best).all()
        assert (groups.group[members] == (-1 if members.size == 1 else groups.group[best])).all()
    # Group ids count up in the order of each group's earliest row.
    firsts = [int(np.flatnonzero(groups.group == g)[0]) for g in range(groups.n_groups)]
    assert firsts == sorted(firsts)
    assert int(groups.dropped.sum()) == n - len(set(labels.tolist()))


def test_value_priority_puts_nulls_last_and_ties_to_the_earliest():
    values = np.array([0.5, np.nan, 0.9, 0.9, 0.1])
    assert np.argsort(value_priority(values, largest_first=True)).tolist() == [2, 3, 0, 4, 1]
    assert np.argsort(value_priority(values, largest_first=False)).tolist() == [4, 0, 2, 3, 1]
