"""pointscore: exact, fast scoring of point predictions.

    import engine
    report = engine.evaluate(gt, pred, images=None, thresholds=None, normalize="none",
                             match="greedy", score_threshold=None, device="auto")
"""
from .evaluate import DEFAULT_THRESHOLDS, Report, evaluate
from .io import InputError
from .state import MetricState

__all__ = ["evaluate", "Report", "MetricState", "InputError", "DEFAULT_THRESHOLDS"]
