"""Streaming examples from partitions into fixed-size, length-grouped, shuffled batches.

Only one partition is in memory at a time (plus a bounded shuffle buffer). The stream of an
epoch is a pure function of ``(seed, epoch)``, so a resumed run can skip exactly the batches it
already trained on.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence, TypeVar

import pandas as pd

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


def stream_partitions(
    paths: Sequence[Path],
    order: Iterable[int],
    load: Callable[[Path], pd.DataFrame],
    encode: Callable[[pd.DataFrame], list[T]],
) -> Iterator[T]:
    """Load the partitions in ``order`` one at a time and yield their encoded examples."""
    for i in order:
        df = load(paths[i])
        if len(df):
            yield from encode(df)
        del df  # free this partition before the next one is loaded


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
