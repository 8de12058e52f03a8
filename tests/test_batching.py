"""Tests for scifact_pipeline.batching: fixed-size shuffled batches and one-partition streaming."""

from __future__ import annotations

import random
import statistics
import weakref
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from scifact_pipeline.batching import (
    epoch_rng,
    length_of,
    partition_order,
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
        parts.append(pd.DataFrame({"id": range(start, start + n), "len": [3 + (7 * i) % 50 for i in range(start, start + n)]}))
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


class _Partition:
    """A stand-in for a loaded partition frame whose lifetime can be watched."""

    def __init__(self, path: str, n: int) -> None:
        self.path, self.n = path, n

    def __len__(self) -> int:
        return self.n


def test_stream_partitions_holds_one_partition_at_a_time() -> None:
    sizes = {"p0": 3, "p1": 0, "p2": 5, "p3": 2}
    alive: set[str] = set()
    loads: list[str] = []
    max_alive_at_load = []

    def load(path: str) -> _Partition:
        max_alive_at_load.append(len(alive))
        loads.append(path)
        part = _Partition(path, sizes[path])
        alive.add(path)
        weakref.finalize(part, alive.discard, path)
        return part

    def encode(part: _Partition) -> list[tuple[str, int]]:
        return [(part.path, i) for i in range(part.n)]

    paths = list(sizes)
    order = [2, 0, 3, 1]
    stream = stream_partitions(paths, order, load, encode)
    got = []
    for item in stream:
        got.append(item)
        assert len(alive) <= 1
        assert loads[-1] == item[0]  # loaded lazily, only when its items are needed
    assert got == [("p2", i) for i in range(5)] + [("p0", i) for i in range(3)] + [("p3", i) for i in range(2)]
    assert loads == ["p2", "p0", "p3", "p1"]
    assert max_alive_at_load == [0, 0, 0, 0]  # the previous partition is freed before the next load
    assert not alive


def test_stream_partitions_with_real_partition_folders(tmp_path: Path) -> None:
    from scifact_pipeline.preprocess import read_partition

    paths = []
    for i, n in enumerate(SIZES):
        p = tmp_path / f"part={i}"
        if n:
            p.mkdir()
            pd.DataFrame({"key": range(100 * i + n, 100 * i, -1), "v": range(n)}).to_parquet(p / "part.0.parquet")
        paths.append(p)
    out = list(stream_partitions(paths, [3, 0, 1, 2], read_partition, lambda df: df["key"].tolist()))
    assert len(out) == sum(SIZES)
    assert out[:33] == list(range(301, 334))  # read_partition sorts by key


def test_sorted_batches_keeps_every_item_sorted_within_buffer() -> None:
    items = _items(50, seed=5)
    batches = list(sorted_batches(items, 8, 20))
    assert Counter(it["id"] for b in batches for it in b) == Counter(range(50))
    for start in range(0, 50, 20):
        chunk = [it for b in batches for it in b][start : start + 20]
        assert [length_of(it) for it in chunk] == sorted(length_of(it) for it in chunk)
