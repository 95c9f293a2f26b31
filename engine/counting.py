"""Crowd-counting conventions for leaderboards (docs/counting.md): GAME, metrics per
bin of true count or density, and count-only predictions of density-map models.

Nothing here changes the spec's summary: each option, when asked for, adds one
top-level key ("game", "breakdown"), and count-only predictions fill the spec's fields
with counting metrics and nulls. Sums are integers or exact float sums
(kernels.exact), so no result depends on row order.
"""
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kernels.exact import ExactSums

from . import io
from .batch import rank_tables
from .io import InputError, _rows, _value_text
from .report import _fmt
from .state import _counting, _rates

MAX_GAME_LEVEL = 3
BREAKDOWNS = ("count", "density")
# Upper edges of right-closed bins; the first bin is [0, 0]: images with nothing to count.
DEFAULT_BINS = (0.0, 100.0, 500.0, 5000.0)  # NWPU-Crowd's scene levels S0-S4
STREAM_HINT = ("not available for streamed or distributed runs yet (Parquet dataset "
               "directories, Parquet inputs of more than --shard-points points, --workers, "
               "--scheduler): score single files in memory, e.g. with a larger --shard-points")


# -- options ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Extras:
    """The counting options of engine.evaluate, checked."""
    game: int = None         # highest GAME level, or None
    breakdown: str = None    # 'count', 'density' or None
    bins: tuple = None       # bin edges (with breakdown)

    def check_inputs(self, pred, images, score_threshold):
        """What the options and count-only predictions need of the loaded tables."""
        problems = []
        counts = isinstance(pred, Counts)
        if counts and score_threshold is not None:
            problems.append(f"{pred.label}: score_threshold does not apply to count-only "
                            "predictions (a 'count' column, no points)")
        if counts and self.game is not None:
            problems.append(f"{pred.label}: game needs predicted points; count-only "
                            "predictions have none")
        elif self.game is not None:
            _needs_sizes("game", images, problems)
        if self.breakdown == "density":
            _needs_sizes("breakdown 'density'", images, problems)
        if problems:
            raise InputError(problems)

    def summary(self, gt, pred, images, per_image, classes, thresholds, score_threshold,
                n_images):
        """The top-level keys these options add to the summary."""
        out = {}
        if self.game is not None:
            kept = None if score_threshold is None else pred.score >= score_threshold
            out["game"] = game(gt, pred, images, classes, self.game, kept)
        if self.breakdown is not None:
            out["breakdown"] = breakdown(per_image, thresholds, self.breakdown, self.bins,
                                         images, not isinstance(pred, Counts), n_images)
        return out


def check_options(game=None, breakdown=None, bins=None):
    """engine.evaluate's game, breakdown and bins -> Extras; one line per problem."""
    problems = []
    if game is not None and (isinstance(game, (bool, np.bool_))
                             or not isinstance(game, (int, np.integer))
                             or not 0 <= game <= MAX_GAME_LEVEL):
        problems.append(f"game must be a whole number from 0 to {MAX_GAME_LEVEL}, "
                        f"got {_value_text(game)}")
    if breakdown is not None and not (isinstance(breakdown, str) and breakdown in BREAKDOWNS):
        problems.append(f"breakdown must be one of {', '.join(BREAKDOWNS)}, "
                        f"got {_value_text(breakdown)}")
    if bins is not None and breakdown is None:
        problems.append("bins needs a breakdown ('count' or 'density')")
    edges = DEFAULT_BINS if bins is None else _edges(bins, problems)
    if problems:
        raise InputError(problems)
    return Extras(None if game is None else int(game), breakdown,
                  edges if breakdown is not None else None)


def _edges(bins, problems):
    items = np.asarray(bins, dtype=object).ravel().tolist()
    numeric = bool(items) and all(isinstance(v, (int, float, np.integer, np.floating))
                                  and not isinstance(v, (bool, np.bool_)) for v in items)
    try:
        values = np.array(items, np.float64) if numeric else None
    except OverflowError:  # an int beyond the float range
        values = None
    if values is None or not np.isfinite(values).all() or (values < 0).any() \
            or (np.diff(values) <= 0).any():
        problems.append("bins must be finite, increasing numbers >= 0 (the upper edges of "
                        f"the bins), got {_value_text(bins)}")
        return None
    return tuple(values.tolist())


def _needs_sizes(what, images, problems):
    if images is None:
        problems.append(f"{what} needs an images table (--images) with 'width' and 'height' "
                        "columns")
    elif images.width is None or images.height is None:
        problems.append(f"{images.label}: {what} needs 'width' and 'height' columns in the "
                        "images table")


def parse_bins(text):
    """--bins 'a,b,c' -> numbers (engine.evaluate checks them)."""
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise InputError(f"--bins: expected numbers separated by commas, got '{text}'") from None


