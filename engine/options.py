"""The scoring options, checked once: every entry point (evaluate, streamed and
distributed runs, compare, the training-loop metric) builds one ``ScoringOptions``
and every step reads it. A new option is one field here."""
import math
from dataclasses import asdict, dataclass, fields

import numpy as np

from .choices import (
    BREAKDOWNS,
    DEFAULT_BINS,
    DEFAULT_KNN_K,
    DEFAULT_THRESHOLDS,
    DEVICES,
    MATCH,
    MAX_GAME_LEVEL,
    MAX_THRESHOLDS,
    NORMALIZE,
)
from .errors import InputError, option, shown


@dataclass(frozen=True)
class ScoringOptions:
    """How predictions are scored (see docs/metrics.md, docs/scaled.md and
    docs/counting.md for each).

    Attributes
    ----------
    thresholds : tuple of float
        Distance thresholds d, sorted and distinct, each finite and > 0.
    normalize : {'none', 'wh', 'diag', 'knn'}
        Coordinate units of the thresholds.
    match : {'greedy', 'nearest', 'hungarian', 'kuhn'}
        The one-to-one matching rule of the operating point.
    score_threshold : float or None
        Predictions with ``score >= score_threshold`` are kept at the operating point.
    device : {'auto', 'cpu', 'gpu'}
        Where the kernels run.
    radius : str or None
        A ground-truth column of per-point scales (thresholds in its units).
    knn_k : int
        Neighbours of ``normalize='knn'``.
    game : int or None
        Highest GAME level.
    breakdown : {'count', 'density'} or None
        Metrics per bin of true count or density.
    bins : tuple of float or None
        Upper bin edges of ``breakdown``.
    level_column : str or None
        A ground-truth column of per-point levels (NWPU-Crowd's head-size ``level``):
        ground truth and true positives per level.
    breakdown_by : str or None
        An images-table column of per-image labels (weather, luminance, scene): the
        metrics per label.
    """
    thresholds: tuple = DEFAULT_THRESHOLDS
    normalize: str = "none"
    match: str = "greedy"
    score_threshold: float = None
    device: str = "auto"
    radius: str = None
    knn_k: int = DEFAULT_KNN_K
    game: int = None
    breakdown: str = None
    bins: tuple = None
    level_column: str = None
    breakdown_by: str = None

    @classmethod
    def create(cls, thresholds=None, normalize="none", match="greedy", score_threshold=None,
               device="auto", radius=None, knn_k=DEFAULT_KNN_K, game=None, breakdown=None,
               bins=None, level_column=None, breakdown_by=None):
        """Check every option (one line per problem) and return them, normalised; None
        for thresholds, normalize, match, device or knn_k is its default.

        Raises
        ------
        InputError
            When an option is not of the documented kind or range.
        """
        problems = []
        normalize = "none" if normalize is None else normalize
        match = "greedy" if match is None else match
        device = "auto" if device is None else device
        knn_k = DEFAULT_KNN_K if knn_k is None else knn_k
        thresholds = _thresholds(thresholds, problems)
        _choice("normalize", normalize, NORMALIZE, problems)
        _choice("match", match, MATCH, problems)
        _choice("device", device, DEVICES, problems)
        if score_threshold is not None:
            value = _number(score_threshold)
            if value is None or not math.isfinite(value):
                problems.append(f"{option('score_threshold')} must be a finite number, got "
                                f"{shown(score_threshold)}")
            else:
                score_threshold = value
        for name, value, table in (("radius", radius, "ground-truth"),
                                   ("level_column", level_column, "ground-truth"),
                                   ("breakdown_by", breakdown_by, "images-table")):
            if value is not None and not (isinstance(value, str) and value):
                problems.append(f"{option(name)} must be the name of a {table} column, got "
                                f"{shown(value)}")
        if isinstance(radius, str) and radius and normalize != "none":
            problems.append(f"{option('radius')} {shown(radius)} is each ground-truth point's "
                            f"own scale: use it with {option('normalize')} 'none', got "
                            f"{option('normalize')} {shown(normalize)}")
        if not _whole(knn_k) or knn_k < 1:
            problems.append(f"{option('knn_k')} must be a whole number >= 1, got {shown(knn_k)}")
        if game is not None and (not _whole(game) or not 0 <= game <= MAX_GAME_LEVEL):
            problems.append(f"{option('game')} must be a whole number from 0 to "
                            f"{MAX_GAME_LEVEL}, got {shown(game)}")
        if breakdown is not None:
            _choice("breakdown", breakdown, BREAKDOWNS, problems)
        if bins is not None and breakdown is None:
            problems.append(f"{option('bins')} needs a {option('breakdown')} ('count' or "
                            "'density')")
        edges = None
        if breakdown is not None:
            edges = DEFAULT_BINS if bins is None else _edges(bins, problems)
        if problems:
            raise InputError(problems)
        return cls(tuple(thresholds), normalize, match, score_threshold, device, radius,
                   int(knn_k), None if game is None else int(game), breakdown, edges,
                   level_column, breakdown_by)

    @property
    def scaled(self):
        """Thresholds are multiples of a scale per ground-truth point."""
        return self.radius is not None or self.normalize == "knn"

    def extra_columns(self, role):
        """The columns of a role's table that scoring reads besides the contract's:
        {what: column name} ('radius' and 'level' of the ground truth, 'attribute' of
        the images table)."""
        wanted = {"gt": {"radius": self.radius, "level": self.level_column},
                  "images": {"attribute": self.breakdown_by}}.get(role, {})
        return {what: name for what, name in wanted.items() if name is not None}

    @property
    def threshold_array(self):
        return np.array(self.thresholds, np.float64)

    def scoring(self):
        """Everything that decides the numbers (all but the device): states scored
        with different scoring options never merge."""
        return {k: v for k, v in asdict(self).items() if k != "device"}

    def config(self, device):
        """The summary's ``config``: the contract's keys, and those of options in use."""
        out = {"thresholds": list(self.thresholds), "match": self.match,
               "normalize": self.normalize, "score_threshold": self.score_threshold,
               "device": device, "ap_interpolation": "coco101"}
        if self.radius is not None:
            out["radius"] = self.radius
        if self.normalize == "knn":
            out["knn_k"] = self.knn_k
        if self.level_column is not None:
            out["level_column"] = self.level_column
        return out

    def replace(self, **changes):
        """These options with some changed, checked again."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        if values["breakdown"] is None:
            values["bins"] = None
        return ScoringOptions.create(**values)


def _number(value):
    """A real number as a float (an int beyond the float range as inf), else None:
    bools and text are not numbers here."""
    if isinstance(value, (bool, np.bool_)) or \
            not isinstance(value, (int, float, np.integer, np.floating)):
        return None
    try:
        return float(value)
    except OverflowError:
        return math.inf


def _whole(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _choice(name, value, choices, problems):
    if not (isinstance(value, str) and value in choices):
        problems.append(f"{option(name)} must be one of {', '.join(choices)}, got "
                        f"{shown(value)}")


def _thresholds(thresholds, problems):
    """Sorted, distinct, finite and > 0; the default when None."""
    if thresholds is None:
        return list(DEFAULT_THRESHOLDS)
    items = np.asarray(thresholds, dtype=object).ravel()
    if items.size > MAX_THRESHOLDS:
        problems.append(f"{option('thresholds')}: at most {MAX_THRESHOLDS} thresholds, got "
                        f"{items.size}")
        return []
    items = items.tolist()
    values = [_number(v) for v in items]
    bad = [shown(v) for v, f in zip(items, values) if f is None or not 0 < f < math.inf]
    if bad or not items:
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        problems.append(f"{option('thresholds')} must be finite numbers > 0, got "
                        + (", ".join(bad[:5]) + more if bad else "none"))
        return []
    return np.unique(np.array(values)).tolist()


def _edges(bins, problems):
    items = np.asarray(bins, dtype=object).ravel().tolist()
    values = [_number(v) for v in items]
    if not items or any(v is None for v in values) or not np.isfinite(values).all() \
            or (np.asarray(values) < 0).any() or (np.diff(values) <= 0).any():
        problems.append(f"{option('bins')} must be finite, increasing numbers >= 0 (the upper "
                        f"edges of the bins), got {shown(bins)}")
        return None
    return tuple(values)
