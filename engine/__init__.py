"""pointscore: exact, fast scoring of point predictions.

    import pointscore
    report = pointscore.evaluate("gt.parquet", "pred.parquet", thresholds=[4, 8])
    report.summary     # the JSON-ready summary (docs/metrics.md)
    report.per_image   # pyarrow.Table, one row per (image, class) with points
    report.state       # MetricState: merge() states of disjoint image sets exactly
"""
from .errors import InputError
from .evaluate import DEFAULT_SHARD_POINTS, evaluate, evaluate_distributed, evaluate_stream
from .options import DEFAULT_THRESHOLDS, ScoringOptions
from .pipeline import Report
from .runners import DistributedError
from .state import MetricState
from .summary import SCHEMA_VERSION, package_version, schema

__version__ = package_version()

__all__ = ["evaluate", "evaluate_stream", "evaluate_distributed", "Report", "MetricState",
           "ScoringOptions", "InputError", "DistributedError", "DEFAULT_THRESHOLDS",
           "DEFAULT_SHARD_POINTS", "SCHEMA_VERSION", "schema", "__version__"]
