"""Streaming examples from partitions into fixed-size, length-grouped, shuffled batches.

Partitions are read one at a time (small ones pooled up to a few hundred rows) through a
bounded shuffle buffer. The stream of an epoch is a pure function of ``(seed, epoch)``, so a
resumed run can skip exactly the batches it already trained on.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence, TypeVar

import pandas as pd
import pyarrow as pa

from .examples import stable_hash

T = TypeVar("T")


def epoch_rng(seed: int, epoch: int, what: str = "shuffle") -> random.Random:
    """The generator of one epoch's shuffling."""
    return random.Random(stable_hash(what, seed, epoch))


def partition_order(n: int, seed: int, epoch: int) -> list[int]:
    """A seeded permutation of ``range(n)``, different for every epoch."""
    order = list(range(n))
    epoch_rng(seed, epoch, "partitions").shuffle(order)
    return order


# partitions smaller than this are pooled before tokenization: converting a table to pandas and
# calling the tokenizer cost about a millisecond each, whatever the number of rows
POOL_ROWS = 256

P = TypeVar("P")


def pool_partitions(
    paths: Sequence[P], order: Iterable[int], load: Callable[[P], pa.Table | None], min_rows: int = POOL_ROWS
) -> Iterator[pd.DataFrame]:
    """Load the partitions in ``order`` one at a time; yield their rows as frames, in that order.

    Consecutive small partitions are pooled until they hold ``min_rows`` rows (the last frame
    may hold fewer), so at most ``min_rows`` rows plus one partition are in memory, and the
    fixed cost of each pandas conversion and tokenizer call is paid per pool, not per partition.
    The rows and their order are those of reading the partitions one by one.
    """
    pending: list[pa.Table] = []
    rows = 0
    for i in order:
        table = load(paths[i])
        if table is None or not table.num_rows:
            continue
        pending.append(table)
        rows += table.num_rows
        del table
        if rows >= min_rows:
            yield pa.concat_tables(pending).to_pandas()
            pending, rows = [], 0  # free the pool before the next partition is loaded
    if pending:
        yield pa.concat_tables(pending).to_pandas()


def stream_partitions(
    paths: Sequence[P],
    order: Iterable[int],
    load: Callable[[P], pa.Table | None],
    encode: Callable[[pd.DataFrame], list[T]],
    min_rows: int = POOL_ROWS,
) -> Iterator[T]:
    """The encoded examples of the partitions in ``order`` (see :func:`pool_partitions`)."""
    for df in pool_partitions(paths, order, load, min_rows):
        yield from encode(df)


def length_of(feature: object) -> int:
    """The token length of an encoded example (``input_ids``)."""
    return len(feature["input_ids"])  # type: ignore[index]


def shuffled_batches(
    items: Iterable[T],
    batch_size: int,
    buffer_size: int,
    rng: random.Random,
    length: Callable[[T], int] = length_of,  # type: ignore[assignment]
) -> Iterator[list[T]]:
    """Group a stream into batches of exactly ``batch_size`` (the last may be smaller).

    Items fill a buffer of ``buffer_size``; the buffer is shuffled, sorted by length so each
    batch holds similar lengths (little padding), cut into batches, and the batches are shuffled.
    Items that do not fill a whole batch carry over to the next buffer, so batch size never
    depends on partition sizes.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    buffer_size = max(buffer_size, batch_size)
    buffer: list[T] = []

    def flush(final: bool) -> Iterator[list[T]]:
        rng.shuffle(buffer)
        buffer.sort(key=length)
        n_full = len(buffer) // batch_size
        batches = [buffer[i * batch_size : (i + 1) * batch_size] for i in range(n_full)]
        rest = buffer[n_full * batch_size :]
        rng.shuffle(batches)
        if final and rest:
            batches.append(rest)  # after the shuffle: only the very last batch may be smaller
            rest = []
        buffer[:] = rest
        yield from batches

    for item in items:
        buffer.append(item)
        if len(buffer) >= buffer_size:
            yield from flush(final=False)
    yield from flush(final=True)


def sorted_batches(items: Iterable[T], batch_size: int, buffer_size: int, length: Callable[[T], int] = length_of) -> Iterator[list[T]]:  # type: ignore[assignment]
    """Batches for inference: within each buffer, sort by length (no shuffling)."""
    buffer: list[T] = []
    for item in items:
        buffer.append(item)
        if len(buffer) >= buffer_size:
            buffer.sort(key=length)
            for i in range(0, len(buffer), batch_size):
                yield buffer[i : i + batch_size]
            buffer = []
    buffer.sort(key=length)
    for i in range(0, len(buffer), batch_size):
        yield buffer[i : i + batch_size]
