"""Tests for scifact_pipeline.batching: fixed-size shuffled batches and partition streaming."""

from __future__ import annotations

import random
import statistics
from collections import Counter
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from scifact_pipeline.batching import (
    epoch_rng,
    length_of,
    partition_order,
    pool_partitions,
    shuffled_batches,
    sorted_batches,
    stream_partitions,
)

SIZES = [0, 1, 5, 33]  # uneven partitions, one empty


def _items(n: int, seed: int = 0, max_len: int = 60) -> list[dict]:
    rng = random.Random(seed)
    return [{"id": i, "input_ids": [0] * rng.randint(3, max_len)} for i in range(n)]


def _partitioned_stream(sizes: list[int], order: list[int] | None = None):
    """Items streamed from partitions of ``sizes`` (ids unique across partitions)."""
    parts, start = [], 0
    for n in sizes:
        parts.append(pa.table({"id": range(start, start + n), "len": [3 + (7 * i) % 50 for i in range(start, start + n)]}))
        start += n

    def encode(df: pd.DataFrame) -> list[dict]:
        return [{"id": int(i), "input_ids": [0] * int(n)} for i, n in zip(df["id"], df["len"])]

    order = list(range(len(sizes))) if order is None else order
    return stream_partitions(parts, order, lambda p: p, encode), start


@pytest.mark.parametrize("buffer_size", [8, 10, 16, 1000])
@pytest.mark.parametrize("seed", range(5))
def test_fixed_batch_size_across_partitions(buffer_size: int, seed: int) -> None:
    stream, n = _partitioned_stream(SIZES, partition_order(len(SIZES), seed, 0))
    batches = list(shuffled_batches(stream, 8, buffer_size, random.Random(seed)))
    assert n == 39
    assert [len(b) for b in batches] == [8, 8, 8, 8, 7]
    ids = [it["id"] for b in batches for it in b]
    assert sorted(ids) == list(range(n))  # every item exactly once


def test_exact_multiple_has_no_short_batch() -> None:
    batches = list(shuffled_batches(_items(32), 8, 12, random.Random(1)))
    assert [len(b) for b in batches] == [8, 8, 8, 8]


def test_fewer_items_than_a_batch_and_empty_stream() -> None:
    assert [len(b) for b in shuffled_batches(_items(3), 8, 16, random.Random(0))] == [3]
    assert list(shuffled_batches([], 8, 16, random.Random(0))) == []


def test_bad_batch_size() -> None:
    with pytest.raises(ValueError):
        list(shuffled_batches(_items(3), 0, 16, random.Random(0)))


def test_same_seed_same_batches_other_seed_differs() -> None:
    def run(seed: int) -> list[list[int]]:
        return [[it["id"] for it in b] for b in shuffled_batches(_items(200), 8, 64, epoch_rng(13, seed))]

    assert run(0) == run(0)
    assert run(0) != run(1)


def _mean_spread(batches: list[list[dict]]) -> float:
    return statistics.mean(max(map(length_of, b)) - min(map(length_of, b)) for b in batches)


def test_lengths_grouped_within_a_buffer() -> None:
    items = _items(512, seed=3, max_len=200)
    grouped = list(shuffled_batches(items, 8, 128, random.Random(0)))
    shuffled = items[:]
    random.Random(0).shuffle(shuffled)
    random_batches = [shuffled[i : i + 8] for i in range(0, len(shuffled), 8)]
    assert _mean_spread(grouped) * 5 < _mean_spread(random_batches)
    # the batches themselves are shuffled, not served shortest first
    firsts = [min(map(length_of, b)) for b in grouped[:16]]
    assert firsts != sorted(firsts)


def test_shuffle_mixes_items_across_the_buffer() -> None:
    batches = list(shuffled_batches(_items(64, max_len=3), 8, 64, random.Random(0)))
    assert [it["id"] for b in batches for it in b] != list(range(64))


