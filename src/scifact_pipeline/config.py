"""Settings shared by every task (luigi.cfg section ``[scifact]``)."""

from __future__ import annotations

import luigi


class scifact(luigi.Config):  # noqa: N801 - luigi names config sections after the class
    """Global settings: ``[scifact]`` in luigi.cfg or ``--scifact-<name>`` on the command line."""

    output_dir = luigi.Parameter(
        default="output", description="Root folder of every output (data, examples, models, reports)."
    )
    seed = luigi.IntParameter(
        default=13, description="One seed for example sampling, partitioning, shuffling and initialisation."
    )
    threads = luigi.IntParameter(default=2, description="torch intra-op threads (and Dask workers).")
