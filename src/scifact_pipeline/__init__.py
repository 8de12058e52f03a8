"""Luigi + Dask pipeline that trains SciFact claim-verification models.

Stages (one module each): :mod:`.download` (S3 → local), :mod:`.preprocess` (Dask JSON →
example partitions), :mod:`.tokenization` (examples → model inputs), :mod:`.training`
(partition-by-partition training), :mod:`.report` (``TrainAll``).
"""

__version__ = "0.1.0"