def refuse_streamed(options):
    """The streamed and distributed paths take none of these options yet."""
    asked = [f"--{name}" for name, value in options.items() if value is not None]
    if asked:
        raise InputError(f"{', '.join(asked)}: {STREAM_HINT}")


# -- count-only predictions --------------------------------------------------------------------
@dataclass
class Counts(io.Table):
    """A checked count-only predictions table: one row per (image, class)."""
    count: np.ndarray = None  # int64 for an integer column, else float64


def is_counts(names):
    """Whether a predictions table with these columns holds per-image counts."""
    return "count" in names and not {"x", "y", "points"} & set(names)


def load_pred(source):
    """The predictions table: points (engine.io.load) or per-image counts."""
    table, label = io.to_arrow(source, "pred")
    names = set(table.column_names)
    if "count" in names and names & {"x", "y"}:
        raise InputError(f"{label}: a predictions table holds points ('x', 'y') or "
                         "per-image counts ('count'), not both")
    if not is_counts(names):
        return io.load(table, "pred", label=label)
    return _load_counts(table, label)


def _load_counts(table, label):
    problems = []
    for name in ("image_id", "count"):
        if name not in table.column_names:
            problems.append(f"{label}: missing column '{name}' in the count-only predictions "
                            f"table (has: {', '.join(table.column_names)})")
    col = {name: io._plain_array(table.column(name)) for name in table.column_names}

    def check(name, kind, **options):
        return kind(col[name], label, name, problems, **options) if name in col else None

    out = Counts(label=label, image_id=check("image_id", io._key_column),
                 klass=check("class", io._key_column))
    out.count = check("count", io._float_column, allow_negative=False)
    if out.count is not None and pa.types.is_integer(col["count"].type):
        out.count = np.asarray(col["count"].cast(pa.int64(), safe=False))
    if out.image_id is not None and ("class" not in col or out.klass is not None):
        _check_unique_rows(out, problems)
    if problems:
        raise InputError(problems)
    return out


def _dense_ranks(values):
    """Each value's rank among the distinct values (any order: only equality matters)."""
    return np.asarray(pc.index_in(values, value_set=pc.unique(values)), np.int64)


def _check_unique_rows(counts, problems):
    key = _dense_ranks(counts.image_id)
    if counts.klass is not None:
        key = key * len(counts) + _dense_ranks(counts.klass)
    order = np.argsort(key, kind="stable")
    repeat = np.zeros(key.size, bool)
    repeat[order[1:]] = key[order[1:]] == key[order[:-1]]
    if repeat.any():
        what = "(image_id, class) pairs" if counts.klass is not None else "image ids"
        per = "image and class" if counts.klass is not None else "image"
        problems.append(f"{counts.label}: column 'image_id' has {int(repeat.sum())} repeated "
                        f"{what} in the count-only predictions table, which takes one row "
                        f"per {per} ({_rows(repeat, counts.image_id)})")


@dataclass
class CountState:
    """Per-image true and predicted counts of a count-only run, (n_images, n_classes)
    each; ``compute`` gives the spec's fields with localisation null. Not mergeable."""
    thresholds: np.ndarray
    classes: list
    gt: np.ndarray
    pred: np.ndarray
    has_scores = False  # no AP lists, as a MetricState without scores

    def compute(self, xp=None):
        n_images, n_c = self.gt.shape
        class_key = np.tile(np.arange(n_c), n_images)
        image_key = np.repeat(np.arange(n_images), n_c)
        by_class = counting_by(self.gt.ravel(), self.pred.ravel(), class_key, n_c)
        pooled = counting_by(self.gt.sum(axis=1), sum_by(image_key, self.pred.ravel(), n_images),
                             np.zeros(n_images, np.int64), 1)[0]
        pred_total = sum_by(class_key, self.pred.ravel(), n_c)

        def nulls(*names):
            return {name: [None] * self.thresholds.size for name in names}

        classes = {str(value): {"gt_points": int(self.gt[:, c].sum()),
                                "pred_points": pred_total[c].item(),
                                **nulls("tp", "fp", "fn", "precision", "recall", "f1",
                                        "loc_error", "ap"),
                                "counting": by_class[c]}
                   for c, value in enumerate(self.classes)}
        return {
            "images": n_images,
            "gt_points": int(self.gt.sum()),
            "pred_points": sum_by(np.zeros(self.pred.size, np.int64), self.pred.ravel(),
                                  1)[0].item(),
            "counting": pooled,
            "micro": nulls("tp", "fp", "fn", "precision", "recall", "f1", "loc_error"),
            "macro": nulls("precision", "recall", "f1", "ap"),
            "map": None,
            "classes": classes,
        }


