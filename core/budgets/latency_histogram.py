"""Latency histograms packed into one value, and their percentiles read in one vectorized pass.

A daily roll-up row keeps its answered calls' histogram (buckets 5 % wide, `rollups.py`) in
a single bytes column: little-endian int64s, the first the lowest bucket held, then the count
of every bucket from it up (zeros included, so positions are buckets). Histograms merge by
adding counts, so any set of days and groups merges exactly; percentiles would not.

`Histograms` gathers packed and single-bucket counts per group and reads every group's
nearest-rank percentiles with numpy: a 90-day view holds thousands of them, too many for a
loop in Python.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any

import numpy as np

_WORD = np.dtype("<i8")
_BIG_ENDIAN = sys.byteorder == "big"
EMPTY = b""


def pack(counts: Mapping[int, int]) -> bytes:
    """The packed form of a {bucket: answered calls} histogram (empty buckets dropped)."""
    held = {int(b): int(n) for b, n in counts.items() if n}
    if not held:
        return EMPTY
    first, last = min(held), max(held)
    # Plain `array`, not numpy: the settle packs a few histograms per batch, each a few
    # dozen words, where numpy's cost per call is most of the work.
    words = array("q", bytes(_WORD.itemsize * (last - first + 2)))
    words[0] = first
    for bucket, n in held.items():
        words[bucket - first + 1] = n
    if _BIG_ENDIAN:
        words.byteswap()
    return words.tobytes()


def unpack(packed: bytes | None) -> dict[int, int]:
    """{bucket: answered calls} of a packed histogram, empty buckets left out."""
    if not packed:
        return {}
    words = array("q")
    words.frombytes(bytes(packed))
    if _BIG_ENDIAN:
        words.byteswap()
    first = words[0]
    return {first + i: n for i, n in enumerate(islice(words, 1, None)) if n}


def merged(packed: bytes | None, counts: Mapping[int, int]) -> bytes:
    """A packed histogram with more counts added."""
    total = unpack(packed)
    for bucket, n in counts.items():
        total[int(bucket)] = total.get(int(bucket), 0) + int(n)
    return pack(total)


def added(packed: bytes | None, more: bytes | None) -> bytes:
    """Two packed histograms as one (SQLite's upsert merges a row's with a batch's by it)."""
    if not more:
        return bytes(packed) if packed else EMPTY
    if not packed:
        return bytes(more)
    return merged(packed, unpack(more))


@dataclass(frozen=True)
class Read:
    """One group's answered calls and the bucket of each asked-for percentile."""

    answered: int
    buckets: tuple[int, ...]


class Histograms:
    """Counts gathered per group (any hashable key); `read` merges and reads them at once."""

    def __init__(self) -> None:
        self._index: dict[Hashable, int] = {}
        self._groups: list[int] = []  # per single count
        self._buckets: list[int] = []
        self._counts: list[int] = []
        self._packed: list[bytes] = []
        self._packed_groups: list[int] = []
        # Packed histograms concatenated by the database, a run per group: the bytes, and the
        # byte length of each histogram in the run as comma-separated text.
        self._runs: list[bytes] = []
        self._run_lengths: list[str] = []
        self._run_groups: list[int] = []
        # `read` is called once per grouping (per period, per group, overall): the counts are
        # unpacked once for all of them, again only after more are added.
        self._flattened: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def _of(self, group: Hashable) -> int:
        index = self._index.get(group)
        if index is None:
            index = self._index[group] = len(self._index)
        return index

    def add(self, group: Hashable, bucket: int, calls: int) -> None:
        self._flattened = None
        if calls:
            self._groups.append(self._of(group))
            self._buckets.append(int(bucket))
            self._counts.append(int(calls))

    def add_rows(self, rows: Iterable[Sequence[Any]], width: int) -> None:
        """Rows of (group's `width` values..., bucket, calls): an hour's roll-up rows."""
        self._flattened = None
        index, of = self._index, self._of
        for row in rows:
            group = tuple(row[:width])
            self._groups.append(index[group] if group in index else of(group))
            self._buckets.append(int(row[width]))
            self._counts.append(int(row[width + 1]))

    def add_packed(self, group: Hashable, packed: bytes | None) -> None:
        self._flattened = None
        if packed:
            self._packed.append(bytes(packed))
            self._packed_groups.append(self._of(group))

    def add_concatenated(self, group: Hashable, packed: bytes | None, lengths: str | None) -> None:
        """Packed histograms of one group joined end to end, with the byte length of each
        ("48,0,24": empty ones allowed): what a GROUP BY hands over in two columns, so that the
        rows merged into a group never reach Python one by one."""
        self._flattened = None
        if packed:
            self._runs.append(bytes(packed))
            self._run_lengths.append(lengths or "")
            self._run_groups.append(self._of(group))

    def read(self, percents: Iterable[int], regroup: Callable[[Any], Hashable] | None = None) -> dict[Any, Read]:
        """Each group's nearest-rank percentiles (given in whole percent), or each coarser
        group's when `regroup` maps a group to the coarser one it merges into."""
        groups, buckets, counts = self._flat()
        if not len(counts):
            return {}
        names = list(self._index)
        low = int(buckets.min())
        width = int(buckets.max()) - low + 1
        keys, summed = _reduced(groups * width + (buckets - low), counts, len(names) * width)
        if regroup is not None:
            coarse: dict[Hashable, int] = {}
            mapping = np.array([coarse.setdefault(regroup(name), len(coarse)) for name in names], dtype=np.int64)
            names = list(coarse)
            keys, summed = _reduced(mapping[keys // width] * width + keys % width, summed, len(names) * width)
        # Keys are sorted group first, then bucket: one running count serves every group,
        # each group's part of it starting where the groups before it ended.
        key_groups = keys // width
        running = np.cumsum(summed)
        totals = np.bincount(key_groups, weights=summed, minlength=len(names)).astype(np.int64)
        before = np.concatenate(([0], np.cumsum(totals)[:-1]))
        present = np.nonzero(totals)[0]
        found = []
        for percent in percents:
            # rank = ceil(percent % of the total), at least 1; in integers, so no float rounding
            rank = np.maximum(1, (totals[present] * int(percent) + 99) // 100)
            at = np.searchsorted(running, before[present] + rank, side="left")
            found.append(keys[at] % width + low)
        # Plain lists: reading numpy arrays element by element costs more than the whole pass.
        answered = totals[present].tolist()
        percentiles = list(zip(*(column.tolist() for column in found), strict=True))
        return {names[g]: Read(n, p) for g, n, p in zip(present.tolist(), answered, percentiles, strict=True)}

    def _flat(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._flattened is None:
            self._flattened = self._unpacked()
        return self._flattened

    def _unpacked(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        groups = [np.asarray(self._groups, dtype=np.int64)]
        buckets = [np.asarray(self._buckets, dtype=np.int64)]
        counts = [np.asarray(self._counts, dtype=np.int64)]
        if self._packed or self._runs:
            words = np.frombuffer(b"".join(self._packed) + b"".join(self._runs), dtype=_WORD)
            owners, lengths = self._entries()
            starts = np.cumsum(lengths) - lengths
            # A count's bucket is its histogram's first bucket (the header word) plus its place
            # after the header: its position in `words` plus an offset per histogram.
            offsets = words[starts] - starts - 1
            counted = words > 0
            counted[starts] = False  # the headers are buckets, not counts
            groups.append(np.repeat(owners, lengths)[counted])
            buckets.append((np.arange(len(words), dtype=np.int64) + np.repeat(offsets, lengths))[counted])
            counts.append(words[counted].astype(np.int64))
        flat_counts = np.concatenate(counts)
        kept = flat_counts > 0
        return np.concatenate(groups)[kept], np.concatenate(buckets)[kept], flat_counts[kept]

    def _entries(self) -> tuple[np.ndarray, np.ndarray]:
        """Each packed histogram's group and length in words, single ones first, then the
        runs' (empty histograms left out: they have no header word)."""
        single = np.fromiter((len(p) // _WORD.itemsize for p in self._packed), dtype=np.int64)
        owners = [np.asarray(self._packed_groups, dtype=np.int64)]
        lengths = [single]
        if self._runs:
            in_run = np.fromstring(",".join(self._run_lengths), sep=",", dtype=np.int64) // _WORD.itemsize
            per_run = [text.count(",") + 1 for text in self._run_lengths]
            if len(in_run) != sum(per_run) or int(in_run.sum()) * _WORD.itemsize != sum(map(len, self._runs)):
                raise ValueError("the lengths of concatenated histograms do not match their bytes")
            owners.append(np.repeat(np.asarray(self._run_groups, dtype=np.int64), per_run))
            lengths.append(in_run)
        all_owners, all_lengths = np.concatenate(owners), np.concatenate(lengths)
        held = all_lengths > 0
        return all_owners[held], all_lengths[held]


# Above this many (group, bucket) cells a dense count array would take too much memory.
_DENSE_CELLS = 4_000_000


def _reduced(cells: np.ndarray, counts: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Counts summed per cell, the cells sorted and empty ones left out."""
    if size <= _DENSE_CELLS:
        dense = np.bincount(cells, weights=counts, minlength=size)
        kept = np.flatnonzero(dense)
        return kept, dense[kept].astype(np.int64)
    kept, inverse = np.unique(cells, return_inverse=True)
    return kept, np.bincount(inverse, weights=counts).astype(np.int64)
