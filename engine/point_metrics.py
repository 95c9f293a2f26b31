"""PointMetrics: scoring inside a training or validation loop, batch by batch.

``update`` only reads and checks each image's arrays and keeps them (tens of
microseconds an image); the images are scored by the one pipeline, as ``evaluate``
scores tables, when about a million points have gathered and at ``compute``, and each
scored piece's MetricState merged exactly. So ``compute`` returns the summary
``evaluate`` gives on the same images, bit for bit, and a metric's state is what
the metrics need (counts, exact sums, the AP lists), never the points: ranks and
workers merge states, not data.
"""
import numpy as np

from . import loop_inputs as read
from .advice import needs_extents, units_warning
from .errors import InputError, named
from .extents import bounding_boxes, extents
from .options import DEFAULT_KNN_K, ScoringOptions

FLUSH_POINTS = 1 << 20  # points gathered before they are scored: memory stays bounded
STATE_FORMAT = "pointscore.PointMetrics"
STATE_VERSION = 1


class PointMetrics:
    """Point metrics accumulated over batches: ``update`` per batch, ``compute`` at the
    end, ``merge`` across ranks.

    Parameters
    ----------
    thresholds, normalize, match, score_threshold, radius, knn_k, game, breakdown, bins,
    device, level_column, breakdown_by
        As ``pointscore.evaluate`` takes them, with the same defaults. ``radius`` and
        ``level_column`` name keys of the targets' dicts holding each ground-truth
        point's scale and level; ``breakdown_by`` a key holding the image's label.

    Examples
    --------
    >>> metric = PointMetrics(thresholds=[4, 8])
    >>> metric.update([{"points": [[10, 10]], "scores": [0.9]}], [{"points": [[11, 10]]}])
    >>> metric.compute()["micro"]["f1"]
    [1.0, 1.0]
    """

    def __init__(self, thresholds=None, normalize="none", match="greedy",
                 score_threshold=None, radius=None, knn_k=DEFAULT_KNN_K, game=None,
                 breakdown=None, bins=None, device="auto", level_column=None,
                 breakdown_by=None):
        self._settings = dict(thresholds=thresholds, normalize=normalize, match=match,
                              score_threshold=score_threshold, radius=radius, knn_k=knn_k,
                              game=game, breakdown=breakdown, bins=bins,
                              level_column=level_column, breakdown_by=breakdown_by,
                              device=device)
        self.options = ScoringOptions.create(thresholds, normalize, match, score_threshold,
                                             device, radius, knn_k, game, breakdown, bins,
                                             level_column, breakdown_by)
        # As checked: plain lists, whatever sequence was given (a state is JSON-able).
        self._settings["thresholds"] = list(self.options.thresholds)
        self._settings["bins"] = None if bins is None else list(self.options.bins)
        self._needs_sizes = normalize in ("wh", "diag") or game is not None \
            or breakdown == "density"
        self.reset()

    # -- the loop ------------------------------------------------------------------------------
    def reset(self):
        """Forget every image."""
        self._state = None
        self._extents = []  # per scored image with ground truth, for the units warning
        self._next_id = 0
        self._kind = None  # what the first image had: labels, scores, counts
        self._id_type = None  # int or str: every image id is of one kind
        self._label_type = None  # 'i' or 'U': labels are integers or strings
        self._seen = set()  # every id added since the reset: each image once
        self._clear_buffer()

    def _clear_buffer(self):
        self._images, self._points = [], 0  # gathered, not scored yet

    def update(self, preds, target, image_ids=None):
        """Add a batch of images.

        Parameters
        ----------
        preds : list of dict
            One per image: ``points`` (N x 2) and optionally ``scores`` (N) and
            ``labels`` (N); or, for a count-only model, ``count`` (a number).
        target : list of dict
            One per image: ``points`` (M x 2), optionally ``labels`` (M), ``size``
            (width, height; needed by ``normalize='wh'|'diag'``, GAME and the density
            breakdown), and the keys named by ``radius`` and ``level_column`` (M values)
            and ``breakdown_by`` (the image's label).
        image_ids : sequence, optional
            Each image's id (integers or strings), for example its index in the
            dataset: needed when metrics of several ranks or workers are merged. By
            default images are numbered in update order.

        Arrays may be numpy arrays, lists, or objects exposing ``__array__``,
        ``__dlpack__`` or ``__cuda_array_interface__`` (PyTorch tensors, CuPy arrays).

        Raises
        ------
        InputError
            A problem with an image, named by its place in the batch.
        """
        if len(preds) != len(target):
            raise InputError(f"update: {len(preds)} predictions for {len(target)} targets")
        if image_ids is None:
            ids = range(self._next_id, self._next_id + len(target))
        else:
            ids = read.host_array(image_ids, "image_ids")
            if ids.ndim != 1 or len(ids) != len(target):
                raise InputError(f"update: image_ids must hold one id per image "
                                 f"({len(target)}), got shape {tuple(ids.shape)}")
            ids = ids.tolist()
        kind, id_type, label_type = self._kind, self._id_type, self._label_type
        seen, images = set(), []
        for i, (pred, gt, image_id) in enumerate(zip(preds, target, ids)):
            id_type = _id_type(i, image_id, id_type)
            if image_id in self._seen or image_id in seen:
                raise InputError(f"image_ids[{i}]: image {image_id!r} was already added")
            image = self._read_image(i, pred, gt, image_id, kind)
            kind = image["kind"]
            label_type = _label_type(i, image, label_type)
            seen.add(image_id)
            images.append(image)
        # All or nothing: a batch with a bad image adds none of its images.
        self._kind, self._id_type, self._label_type = kind, id_type, label_type
        self._images += images
        self._seen |= seen
        self._points += sum(image["points"] for image in images)
        self._next_id += len(target)
        if self._points >= FLUSH_POINTS:
            self._flush()

    def _read_image(self, i, pred, gt, image_id, kind):
        """One image's arrays, read and checked: a dict of them."""
        if not isinstance(pred, dict) or not isinstance(gt, dict):
            raise InputError(f"preds[{i}] and target[{i}] must be dicts")
        mine = ("labels" in gt, "scores" in pred, "count" in pred, "labels" in pred)
        if kind is not None and mine != kind:
            raise InputError(f"preds[{i}]/target[{i}]: {_kind_text(mine)}, where the first "
                             f"image had {_kind_text(kind)}: give every image the same keys")
        gt_labels, scores, count, pred_labels = mine
        if count and gt_labels:
            raise InputError(f"preds[{i}]/target[{i}]: a count-only prediction counts the "
                             "whole image: give no labels")
        if not count and gt_labels != pred_labels:
            raise InputError(f"preds[{i}]/target[{i}]: give labels on both sides or neither")
        for name, side in (("target", gt), ("preds", pred)):
            if "points" not in side and not (side is pred and count):
                raise InputError(f"{name}[{i}]: no 'points' (an image without any: an empty "
                                 "list)")
        image = {"kind": mine, "id": image_id,
                 "gt": read.points(gt["points"], f"target[{i}]['points']")}
        n_gt = image["gt"].shape[0]
        if gt_labels:
            image["gt_labels"] = read.per_point(gt["labels"], n_gt, f"target[{i}]['labels']",
                                                "labels")
        for name, key in (("radius", "radii"), ("level_column", "levels")):
            column = getattr(self.options, name)  # a key of the target's dict
            if column is None:
                continue
            if column not in gt:
                raise InputError(f"target[{i}]: no {column!r} ({name}) key")
            image[key] = read.per_point(gt[column], n_gt, f"target[{i}][{column!r}]", key)
        label = self.options.breakdown_by
        if label is not None:
            if label not in gt:
                raise InputError(f"target[{i}]: no {label!r} (breakdown_by) key")
            image["label"] = read.image_label(gt[label], f"target[{i}][{label!r}]")
        if self._needs_sizes:
            if "size" not in gt:
                raise InputError(f"target[{i}]: no 'size' (width, height), which "
                                 f"normalize={self.options.normalize!r}, GAME and the "
                                 "density breakdown need")
            image["size"] = read.size(gt["size"], f"target[{i}]['size']")
        n_pred = 0
        if count:
            image["count"] = read.count(pred["count"], f"preds[{i}]['count']")
        else:
            image["pred"] = read.points(pred["points"], f"preds[{i}]['points']")
            n_pred = image["pred"].shape[0]
            if scores:
                image["scores"] = read.per_point(pred["scores"], n_pred,
                                                 f"preds[{i}]['scores']", "scores")
            if pred_labels:
                image["pred_labels"] = read.per_point(pred["labels"], n_pred,
                                                      f"preds[{i}]['labels']", "labels")
        image["points"] = n_gt + n_pred
        return image

    def _flush(self):
        """Score the gathered images and merge their state. Images that cannot be
        scored (what ``update`` cannot check alone) are dropped, so that the metric
        stays usable, and the error says so."""
        if not self._images:
            return
        from .entrypoints import evaluate
        gt, pred, images = self._tables()
        try:
            report = evaluate(gt, pred, images, **self._settings)
            state = report.state if self._state is None else self._state.merge(report.state)
        except InputError as exc:
            dropped = len(self._images)
            self._seen -= {image["id"] for image in self._images}
            self._clear_buffer()
            raise InputError([f"the {dropped} images added since the last compute could not "
                              f"be scored, and were dropped: {line}" for line in exc.raw]) \
                from None
        if needs_extents(self.options) and not self._kind[2] and gt["x"].size:
            self._extents.append(extents(bounding_boxes(gt["image_id"], gt["x"], gt["y"])))
        self._state = state
        self._clear_buffer()

    def _tables(self):
        images = self._images
        first = images[0]

        def joined(key):
            return np.concatenate([image[key] for image in images])

        ids = np.array([image["id"] for image in images])
        xy = joined("gt")
        gt = {"image_id": np.repeat(ids, [image["gt"].shape[0] for image in images]),
              "x": xy[:, 0], "y": xy[:, 1]}
        labels = str if self._label_type == "U" else np.int64  # an empty list reads as ints
        if "gt_labels" in first:
            gt["class"] = joined("gt_labels").astype(labels)
        if "radii" in first:
            gt[self.options.radius] = joined("radii")
        if "levels" in first:  # images without points have no say in the levels' type
            gt[self.options.level_column] = np.concatenate(
                [image["levels"] for image in images if image["levels"].size]
                or [np.zeros(0, np.int64)])
        if "count" in first:
            # Floats always (a density map's sum is one), so that the count column has one
            # type however the images are cut into pieces.
            pred = {"image_id": ids,
                    "count": np.array([image["count"] for image in images], np.float64)}
        else:
            xy = joined("pred")
            pred = {"image_id": np.repeat(ids, [image["pred"].shape[0] for image in images]),
                    "x": xy[:, 0], "y": xy[:, 1]}
            if "scores" in first:
                pred["score"] = joined("scores")
            if "pred_labels" in first:
                pred["class"] = joined("pred_labels").astype(labels)
        table = {"image_id": ids}
        if "size" in first:
            table["width"], table["height"] = np.array([image["size"] for image in images]).T
        if "label" in first:
            table[self.options.breakdown_by] = np.array([image["label"] for image in images])
        return gt, pred, table

    # -- results -------------------------------------------------------------------------------
    def compute(self):
        """The summary of every image added: what ``pointscore.evaluate`` returns for
        them as tables, bit for bit.

        Returns
        -------
        dict
            The JSON-ready summary (docs/metrics.md, section 7).
        """
        self._flush()
        from .backends import backend_for
        device = backend_for(self.options.device)[0].name
        warnings = []
        if self._kind is not None and not self._kind[2]:  # as evaluate: none for counts
            warning = units_warning(self.options, lambda: np.concatenate(
                self._extents) if self._extents else np.zeros(0))
            warnings = [warning] if warning else []
        state = self._state if self._state is not None else self._empty_state()
        return state.summary(device, named(warnings))

    def _empty_state(self):
        from .state import MetricState
        return MetricState(self.options, [], False)

    def merge(self, other):
        """A new metric of both metrics' images (each must hold images of its own).

        Parameters
        ----------
        other : PointMetrics
            Scored with the same options.

        Returns
        -------
        PointMetrics

        Raises
        ------
        InputError
            Other options, or an image in both (give ``image_ids`` on every rank).
        """
        if self.options.scoring() != other.options.scoring():
            raise InputError("cannot merge metrics made with different options")
        mine, theirs = self.state_dict(), other.state_dict()
        out = PointMetrics.from_state_dict(mine)
        other_state = PointMetrics.from_state_dict(theirs)
        if other_state._state is not None:
            out._state = other_state._state if out._state is None \
                else out._state.merge(other_state._state)
        out._extents += other_state._extents
        out._next_id = max(out._next_id, other_state._next_id)
        if other_state._kind not in (None, out._kind) and out._kind is not None:
            raise InputError(f"cannot merge a metric of images with {_kind_text(out._kind)} "
                             f"and one with {_kind_text(other_state._kind)}")
        for trait in ("_kind", "_id_type", "_label_type"):
            mine, theirs = getattr(out, trait), getattr(other_state, trait)
            if mine is not None and theirs not in (None, mine):
                raise InputError("cannot merge a metric of integer ids or labels with one of "
                                 "strings")
            setattr(out, trait, mine if mine is not None else theirs)
        return out

    # -- storage -------------------------------------------------------------------------------
    def state_dict(self):
        """The metric's state as plain values (numpy arrays, numbers, strings, lists):
        what a rank sends to the others. The images added so far are scored first.

        Returns
        -------
        dict
        """
        self._flush()
        return {"format": STATE_FORMAT, "version": STATE_VERSION,
                "options": dict(self._settings), "next_id": self._next_id,
                "kind": None if self._kind is None else list(self._kind),
                "id_type": None if self._id_type is None else self._id_type.__name__,
                "label_type": self._label_type,
                "extents": np.concatenate(self._extents) if self._extents else np.zeros(0),
                "state": None if self._state is None else self._state.state_dict()}

    @classmethod
    def from_state_dict(cls, data):
        """``state_dict``'s inverse.

        Parameters
        ----------
        data : dict

        Returns
        -------
        PointMetrics

        Raises
        ------
        InputError
            When ``data`` is not a PointMetrics state of this version.
        """
        from .state import MetricState
        if not isinstance(data, dict) or data.get("format") != STATE_FORMAT \
                or data.get("version") != STATE_VERSION:
            raise InputError(f"not a {STATE_FORMAT} state of version {STATE_VERSION}")
        out = cls(**data["options"])
        out._next_id = int(data["next_id"])
        out._kind = None if data["kind"] is None else tuple(data["kind"])
        out._id_type = {"int": int, "str": str, None: None}[data["id_type"]]
        out._label_type = data["label_type"]
        extents_ = np.asarray(data["extents"], np.float64)
        out._extents = [extents_] if extents_.size else []
        out._state = None if data["state"] is None else MetricState.from_state_dict(data["state"])
        return out