def score_counts(gt, counts, images, thresholds):
    """(CountState, per-image table) of count-only predictions. Images without a row in
    the counts table are predicted 0, as an image without predicted points is."""
    ranks = rank_tables(gt, counts, images)
    ids, classes = ranks.ids, ranks.classes
    gt_image, gt_class = ranks.gt_image, ranks.gt_class
    pred_image, pred_class = ranks.pred_image, ranks.pred_class
    n_c, n_groups = len(classes), len(ids) * len(classes)
    gt_count = np.bincount(gt_image * n_c + gt_class, minlength=n_groups)
    pred_count = np.zeros(n_groups, counts.count.dtype)
    pred_count[pred_image * n_c + pred_class] = counts.count  # one row per group at most
    per_image = pa.table({
        "image_id": ids.take(pa.array(np.repeat(np.arange(len(ids)), n_c))),
        "class": pa.array(classes * len(ids)),
        "gt_count": gt_count,
        "pred_count": pred_count,
    })
    state = CountState(thresholds, classes, gt_count.reshape(len(ids), n_c),
                       pred_count.reshape(len(ids), n_c))
    return state, per_image


# -- sums -------------------------------------------------------------------------------------
def sum_by(keys, values, n):
    """Sums of values per key (0..n-1): integers as integers, floats exactly, rounded once."""
    values = np.asarray(values)
    if values.dtype.kind == "f":
        sums = ExactSums(n)
        sums.add(keys, values)
        return sums.totals()
    out = np.zeros((n,) + values.shape[1:], np.int64)
    np.add.at(out, keys, values)
    return out


def counting_by(true, pred, keys, n):
    """MAE, RMSE and NAE of per-image counts for each key: engine.state's formulas on
    exact sums, so one key holding every image gives the summary's numbers."""
    err = pred - true
    has_true = true > 0
    nae = ExactSums(n)
    nae.add(keys[has_true], np.abs(err[has_true]) / true[has_true])
    abs_err, sq_err, nae = sum_by(keys, np.abs(err), n), sum_by(keys, err * err, n), nae.totals()
    images = np.bincount(keys, minlength=n)
    nae_images = np.bincount(keys[has_true], minlength=n)
    return [_counting(abs_err[k], sq_err[k], nae[k], nae_images[k], images[k]) for k in range(n)]


# -- GAME -------------------------------------------------------------------------------------
def game(gt, pred, images, classes, top, kept=None):
    """GAME(0..top) (Guerrero-Gomez-Olmedo et al. 2015): per image and level l, the sum
    over the 2^l x 2^l cells of |kept predictions - gt points| in the cell, averaged over
    images; pooled over classes and per class. Pixel coordinates, as given."""
    order = np.asarray(pc.sort_indices(images.image_id))
    ids = images.image_id.take(pa.array(order))
    sizes = images.width[order], images.height[order]
    n_images, n_c = len(ids), len(classes)
    sides = [_located(gt, ids, classes, sizes, None), _located(pred, ids, classes, sizes, kept)]
    pooled, by_class = [], []
    for level in range(top + 1):
        g, p = (_cell_counts(*where, 1 << level, n_images, n_c) for where in sides)
        pooled.append(np.abs(g.sum(axis=1) - p.sum(axis=1)).sum())
        by_class.append(np.abs(g - p).sum(axis=(0, 2)))

    def means(totals):
        return [float(t / n_images) if n_images else None for t in totals]

    return {"levels": list(range(top + 1)), "pooled": means(pooled),
            "classes": {str(v): means([t[c] for t in by_class]) for c, v in enumerate(classes)}}


def _located(table, ids, classes, sizes, keep):
    """x / width, y / height, image rank and class rank of the table's points (those in
    ``keep``)."""
    if len(table) == 0:  # an empty column may carry another type than the ids
        empty = np.zeros(0, np.int64)
        return np.zeros(0), np.zeros(0), empty, empty
    image = np.asarray(pc.index_in(table.image_id, value_set=ids), np.int64)
    klass = np.zeros(len(table), np.int64) if table.klass is None else \
        np.asarray(pc.index_in(table.klass, value_set=pa.array(classes)), np.int64)
    keep = slice(None) if keep is None else keep
    with np.errstate(over="ignore"):  # beyond the float range: clipped to the border
        return (table.x[keep] / sizes[0][image[keep]], table.y[keep] / sizes[1][image[keep]],
                image[keep], klass[keep])


def _cell_counts(u, v, image, klass, side, n_images, n_c):
    """Points per (image, class, cell): (n_images, n_classes, side * side)."""
    key = (image * n_c + klass) * (side * side) + _cell(v, side) * side + _cell(u, side)
    return np.bincount(key, minlength=n_images * n_c * side * side) \
        .reshape(n_images, n_c, side * side)


