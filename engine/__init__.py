"""pointscore: exact, fast scoring of point predictions.

    import pointscore
    report = pointscore.evaluate("gt.parquet", "pred.parquet", thresholds=[4, 8])
    report.summary     # the JSON-ready summary (docs/metrics.md)
    report.per_image   # pyarrow.Table, one row per (image, class) with points
    report.state       # MetricState: merge() states of disjoint image sets exactly

The names below load their modules when first used, so that ``import pointscore`` (and
``pointscore --help``) does not pay for Numba, pyarrow or scipy until they are needed.
"""
import importlib

from .errors import InputError, OutputError
from .version import SCHEMA_VERSION, package_version

__version__ = package_version()

_LAZY = {
    "evaluate": "entrypoints", "evaluate_stream": "entrypoints",
    "evaluate_distributed": "entrypoints",
    "DEFAULT_SHARD_POINTS": "choices", "Report": "pipeline", "MetricState": "state",
    "ScoringOptions": "options", "DEFAULT_THRESHOLDS": "choices", "Limits": "limits",
    "DistributedError": "runners", "schema": "summary", "validate": "validate",
    "PointMetrics": "point_metrics",
}

__all__ = ["evaluate", "evaluate_stream", "evaluate_distributed", "validate", "PointMetrics",
           "Report",
           "MetricState",
           "ScoringOptions", "Limits", "InputError", "OutputError", "DistributedError",
           "DEFAULT_THRESHOLDS", "DEFAULT_SHARD_POINTS", "SCHEMA_VERSION", "schema",
           "__version__"]


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'pointscore' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
