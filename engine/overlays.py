"""The worst images drawn, for the HTML report: each image's points over its photo.

The images are those the report lists as worst (largest |predicted - true| count,
``report_figures.worst_order``), each submission its own. A run need not keep match
rows for them: their points and matches come again from the run's inputs
(pointscore.overlay_matches).

Each image is drawn at one threshold d (default the middle one, as the report's other
single-threshold panels) over its file under an image root, or over a blank canvas of
its size (pointscore.overlay_drawing: bounded thumbnails, markers). Image ids are
checked before any file is opened: one that could name a file outside the root is an
InputError.
"""
from __future__ import annotations

import html
import math
import os
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from .errors import InputError, first_line, label_of, option, shown
from .html_parts import chosen_threshold, note
from .limits import TRUSTED, Limits
from .overlay_drawing import (
    BLANK,
    MIN_SIDE,
    draw_points,
    jpeg_uri,
    legend,
    load_thumbnail,
    thumbnail_size,
)
from .overlay_matches import Drawn, counts_of, image_sizes, read_rows, rescore
from .report_figures import worst_order

DEFAULT_PATTERN = "{image_id}.jpg"
MAX_OVERLAYS = 40          # thumbnails in one report, all submissions together
UNSAFE = ("/", "\\", "..", "\0")


@dataclass(frozen=True)
class Sources:
    """Where the reports' points come from, to read the worst images' points again.

    Attributes
    ----------
    gt : path or table
        The ground truth every report was scored against (as given to
        ``pointscore.evaluate``).
    pred : Mapping
        Submission name (the reports' keys) -> its predictions, as given.
    images : path or table, optional
        The images table, as given (sizes of the blank canvases, ``normalize``).
    limits : pointscore.Limits, optional
        The run's bounds on what is read (default: ``Limits()``).
    """
    gt: object
    pred: Mapping
    images: object = None
    limits: Limits | None = None


@dataclass(frozen=True)
class OverlayOptions:
    """What the overlays draw on: the image files and the threshold.

    Attributes
    ----------
    image_root : str or None
        A local directory of the image files; None: blank canvases.
    image_pattern : str
        An image's file name under ``image_root``: ``str.format`` of ``image_id``.
    threshold : float or None
        The threshold d whose matching is drawn (None: the middle one).
    """
    image_root: str | None = None
    image_pattern: str = DEFAULT_PATTERN
    threshold: float | None = None

    @classmethod
    def create(cls, image_root: str | os.PathLike | None = None,
               image_pattern: str = DEFAULT_PATTERN,
               threshold: float | None = None) -> OverlayOptions:
        """Check the options, before any work.

        Raises
        ------
        InputError
            When ``image_root`` is not a local directory, ``image_pattern`` does not
            name the image by ``{image_id}`` alone, or ``threshold`` is not a number > 0.
        """
        problems = pattern_problems(image_pattern)
        if image_root is not None:
            image_root = os.fspath(image_root)
            if not os.path.isdir(image_root):
                problems.append(f"{option('image_root')} {label_of(image_root)}: not a "
                                "directory (a local one)")
        if threshold is not None:
            if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) \
                    or not 0 < threshold < math.inf:
                problems.append(f"{option('overlay_threshold')} must be a number > 0, got "
                                f"{shown(threshold)}")
            else:
                threshold = float(threshold)
        if problems:
            raise InputError(problems)
        return cls(image_root, image_pattern, threshold)


def pattern_problems(pattern: str) -> list[str]:
    """What is wrong with an image-file pattern: it must be text whose only
    replacement field is ``image_id`` (with a format spec, e.g. ``{image_id:04d}``).

    Returns
    -------
    list of str
        One line per problem; empty when the pattern is usable.
    """
    head = f"{option('image_pattern')} {shown(pattern)}"
    if not isinstance(pattern, str) or not pattern:
        return [f"{head}: expected a file name pattern such as '{DEFAULT_PATTERN}'"]
    try:
        fields = [(name, spec) for _, name, spec, _ in string.Formatter().parse(pattern)
                  if name is not None]
    except ValueError as exc:
        return [f"{head}: {first_line(exc)}"]
    if not fields or any(name != "image_id" or "{" in (spec or "") for name, spec in fields):
        return [f"{head}: must name the image by {{image_id}} alone (a format spec "
                "allowed, e.g. {image_id:04d}), and no other field"]
    if any(re.search(r"\d{4,}", spec or "") for _, spec in fields):
        return [f"{head}: a format width of 1,000 characters or more names no file"]
    return []


