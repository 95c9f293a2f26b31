"""Metric state: the sufficient statistics of a scored set of images, merging exactly.

Every field is declared once in ``FIELDS`` with its reduction (pointscore.fields): counts
are integer sums, float sums (distances, count errors, NAE terms) exact accumulators,
and AP keeps every prediction's (score, is-TP per threshold) as sorted runs of
(image id, row) order that a merge only appends. So ``merge`` is associative and
commutative to the last bit, and nothing is ever an average of averages. States over
the same image twice, or scored with different options, refuse to merge.
"""
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pointscore.kernels.ap import RECALL_POINTS, precision_at_recall_points

from . import fields
from .arrow_values import arrow_array, numpy_values
from .errors import InputError, shown
from .fields import EXACT, RUNS, SUM, ApRun, Field
from .summary import summarize

STATE_VERSION = 2
# The sums kept for each group of images (a breakdown bin, an image label): its images,
# true and predicted counts, counting errors, and TP, FP, FN per threshold.
IMAGE_GROUP = (("images", SUM, ""), ("gt", SUM, ""), ("pred", EXACT, ""), ("abs", EXACT, ""),
               ("sq", EXACT, ""), ("nae", EXACT, ""), ("nae_images", SUM, ""),
               ("tp", SUM, "t"), ("fp", SUM, "t"), ("fn", SUM, "t"))
FIELDS = (
    # per class
    Field("gt_points", SUM),
    Field("pred_points", SUM),               # every predicted point, kept or not
    Field("tp", SUM, "t"),
    Field("fp", SUM, "t"),
    Field("fn", SUM, "t"),
    Field("dist", EXACT, "t"),               # distances of TP pairs
    Field("pred_count", EXACT),              # kept predictions (or predicted counts)
    Field("abs_err", EXACT),                 # per image |predicted - true count| ...
    Field("sq_err", EXACT),                  # ... its square,
    Field("nae", EXACT),                     # |error| / true where true > 0,
    Field("nae_images", SUM),                # and the images that have true > 0
    Field("game", SUM, "l"),                 # GAME(l) cell errors summed over images
    Field("ap", RUNS),
    # pooled over classes (counts summed per image)
    Field("pooled_abs", EXACT, keys=None),
    Field("pooled_sq", EXACT, keys=None),
    Field("pooled_nae", EXACT, keys=None),
    Field("pooled_nae_images", SUM, keys=None),
    Field("game_pooled", SUM, "l", keys=None),
    # per breakdown bin, and per label of the images table's breakdown_by column
    # (pooled over classes): the same sums over each group of images
    *(Field(f"bin_{name}", reduce, "b" + axes, keys=None) for name, reduce, axes in IMAGE_GROUP),
    *(Field(f"label_{name}", reduce, axes, keys="labels") for name, reduce, axes in IMAGE_GROUP),
    # per level of the ground truth's level column (pooled over classes)
    Field("level_gt", SUM, keys="levels"),
    Field("level_tp", SUM, "t", keys="levels"),
)
KEYS = ("classes", "levels", "labels")
# States kept by version 1 (history stores) still load: it lacked levels and labels.
READABLE_VERSIONS = (1, 2)
NEW_IN_2 = {f.name for f in FIELDS if f.keys in ("levels", "labels")}
BY_NAME = {f.name: f for f in FIELDS}
SAMPLER_HINT = ("each image may be scored once; a distributed sampler that pads its last "
                "batch by repeating images does this")


