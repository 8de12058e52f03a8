"""Entry module for ``python -m luigi --module pipeline TrainAll``.

Re-exports every task of :mod:`scifact_pipeline` so Luigi finds them by name.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from scifact_pipeline.config import scifact  # noqa: E402
from scifact_pipeline.download import DownloadData, DownloadModel  # noqa: E402
from scifact_pipeline.evaluate import EvaluateAll, Predict  # noqa: E402
from scifact_pipeline.preprocess import Preprocess  # noqa: E402
from scifact_pipeline.report import TrainAll  # noqa: E402
from scifact_pipeline.training import TrainLabel, TrainRationale  # noqa: E402
from scifact_pipeline.util import install_one_line_errors  # noqa: E402

# bad input and unreachable sources are logged as one line (file:line or URL), not a traceback
install_one_line_errors()

__all__ = ["scifact", "DownloadData", "DownloadModel", "Preprocess", "TrainRationale", "TrainLabel", "TrainAll", "Predict", "EvaluateAll"]