def image_file(root: str, pattern: str, image_id: object) -> str:
    """The path of an image's file under ``root``: ``pattern.format(image_id=...)``.

    Parameters
    ----------
    root : str
        The image root directory.
    pattern : str
        The file name pattern (see ``pattern_problems``).
    image_id : int or str
        The image's id, as in the tables.

    Returns
    -------
    str
        The resolved path, inside ``root``.

    Raises
    ------
    InputError
        When the id holds '/', '\\\\', '..' or NUL, the pattern cannot format it, or the
        resolved path (links followed) is outside ``root``: nothing is read then.
    """
    text = str(image_id)
    if any(part in text for part in UNSAFE):
        raise InputError(f"image id {shown(image_id)}: refused as a file name under "
                         f"{option('image_root')} (it holds '/', '\\', '..' or NUL)")
    try:
        name = pattern.format(image_id=image_id)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise InputError(f"{option('image_pattern')} {shown(pattern)} cannot name image id "
                         f"{shown(image_id)}: {first_line(exc)}") from None
    if "\0" in name:
        raise InputError(f"image id {shown(image_id)}: refused as a file name under "
                         f"{option('image_root')} (its name holds NUL)")
    base = os.path.realpath(root)
    path = os.path.realpath(os.path.join(base, name))
    if os.path.commonpath([base, path]) != base:
        raise InputError(f"image id {shown(image_id)}: its file {shown(name)} is outside "
                         f"{option('image_root')}; refused")
    return path


# -- drawing ------------------------------------------------------------------------------

# -- the section --------------------------------------------------------------------------