def test_partition_order_is_a_permutation_that_changes_per_epoch() -> None:
    orders = [partition_order(50, 13, epoch) for epoch in range(4)]
    for order in orders:
        assert sorted(order) == list(range(50))
    assert len({tuple(o) for o in orders}) == 4
    assert partition_order(50, 13, 2) == orders[2]  # pure function of (seed, epoch)
    assert partition_order(50, 14, 2) != orders[2]
    assert partition_order(0, 13, 0) == []


def test_epoch_rng_is_deterministic() -> None:
    assert epoch_rng(13, 1).random() == epoch_rng(13, 1).random()
    assert epoch_rng(13, 1).random() != epoch_rng(13, 2).random()


def _table(path: str, n: int) -> pa.Table:
    return pa.table({"path": [path] * n, "i": list(range(n))})


def test_pool_partitions_reads_one_at_a_time_and_keeps_order() -> None:
    """Partitions load lazily, in order; a pool is yielded once it holds min_rows rows."""
    sizes = {"p0": 3, "p1": 0, "p2": 5, "p3": 2, "p4": 1, "p5": 4}
    loads: list[str] = []
    pending_at_load: list[int] = []  # rows loaded but not yet yielded, when a partition is loaded
    yielded = 0

    def load(path: str) -> pa.Table | None:
        loaded = sum(sizes[p] for p in loads)
        pending_at_load.append(loaded - yielded)
        loads.append(path)
        return _table(path, sizes[path]) if sizes[path] else None

    order = [2, 0, 3, 1, 5, 4]
    frames = []
    for df in pool_partitions(list(sizes), order, load, min_rows=4):
        frames.append(list(zip(df["path"], df["i"])))
        yielded += len(df)
    assert [len(f) for f in frames] == [5, 5, 4, 1]  # p2 | p0+p3 | p5 | p4 (the rest)
    assert [x for f in frames for x in f] == [(p, i) for p in ("p2", "p0", "p3", "p5", "p4") for i in range(sizes[p])]
    assert loads == ["p2", "p0", "p3", "p1", "p5", "p4"]
    assert max(pending_at_load) < 4  # never more than min_rows rows held besides the partition loading


def test_pooling_does_not_change_the_stream() -> None:
    sizes = [7, 0, 1, 30, 2, 2, 9]
    parts = [_table(f"p{k}", n) for k, n in enumerate(sizes)]
    order = [6, 3, 0, 1, 5, 2, 4]

    def encode(df: pd.DataFrame) -> list[tuple[str, int]]:
        return list(zip(df["path"], df["i"]))

    one_by_one = list(stream_partitions(parts, order, lambda t: t, encode, min_rows=1))
    assert one_by_one == [(f"p{k}", i) for k in order for i in range(sizes[k])]
    for min_rows in (2, 10, 1000):
        assert list(stream_partitions(parts, order, lambda t: t, encode, min_rows=min_rows)) == one_by_one


def test_stream_partitions_with_real_partition_folders(tmp_path: Path) -> None:
    from scifact_pipeline.preprocess import read_partition, read_partition_table

    paths = []
    for i, n in enumerate(SIZES):
        p = tmp_path / f"part={i}"
        if n:
            p.mkdir()
            pd.DataFrame({"key": range(100 * i + n, 100 * i, -1), "v": range(n)}).to_parquet(p / "part.0.parquet")
        paths.append(p)
    out = list(stream_partitions(paths, [3, 0, 1, 2], read_partition_table, lambda df: df["key"].tolist()))
    assert len(out) == sum(SIZES)
    assert out[:33] == list(range(301, 334))  # read_partition_table sorts by key
    assert read_partition_table(paths[0]) is None and read_partition(paths[0]).empty  # empty partition
    assert read_partition(paths[2])["key"].tolist() == [201, 202, 203, 204, 205]


def test_sorted_batches_keeps_every_item_sorted_within_buffer() -> None:
    items = _items(50, seed=5)
    batches = list(sorted_batches(items, 8, 20))
    assert Counter(it["id"] for b in batches for it in b) == Counter(range(50))
    for start in range(0, 50, 20):
        chunk = [it for b in batches for it in b][start : start + 20]
        assert [length_of(it) for it in chunk] == sorted(length_of(it) for it in chunk)
