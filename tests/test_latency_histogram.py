"""Packed latency histograms: merging any split of the answered calls reads the same
percentiles as the raw latencies, to within the bucket width."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.budgets.latency_histogram import Histograms, added, merged, pack, unpack
from core.budgets.rollups import bucket_middle_ms, latency_bucket

latencies = st.lists(st.floats(min_value=0.0, max_value=600_000.0, allow_nan=False), min_size=1, max_size=400)


def nearest_rank(values: list[float], percent: int) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(percent * len(ordered) / 100)) - 1]


def histogram_of(values: list[float]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for value in values:
        counts[latency_bucket(value)] = counts.get(latency_bucket(value), 0) + 1
    return counts


@settings(max_examples=150, deadline=None)
@given(groups=st.lists(latencies, min_size=1, max_size=6), cuts=st.lists(st.integers(0, 400), max_size=12))
def test_merged_parts_read_the_percentiles_of_the_raw_latencies(groups, cuts):
    """Each group's latencies cut into parts, some packed (a daily row) and some counted a
    bucket at a time (an hour's rows): the merge reads each group's p50 and p95 as the bucket
    of the exact nearest-rank value, reported within 2.5 % of it; coarser groups likewise."""
    histograms = Histograms()
    for group, values in enumerate(groups):
        edges = sorted({0, len(values), *(c % (len(values) + 1) for c in cuts)})
        for number, (start, end) in enumerate(zip(edges, edges[1:], strict=False)):
            part = histogram_of(values[start:end])
            if number % 2:
                for bucket, calls in part.items():
                    histograms.add(("day", group), bucket, calls)
            else:
                histograms.add_packed(("day", group), pack(part))
    read = histograms.read((50, 95))
    for group, values in enumerate(groups):
        found = read[("day", group)]
        assert found.answered == len(values)
        for percent, bucket in zip((50, 95), found.buckets, strict=True):
            exact = nearest_rank(values, percent)
            assert bucket == latency_bucket(exact)
            if exact >= 0.01:  # below the first bucket's floor everything counts in it
                assert abs(bucket_middle_ms(bucket) - exact) <= 0.025 * exact
    parity = histograms.read((50, 95), lambda group: group[1] % 2)
    for remainder in parity:
        values = [v for g, vs in enumerate(groups) if g % 2 == remainder for v in vs]
        assert parity[remainder].answered == len(values)
        assert parity[remainder].buckets == (
            latency_bucket(nearest_rank(values, 50)),
            latency_bucket(nearest_rank(values, 95)),
        )


@given(
    st.dictionaries(st.integers(0, 400), st.integers(0, 10**12), max_size=60),
    st.dictionaries(st.integers(0, 400), st.integers(0, 10**6)),
)
def test_packing_keeps_every_count_and_merging_adds_them(counts, more):
    assert unpack(pack(counts)) == {b: n for b, n in counts.items() if n}
    both = {b: counts.get(b, 0) + more.get(b, 0) for b in {*counts, *more}}
    assert unpack(merged(pack(counts), more)) == {b: n for b, n in both.items() if n}


@given(
    st.none() | st.dictionaries(st.integers(0, 400), st.integers(0, 10**12), max_size=60),
    st.none() | st.dictionaries(st.integers(0, 400), st.integers(0, 10**6), max_size=60),
)
def test_two_packed_histograms_added_hold_every_count_of_both(stored, batch):
    # What SQLite's upsert does with a row's histogram (None for a row written before any
    # answered call) and a batch's.
    as_stored = None if stored is None else pack(stored)
    as_sent = None if batch is None else pack(batch)
    both = {b: (stored or {}).get(b, 0) + (batch or {}).get(b, 0) for b in {*(stored or {}), *(batch or {})}}
    assert unpack(added(as_stored, as_sent)) == {b: n for b, n in both.items() if n}


def test_nothing_answered_reads_as_nothing():
    histograms = Histograms()
    histograms.add("a", 200, 0)
    histograms.add_packed("b", pack({}))
    assert pack({}) == b"" and unpack(b"") == {} and histograms.read((50, 95)) == {}


@settings(max_examples=100, deadline=None)
@given(groups=st.lists(st.lists(latencies, min_size=1, max_size=4), min_size=1, max_size=5))
def test_histograms_concatenated_by_the_database_read_as_the_same_histograms_one_by_one(groups):
    """What a GROUP BY hands over (a group's packed histograms joined, with their byte
    lengths, empty ones among them) reads the same percentiles and counts as each histogram
    added on its own."""
    one_by_one, joined = Histograms(), Histograms()
    for group, parts in enumerate(groups):
        packed = [pack(histogram_of(values)) for values in parts] + [pack({})]
        for histogram in packed:
            one_by_one.add_packed(group, histogram)
        joined.add_concatenated(group, b"".join(packed), ",".join(str(len(p)) for p in packed))
    assert joined.read((50, 95)) == one_by_one.read((50, 95))
    assert joined.read((50, 99), lambda group: group % 2) == one_by_one.read((50, 99), lambda group: group % 2)


def test_lengths_that_do_not_match_the_joined_histograms_are_refused():
    """A run whose lengths disagree with its bytes would shift every bucket after it: refused."""
    packed = pack({3: 2, 5: 1})
    histograms = Histograms()
    histograms.add_concatenated("a", packed + packed, f"{len(packed)},{len(packed) - 8}")
    with pytest.raises(ValueError, match="do not match"):
        histograms.read((50,))