def overlay_section(reports: Mapping, worst: int, sources: Sources,
                    options: OverlayOptions) -> str:
    """The report's section of the worst images drawn: each submission's own worst.

    Parameters
    ----------
    reports : Mapping
        Submission name -> pointscore.Report.
    worst : int
        Images per submission, at most (and MAX_OVERLAYS in all).
    sources : Sources
        The inputs, to read the worst images' points again.
    options : OverlayOptions
        The image root, file pattern and threshold.

    Returns
    -------
    str
        The section's HTML.

    Raises
    ------
    InputError
        An image id that could name a file outside the image root, a pattern that
        cannot format an id, or inputs that can no longer be read.
    """
    parts = ["<h2 id=overlays>Worst images drawn</h2>"]
    notes, picked = [], {}
    for name, report in reports.items():
        if report.state.count_only:
            notes.append(f"{name}: count-only predictions, no points to draw.")
        elif name not in sources.pred:
            notes.append(f"{name}: no predictions input given to read its points from.")
        elif not report.images.num_rows:
            notes.append(f"{name}: no images.")
        else:
            picked[name] = None
    each = min(worst, max(1, MAX_OVERLAYS // max(len(picked), 1)))
    left_out = list(picked)[MAX_OVERLAYS:]  # one image each already fills the report
    if left_out:
        notes.append(f"{', '.join(left_out)}: not drawn (at most {MAX_OVERLAYS} overlays "
                     "in a report).")
        picked = dict.fromkeys(list(picked)[:MAX_OVERLAYS])
    for name in picked:
        images = reports[name].images
        order = worst_order(images.column("gt_count").to_numpy(),
                            images.column("pred_count").to_numpy(), each)
        picked[name] = images.column("image_id").take(pa.array(order, pa.int64())).to_pylist()
    every = list(dict.fromkeys(i for ids in picked.values() for i in ids))
    # Every id is checked before any file is opened.
    paths = {i: image_file(options.image_root, options.image_pattern, i) for i in every} \
        if options.image_root is not None else {}

    thresholds = next(iter(reports.values())).state.thresholds
    d = float(thresholds[chosen_threshold(thresholds, options.threshold)])
    parts.append(_intro(reports, each, worst, d, options))
    parts.extend(note(line) for line in notes)
    if not every:
        return "\n".join(parts)
    limits = sources.limits or TRUSTED
    gt_options = next(iter(reports.values())).state.options
    gt = read_rows(sources.gt, "gt", every, limits, gt_options.extra_columns("gt"))
    images = None if sources.images is None else read_rows(sources.images, "images", every,
                                                           limits)
    sizes = image_sizes(images)
    photos = {}  # image id -> load_thumbnail's answer: each file decoded once
    for name, ids in picked.items():
        report = reports[name]
        t = chosen_threshold(report.state.thresholds, options.threshold)
        drawn = rescore(report, sources.pred[name], gt, images, ids, t, limits)
        run = counts_of(report.images, ids)
        figures = []
        for image_id in ids:
            if image_id in paths and image_id not in photos:
                photos[image_id] = load_thumbnail(paths[image_id])
            points = drawn.get(image_id) or Drawn(image_id, np.zeros((0, 2)), np.zeros(0, bool),
                                                  np.zeros((0, 2)), np.zeros(0, bool))
            figures.append(_figure(name, points, run.get(image_id), sizes.get(image_id),
                                   photos.get(image_id), options,
                                   float(report.state.thresholds[t])))
        parts += [f"<h3>{html.escape(name)}</h3>", '<div class="overlays">',
                  *figures, "</div>"]
    return "\n".join(parts)


def _intro(reports, each, worst, d, options):
    options_of = next(iter(reports.values())).state.options
    kept = "" if options_of.score_threshold is None else \
        f" Predictions with score below {options_of.score_threshold:g} are not drawn."
    fewer = "" if each >= worst else \
        f" (the first {each} of the {worst} listed: at most {MAX_OVERLAYS} in a report)"
    over = (f"over its file under the image root ({html.escape(options.image_pattern)})"
            if options.image_root is not None else "over a blank canvas of its size")
    return (f'<p class="muted">Each submission\'s own worst images, as listed above{fewer}, '
            f"with its points at d={d:g}, each image {over}: x, y in the image's pixels "
            f"(x right, y down), matched as the run matched them.{kept}</p>\n" + legend())


def _figure(name, drawn, counts, size, photo, options, d):
    """One image's thumbnail and caption."""
    from PIL import Image
    lines = []
    thumb, original, why = photo if photo is not None else (None, None, None)
    if thumb is None:
        if options.image_root is not None:
            file = options.image_pattern.format(image_id=drawn.image_id)
            lines.append(f"{file}: {why}; drawn over a blank canvas.")
        if original is None:
            original, whence = _blank_size(size, drawn)
            lines.append(f"Blank canvas of {original[0]:g}x{original[1]:g} ({whence}).")
        thumb = Image.new("RGB", thumbnail_size(*original), BLANK)
    else:
        thumb = thumb.copy()  # the decoded photo serves every submission
    scale = (thumb.size[0] / original[0], thumb.size[1] / original[1])
    outside = draw_points(thumb, scale, drawn)
    if outside:
        lines.append(f"{outside} points fall outside the image and are not drawn.")
    if drawn.counts_differ:
        lines.append("The points read again differ from those scored (did an input change "
                     "during the run?): this drawing may not match the tables.")
    true, pred = (counts or (0, 0, None))[:2]
    tp, fp = int(drawn.pred_matched.sum()), int((~drawn.pred_matched).sum())
    missed = int((~drawn.gt_matched).sum())
    caption = (f"{drawn.image_id}: true {true}, predicted {pred} ({pred - true:+d}); at "
               f"d={d:g}: TP {tp}, FP {fp}, missed {missed}.")
    alt = f"image {drawn.image_id} of {name} with its points"
    extra = "".join(f"<br>{html.escape(line)}" for line in lines)
    return (f'<figure><img alt="{html.escape(alt)}" width={thumb.size[0]} '
            f'height={thumb.size[1]} src="{jpeg_uri(thumb)}">'
            f"<figcaption>{html.escape(caption)}{extra}</figcaption></figure>")


def _blank_size(size, drawn):
    """A blank canvas's size: the images table's, else the points' extent."""
    if size is not None:
        return size, "its size in the images table"
    xy = np.concatenate([drawn.gt_xy, drawn.pred_xy])
    xy = xy[np.isfinite(xy).all(axis=1)]
    if not xy.size or xy.max() <= 0:
        return (float(MIN_SIDE), float(MIN_SIDE)), "no size known"
    extent = np.maximum(xy.max(axis=0), 0)
    width, height = (float(math.ceil(v * 1.02)) or 1.0 for v in extent)
    return (width, height), "the points' extent: the images table gives no size"