def _kind_text(kind):
    gt_labels, scores, count, pred_labels = kind
    parts = ["labels" if gt_labels else "no labels",
             "a count" if count else ("scores" if scores else "no scores")]
    return " and ".join(parts)


def _id_type(i, image_id, known):
    """The kind of the ids (int or str), checked against the kind known so far."""
    if not isinstance(image_id, (int, str)) or isinstance(image_id, bool):
        raise InputError(f"image_ids[{i}]: an image id is an integer or a string, got "
                         f"{type(image_id).__name__}")
    kind = int if isinstance(image_id, int) else str
    if known not in (None, kind):
        raise InputError(f"image_ids[{i}]: {image_id!r} is {_KIND_NAMES[kind][0]}, where the "
                         f"ids so far are {_KIND_NAMES[known][1]}: give ids of one kind")
    if kind is int and not -2**63 <= image_id < 2**63:
        raise InputError(f"image_ids[{i}]: {image_id} is beyond 64-bit integers")
    return kind


def _label_type(i, image, known):
    """The kind of the labels ('i' or 'U'), checked against the kind known so far."""
    for key, side in (("gt_labels", "target"), ("pred_labels", "preds")):
        labels = image.get(key)
        if labels is None or labels.size == 0:
            continue
        kind = labels.dtype.kind
        if known not in (None, kind):
            raise InputError(f"{side}[{i}]['labels']: {_KIND_NAMES[kind][1]}, where the "
                             f"labels so far are {_KIND_NAMES[known][1]}: give labels of one "
                             "kind")
        known = kind
    return known


_KIND_NAMES = {int: ("an integer", "integers"), str: ("a string", "strings"),
               "i": ("an integer", "integers"), "U": ("a string", "strings")}