class MetricState:
    """The sufficient statistics of the scored images (see the module doc).

    Parameters
    ----------
    options : ScoringOptions
        How the images were scored; states merge only with equal scoring options.
    classes : list
        Class values, ascending.
    has_scores : bool
        Whether the predictions had scores (AP lists are kept).
    count_only : False, 'integer' or 'float'
        Whether the predictions were per-image counts (no localisation metrics), and
        of which kind.
    levels : list
        The values of the ground truth's level column (``level_column``) among these
        images, ascending.
    labels : list
        The images' labels of the ``breakdown_by`` column, ascending.
    """

    def __init__(self, options, classes, has_scores, count_only=False, levels=(), labels=()):
        self.options = options
        self.classes = list(classes)
        self.levels = list(levels)
        self.labels = list(labels)
        self.has_scores = bool(has_scores)
        self.count_only = count_only or False
        self.image_runs = []  # sorted pa.Arrays of the scored image ids, disjoint
        self.values = {f.name: fields.zeros(f, self._shape(f)) for f in FIELDS}

    # -- shape ------------------------------------------------------------------------
    @property
    def thresholds(self):
        return np.array(self.options.thresholds, np.float64)

    def _size(self, axis):
        if axis == "t":
            return len(self.options.thresholds)
        if axis == "l":
            return 0 if self.options.game is None else self.options.game + 1
        return 0 if self.options.bins is None else len(self.options.bins) + 1

    def _shape(self, field):
        lead = (len(getattr(self, field.keys)),) if field.keys else ()
        return lead + tuple(self._size(axis) for axis in field.axes)

    def __getitem__(self, name):
        return self.values[name]

    @property
    def n_images(self):
        return sum(len(run) for run in self.image_runs)

    @property
    def image_ids(self):
        """The scored image ids, ascending."""
        if not self.image_runs:
            return pa.nulls(0, pa.int64())
        ids = pa.concat_arrays(self.image_runs)
        return ids.take(pc.sort_indices(ids)) if len(self.image_runs) > 1 else ids

    @property
    def gt_points(self):
        return self.values["gt_points"]

    # -- update -----------------------------------------------------------------------
    def add_images(self, ids):
        """Record the scored images (sorted ids), refusing any already recorded."""
        if len(ids):
            self._check_disjoint(self.image_runs, [ids])
            self.image_runs.append(ids)

    def add(self, name, values, classes=None, keys=None):
        """Add values into a field: into the flat ``keys`` of the field when given,
        else into the rows ``classes`` (indices into the list keying its leading axis,
        repeats allowed), else into the whole field, elementwise."""
        field, target = BY_NAME[name], self.values[name]
        values = np.asarray(values)
        if keys is None and classes is not None:
            width = int(np.prod(self._shape(field)[1:], dtype=np.int64))
            keys = (np.asarray(classes, np.int64)[:, None] * width + np.arange(width)).ravel()
        if keys is None:
            keys = np.arange(values.size)
        if field.reduce == SUM:
            np.add.at(target.reshape(-1), np.asarray(keys, np.int64), values.reshape(-1))
        else:
            target.add(keys, values.reshape(-1))

    def add_ap_runs(self, runs):
        """Append one ApRun per class (None where a class has no predictions)."""
        for c, run in enumerate(runs):
            if run is not None:
                self.values["ap"][c].append(run)

    # -- merge --------------------------------------------------------------------------
    def merge(self, *others):
        """A new state of these states' images together; the inputs are unchanged.

        Parameters
        ----------
        *others : MetricState
            States of other images, scored with the same options.

        Returns
        -------
        MetricState

        Raises
        ------
        InputError
            When the states were scored with other options, have an image in common,
            or their image ids differ in type.
        """
        out = self
        for other in others:
            out = out._merged(other)
        return out

    def _merged(self, other):
        if self.options.scoring() != other.options.scoring():
            differ = sorted(k for k, v in self.options.scoring().items()
                            if other.options.scoring()[k] != v)
            raise InputError(f"cannot merge states scored with different options "
                             f"({', '.join(differ)})")
        for what in ("has_scores", "count_only"):
            if getattr(self, what) != getattr(other, what):
                kind = "with and without scores" if what == "has_scores" \
                    else "of count-only and of point predictions"
                raise InputError(f"cannot merge states {kind}")
        self._check_disjoint(self.image_runs, other.image_runs)
        keys = {name: _union(getattr(self, name), getattr(other, name), name)
                for name in KEYS}
        out = MetricState(self.options, keys["classes"], self.has_scores, self.count_only,
                          keys["levels"], keys["labels"])
        out.image_runs = self.image_runs + other.image_runs
        mine = {name: _positions(keys[name], getattr(self, name)) for name in KEYS}
        theirs = {name: _positions(keys[name], getattr(other, name)) for name in KEYS}
        for f in FIELDS:
            size = len(keys[f.keys]) if f.keys else 0
            a = fields.aligned(f, self.values[f.name], mine.get(f.keys), size)
            b = fields.aligned(f, other.values[f.name], theirs.get(f.keys), size)
            out.values[f.name] = fields.merged(f, a, b)
        return out

    @staticmethod
    def _check_disjoint(runs, new_runs):
        every = [r for r in runs + new_runs if len(r)]
        types = {str(r.type) for r in every}
        if len(types) > 1:
            raise InputError("cannot merge states whose image ids differ in type: "
                             + ", ".join(sorted(types)))
        if len(every) < 2:
            return
        lows = [r[0].as_py() for r in every]
        order = sorted(range(len(every)), key=lambda i: lows[i])
        high = every[order[0]][-1].as_py()
        for i in order[1:]:
            if lows[i] <= high:  # ranges overlap: look at the ids themselves
                ids = pa.concat_arrays(every)
                counts = pc.value_counts(ids)
                twice = counts.field("values").filter(pc.greater(counts.field("counts"), 1))
                if len(twice):
                    raise InputError(f"image {shown(twice[0].as_py())} is scored twice "
                                     f"({len(twice)} images are): {SAMPLER_HINT}")
                return
            high = max(high, every[i][-1].as_py())

    # -- AP ---------------------------------------------------------------------------------
    def ap_lists(self, c):
        """Class c's AP lists as one ApRun in (image id, row) order (kept, so that the
        layout happens once); None when the class has no predictions. Runs are copied
        out one at a time and let go, so the lists are held about once, not twice."""
        runs = sorted(self.values["ap"][c], key=lambda run: run.image_ids[0].as_py())
        if len(runs) > 1:
            self.values["ap"][c] = []
            ids = pa.concat_arrays([run.image_ids for run in runs])
            counts = np.concatenate([run.counts for run in runs])
            score = np.empty(int(counts.sum()))
            tp_bits = np.empty((score.size, runs[0].tp_bits.shape[1]), np.uint8)
            at = 0
            while runs:
                run = runs.pop(0)
                score[at:at + run.score.size] = run.score
                tp_bits[at:at + run.score.size] = run.tp_bits
                at += run.score.size
            del run
            if not _ascending(ids):  # interleaved runs: sort their images, rows follow
                by_image = numpy_values(pc.sort_indices(ids))
                starts = np.cumsum(counts) - counts
                counts = counts[by_image]
                rows = np.repeat(starts[by_image] - (np.cumsum(counts) - counts), counts) \
                    + np.arange(counts.sum())
                ids, score, tp_bits = ids.take(arrow_array(by_image)), score[rows], tp_bits[rows]
            self.values["ap"][c] = [ApRun(ids, counts, score, tp_bits, len(self.thresholds))]
        return self.values["ap"][c][0] if self.values["ap"][c] else None

    def interpolated_precision(self, xp=np):
        """COCO's interpolated precision at the 101 recall points
        ``kernels.ap.RECALL_POINTS``, per class and threshold: (n_classes, n_t, 101),
        NaN for a class without ground truth (and everywhere without scores). AP is
        its mean over the last axis; plotted against the recall points it is the PR
        curve."""
        n_t = len(self.thresholds)
        sampled = np.full((len(self.classes), n_t, RECALL_POINTS.size), np.nan)
        if not self.has_scores:
            return sampled
        for c in range(len(self.classes)):
            if self.gt_points[c] == 0:
                continue
            run = self.ap_lists(c) or ApRun.empty(n_t)
            sampled[c] = precision_at_recall_points(xp, run.tp_bits, n_t,
                                                    _descending_order(run.score),
                                                    int(self.gt_points[c]))
        return sampled

    def summary(self, device="cpu", warnings=()):
        """The summary of these images (docs/metrics.md, section 7).

        Parameters
        ----------
        device : {'cpu', 'gpu'}
            What ``config.device`` says.
        warnings : sequence of str
            The run's warnings.

        Returns
        -------
        dict
            JSON-ready.
        """
        return summarize(self, device, warnings)

    # -- storage ----------------------------------------------------------------------------
    def state_dict(self):
        """The state as plain values: what a training rank sends, or a run keeps.

        Returns
        -------
        dict
            numpy arrays, numbers, strings and lists only (no code is pickled);
            ``MetricState.from_state_dict`` makes the state again.
        """
        data = {"version": STATE_VERSION, "options": self.options.scoring(),
                "device": self.options.device, "classes": list(self.classes),
                "levels": list(self.levels), "labels": list(self.labels),
                "has_scores": self.has_scores, "count_only": self.count_only}
        ids = pa.concat_arrays(self.image_runs) if self.image_runs else pa.nulls(0, pa.int64())
        data["image_ids"] = ids.to_numpy(zero_copy_only=False).astype(
            np.int64 if pa.types.is_integer(ids.type) else str)
        data["image_runs"] = np.array([len(r) for r in self.image_runs], np.int64)
        for f in FIELDS:
            data.update(fields.to_plain(f, self.values[f.name], f.name))
        return data

    @classmethod
    def from_state_dict(cls, data):
        """state_dict's inverse.

        Parameters
        ----------
        data : dict
            What ``state_dict`` returned.

        Returns
        -------
        MetricState

        Raises
        ------
        InputError
            When ``data`` is not a state of this version of pointscore.
        """
        from .options import ScoringOptions
        if not isinstance(data, dict) or data.get("version") not in READABLE_VERSIONS:
            raise InputError(f"not a pointscore metric state of version {STATE_VERSION}")
        scoring = dict(data["options"])
        options = ScoringOptions.create(**{**scoring, "device": data["device"],
                                           "bins": scoring["bins"]})
        state = cls(options, data["classes"], data["has_scores"], data["count_only"],
                    data.get("levels", ()), data.get("labels", ()))
        ids, at = data["image_ids"], 0
        for n in np.asarray(data["image_runs"], np.int64):
            state.image_runs.append(pa.array(ids[at:at + n]))
            at += n
        for f in FIELDS:
            if f.name in NEW_IN_2 and data["version"] == 1:
                continue  # a state of version 1 has none: they stay empty
            state.values[f.name] = fields.from_plain(f, data, f.name, state._shape(f),
                                                     len(state.thresholds))
        return state

    def __getstate__(self):  # pickling (Dask) goes through the declared storage
        return self.state_dict()

    def __setstate__(self, data):
        self.__dict__.update(MetricState.from_state_dict(data).__dict__)


def _union(a, b, what="classes"):
    values = list(dict.fromkeys(list(a) + list(b)))
    try:
        return sorted(values)
    except TypeError:  # int and str values: not comparable, a merge error
        raise InputError(f"cannot merge states whose {what} differ in type: "
                         + ", ".join(sorted({type(v).__name__ for v in values}))) from None


def _positions(union, values):
    """Where each of ``values`` (ascending) sits in ``union`` (ascending, holding them)."""
    if not values:
        return np.zeros(0, np.int64)
    return np.searchsorted(np.array(union, dtype=object), values)


def _descending_order(score):
    """Stable argsort by descending score. The scores are negated in place for the
    sort and back after it (both exact), because a negated copy of lists that may be
    most of memory would raise the peak by 8 bytes per prediction."""
    np.negative(score, out=score)
    try:
        return np.argsort(score, kind="stable")
    finally:
        np.negative(score, out=score)


def _ascending(ids):
    return len(ids) < 2 or pc.all(pc.less(ids[:-1], ids[1:])).as_py()