def _cell(unit, side):
    """floor(value / size * side) on the grid: a point on the far edge, or outside the
    image, belongs to the border cell."""
    return np.clip(np.floor(unit * side), 0, side - 1).astype(np.int64)


# -- breakdown --------------------------------------------------------------------------------
def breakdown(per_image, thresholds, by, edges, images, has_points, n_images):
    """Counting metrics and micro TP/FP/FN, P/R/F1 per bin of each image's true count
    (or count per megapixel), from the per-image table. Bin i is (edges[i-1], edges[i]],
    the first [0, edges[0]], the last (edges[-1], inf). Without any class (a class
    column and no rows) the table has no rows: the n_images images then count nothing
    and fall in the first bin."""
    ids = per_image.column("image_id")
    image_ids = pc.unique(ids)
    row_image = np.asarray(pc.index_in(ids, value_set=image_ids), np.int64)
    n_bins = len(edges) + 1
    gt = sum_by(row_image, per_image.column("gt_count").to_numpy(), n_images)
    pred = sum_by(row_image, per_image.column("pred_count").to_numpy(), n_images)
    value = gt if by == "count" or not len(image_ids) else _density(gt, image_ids, images)
    image_bin = np.searchsorted(np.asarray(edges), value, side="left")
    counting = counting_by(gt, pred, image_bin, n_bins)
    images_in = np.bincount(image_bin, minlength=n_bins)
    gt_in, pred_in = sum_by(image_bin, gt, n_bins), sum_by(image_bin, pred, n_bins)
    local = _local_by(per_image, thresholds, image_bin[row_image], n_bins) if has_points \
        else [{name: [None] * thresholds.size
               for name in ("tp", "fp", "fn", "precision", "recall", "f1")}
              for _ in range(n_bins)]
    bounds = [0.0, *edges]
    bins = [{"lo": bounds[b], "hi": edges[b] if b < len(edges) else None,
             "images": int(images_in[b]), "gt_count": int(gt_in[b]),
             "pred_count": pred_in[b].item(), "counting": counting[b], **local[b]}
            for b in range(n_bins)]
    return {"by": by, "edges": list(edges), "bins": bins}


def _density(gt, image_ids, images):
    """True count per megapixel, gt * 10^6 / (width * height): exact products for
    integer sizes, then one rounding."""
    at = np.asarray(pc.index_in(image_ids, value_set=images.image_id), np.int64)
    return gt * 1e6 / (images.width[at] * images.height[at])


def _local_by(per_image, thresholds, row_bin, n_bins):
    def summed(name):
        columns = [per_image.column(f"{name}@{d!r}").to_numpy() for d in thresholds.tolist()]
        return sum_by(row_bin, np.stack(columns, axis=1), n_bins)

    tp, fp, fn = summed("tp"), summed("fp"), summed("fn")
    out = []
    for b in range(n_bins):
        rates = _rates(tp[b], fp[b], fn[b])
        out.append({"tp": tp[b].tolist(), "fp": fp[b].tolist(), "fn": fn[b].tolist(),
                    **{name: rates[name].tolist() for name in ("precision", "recall", "f1")}})
    return out


# -- the terminal ------------------------------------------------------------------------------
def text_table(summary):
    """GAME and breakdown lines for the terminal ('' when neither was asked for)."""
    lines = []
    if "game" in summary:
        g = summary["game"]
        lines += ["", "GAME(l)  " + "  ".join(f"l={v}" for v in g["levels"]),
                  "  pooled " + "  ".join(_fmt(v) for v in g["pooled"])]
        if len(g["classes"]) > 1:
            lines += [f"  {name} " + "  ".join(_fmt(v) for v in values)
                      for name, values in g["classes"].items()]
    if "breakdown" in summary:
        b, d = summary["breakdown"], summary["config"]["thresholds"]
        shown = sorted({0, len(d) - 1})  # F1 at the smallest and largest threshold
        rows = [("bin", "images", "gt", "pred", "MAE", "RMSE", "NAE",
                 *(f"F1@{d[t]:g}" for t in shown))]
        for item in b["bins"]:
            lo = "[" if item is b["bins"][0] else "("
            hi = "inf)" if item["hi"] is None else f"{item['hi']:g}]"
            rows.append((f"{lo}{item['lo']:g}, {hi}", str(item["images"]),
                         str(item["gt_count"]), _fmt(item["pred_count"], 2),
                         *(_fmt(item["counting"][k]) for k in ("mae", "rmse", "nae")),
                         *(_fmt(item["f1"][t]) for t in shown)))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines += ["", f"by true {'count' if b['by'] == 'count' else 'count per megapixel'}"]
        lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(lines) + "\n" if lines else ""

