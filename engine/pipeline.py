"""One scoring pipeline for every path. A shard (a set of whole images) goes load,
batch, scales, match, tally, state; the driver merges the shards' states and writes
their rows shard by shard; ``pointscore.summary`` turns the merged state into the summary.

In memory, streamed and distributed runs differ only in where a shard's rows come
from (pointscore.sources) and who runs ``score_shard`` (pointscore.runners).
"""
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import advice, check, parquet, tally
from . import plan as planning
from .arrow_values import arrow_array, arrow_table, numpy_values
from .backends import MAXIMUM_MATCHING_NOTE, SCALED_NOTE, backend_for
from .batch import build_batch, group_keys, rank_tables
from .counts import Counts
from .crowd import add_game
from .errors import InputError, label_of, named, option
from .matching import kept_predictions, match_batch
from .progress import Progress
from .scales import gt_scales
from .sinks import RowSink
from .sources import MemorySource
from .state import MetricState

log = logging.getLogger("pointscore")
STRATEGIES = ("auto", "filter", "partition")


@dataclass
class Report:
    """What a run gives.

    Attributes
    ----------
    summary : dict
        The JSON-ready summary (docs/metrics.md).
    per_image : pyarrow.Table or None
        One row per (image, class) with points, and one per image without any; None
        when it was written to a file.
    state : MetricState
        The sufficient statistics, to merge with other runs' states.
    notes : list of str
        Lines for the user (the device chosen, what ran where).
    matches : pyarrow.Table or None
        Every prediction's match per threshold, when asked for and not written to a file.
    images : pyarrow.Table
        Per image, summed over classes: image_id, gt_count, pred_count and, with
        points, tp, fp, fn at the middle threshold (what the HTML report draws).
    warnings : list of str
        What looks like a mistake, with its fix (pointscore.advice; the summary's
        ``warnings``).
    """
    summary: dict
    per_image: pa.Table
    state: MetricState
    notes: list = field(default_factory=list)
    matches: pa.Table = None
    images: pa.Table = None
    warnings: list = field(default_factory=list)
    _marked: list = field(default_factory=list, repr=False)  # warnings, options marked

    def warning_lines(self, name_of):
        """The warnings with each option named by ``name_of(name)`` (the command line
        names flags)."""
        return named(self._marked, name_of)


@dataclass
class Settings:
    """Everything a shard needs besides its own rows."""
    options: object          # ScoringOptions
    device: str
    classes: list
    has_class: bool
    has_scores: bool
    count_only: object
    sources: dict            # role -> ParquetSource, or None for rows held by the shard
    matches: bool
    limits: object           # the run's bounds (pair and component budgets)


@dataclass
class Shard:
    number: int
    ids: pa.Array            # its images, ascending
    images: check.Table      # the images table's rows of them, or None
    reads: dict              # role -> MemorySource rows, or (row groups, id range) to read
    scratch: str             # the partition directory, or None


@dataclass
class ShardResult:
    state: MetricState
    per_image: pa.Table
    matches: pa.Table
    images: pa.Table


def score_shard(shard, settings):
    """Score one shard: (MetricState, per-image rows, match rows or None, image rows)."""
    tables = {role: _read(role, shard, settings) for role in ("gt", "pred")}
    return score_tables(tables["gt"], tables["pred"], shard.images, shard.ids, settings)


def _read(role, shard, settings):
    source, how = settings.sources[role], shard.reads[role]
    if source is None:
        return how
    if shard.scratch is not None:
        table, rows = parquet.read_partition(source, shard.scratch, shard.number)
    else:
        table, rows = parquet.read_filtered(source, *how)
    return parquet.load(table, source, rows)


def score_tables(gt, pred, images, ids, settings):
    """Score checked tables holding the points of the images ``ids``."""
    options = settings.options
    backend, _ = backend_for(settings.device)
    levels, gt_level = tally.key_ranks(gt.level) if gt.level is not None else ((), None)
    labels, image_label = tally.image_labels(images, ids) or ((), None)
    state = MetricState(options, settings.classes, settings.has_scores, settings.count_only,
                        levels, labels)
    sizes = tally.image_sizes(images, ids)
    classes = settings.classes if settings.has_class else None
    thresholds = state.thresholds
    if isinstance(pred, Counts):
        counts = _count_groups(gt, pred, images, ids, classes)
        tally.add_counts(state, ids, counts, sizes, image_label)
        if gt_level is not None:
            tally.add_level_points(state, gt_level)
        matches = None
    else:
        batch = build_batch(gt, pred, images, options.normalize, ids=ids, classes=classes,
                            gt_level=gt_level)
        kept = kept_predictions(batch, options.score_threshold)
        matching = match_batch(batch, options, kept, backend,
                               gt_scales(batch, options, images), settings.limits)
        counts = tally.tally(state, batch, kept, matching, sizes, image_label)
        if options.game is not None:
            table_kept = None if options.score_threshold is None \
                else pred.score >= options.score_threshold
            add_game(state, gt, pred, ids, sizes, state.classes, table_kept)
        matches = tally.match_rows(batch, thresholds, kept, matching) if settings.matches \
            else None
    per_image = tally.per_image_rows(ids, state.classes, settings.has_class, counts, thresholds)
    return ShardResult(state, per_image, matches,
                       _image_rows(ids, counts, int((thresholds.size - 1) // 2)))


def _count_groups(gt, pred, images, ids, classes):
    """Count-only predictions as GroupCounts: each group's true count and predicted
    count (0 for an (image, class) pair without a row)."""
    ranks = rank_tables(gt, pred, images, ids=ids, classes=classes)
    image, klass, gt_group, pred_group = group_keys(ranks)
    predicted = np.zeros(image.size, pred.count.dtype)
    predicted[pred_group] = pred.count  # one row per group at most
    return tally.GroupCounts(image, klass, np.bincount(gt_group, minlength=image.size),
                             predicted, np.zeros(image.size, np.int64))


def _image_rows(ids, counts, t):
    """Per image, summed over classes: gt_count, pred_count and tp/fp/fn at threshold t."""
    n = len(ids)
    columns = {"image_id": ids,
               "gt_count": tally.per_image_sums(counts.image, counts.gt, n),
               "pred_count": tally.per_image_sums(counts.image, counts.pred, n)}
    if counts.tp is not None:
        tp = tally.per_image_sums(counts.image, counts.tp[:, t], n)
        columns["tp"] = tp
        columns["fp"] = columns["pred_count"] - tp
        columns["fn"] = columns["gt_count"] - tp
    return arrow_table(columns)


# -- the driver ----------------------------------------------------------------------------

@dataclass
class Outputs:
    """Where a run's rows go: Destinations written shard by shard, in the formats
    their names give (None: kept in memory)."""
    per_image: object = None
    matches_to: object = None
    matches: bool = False


def run(inputs, options, outputs, *, mapper, device, note, limits, shard_points=None,
        piece_rows=None, strategy="auto", scratch_dir=None, can_partition=True,
        progress=False, strict=False, checkpoints=None):
    """Plan, score and merge the shards of checked ``inputs`` (pointscore.sources): the
    Report. ``mapper(fn, items, name, **shared)`` runs the tasks (pointscore.runners);
    ``device``/``note``: the backend's name and its line for the user; ``strict``:
    warnings (pointscore.advice) are an InputError, raised before anything is scored
    or written; ``checkpoints`` (pointscore.resume): shards a killed run finished are
    taken from there, the others kept there as they finish, all removed at the end."""
    warnings = advice.warnings_for(inputs, options)
    if strict and warnings:
        raise InputError(warnings)
    ids, n = inputs.image_counts()
    plan = planning.cut(ids, n, inputs.images, shard_points)
    settings = Settings(options, device, inputs.classes(), inputs.has_class, inputs.has_scores,
                        inputs.count_only,
                        {role: s if isinstance(s, parquet.ParquetSource) else None
                         for role, s in inputs.sources().items()}, outputs.matches, limits)
    parquet_sources = [s for s in inputs.sources().values()
                       if isinstance(s, parquet.ParquetSource)]
    spans = {s.role: planning.group_shards(s, plan) for s in parquet_sources}
    factor = planning.read_factor(parquet_sources, [spans[s.role] for s in parquet_sources])
    if strategy == "auto":
        strategy = "filter" if factor <= planning.MAX_READ_FACTOR or not can_partition \
            else "partition"
    if parquet_sources:
        log.info("pointscore: %d shards; filtered reads would read the data %.2f times: %s",
                 plan.n_shards, factor, strategy)
    scratch = tempfile.mkdtemp(prefix="pointscore-", dir=scratch_dir) \
        if strategy == "partition" and parquet_sources else None
    try:
        if scratch is not None and len(plan.universe):
            _partition(parquet_sources, plan, scratch, mapper, piece_rows, shard_points)
        shards = _shards(plan, inputs, spans, scratch)
        with Progress(len(plan.universe), int(plan.points.sum()),
                      enabled=None if progress is None else bool(progress)) as bar, \
                RowSink(outputs.per_image) as per_image, \
                RowSink(outputs.matches_to, keep=outputs.matches, name="matches") as matches:
            state, images = None, []
            kept = checkpoints.finished() if checkpoints is not None else set()
            fresh = mapper(score_shard, [s for s in shards if s.number not in kept], "score",
                           settings=settings)
            for number in range(len(shards)):  # in shard order, kept or scored now
                if number in kept:
                    result = checkpoints.load(number, ShardResult)
                else:
                    result = next(fresh)
                    if checkpoints is not None:
                        checkpoints.save(number, result)
                state = result.state if state is None else state.merge(result.state)
                per_image.write(result.per_image)
                matches.write(result.matches)
                images.append(result.images)
                begin, end = plan.bounds(number)
                bar.update(end - begin, int(plan.points[begin:end].sum()))
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    if checkpoints is not None:
        checkpoints.remove()
    notes = [note] if note else []
    if device == "gpu" and options.scaled:
        notes.append(SCALED_NOTE)
    elif device == "gpu" and options.match in ("hungarian", "kuhn"):
        notes.append(MAXIMUM_MATCHING_NOTE.format(options.match))
    for line in notes:
        log.info("pointscore: %s", line)
    return Report(state.summary(device, named(warnings)), per_image.table, state, notes,
                  matches.table, pa.concat_tables(images), named(warnings), warnings)


def _partition(sources, plan, scratch, mapper, piece_rows, buffer_rows):
    firsts = planning.id_values(plan.universe.take(arrow_array(plan.firsts)))
    tasks = [(s, number, groups) for s in sources
             for number, groups in enumerate(planning.pieces(s, piece_rows))]
    for _ in mapper(parquet.partition, tasks, "partition", shard_firsts=firsts,
                    scratch=scratch, buffer_rows=buffer_rows or parquet.BATCH_ROWS):
        pass


def _shards(plan, inputs, spans, scratch):
    images = inputs.images
    order = None if images is None else numpy_values(pc.sort_indices(images.image_id))
    shards = []
    for number in range(plan.n_shards):
        begin, end = plan.bounds(number)
        ids = plan.ids(number)
        id_range = (ids[0].as_py(), ids[-1].as_py()) if len(ids) else None
        reads = {}
        for role, source in inputs.sources().items():
            if isinstance(source, MemorySource):
                # One shard holds every row: the table itself, no copy.
                reads[role] = source.table if plan.n_shards == 1 else source.rows_of(ids)
            elif scratch is None:
                first, last = spans[role]
                reads[role] = (np.flatnonzero((first <= number) & (last >= number)), id_range)
            else:  # its partition files in the scratch directory
                reads[role] = None
        shard_images = None if images is None else \
            _images_of(images, order[begin:end])
        shards.append(Shard(number, ids, shard_images, reads, scratch))
    return shards


def _images_of(images, rows):
    """The rows of the images table at ``rows``, as a check.Table."""
    return check.Table(label=images.label, image_id=images.image_id.take(arrow_array(rows)),
                       width=None if images.width is None else images.width[rows],
                       height=None if images.height is None else images.height[rows],
                       attribute=None if images.attribute is None
                       else images.attribute.take(arrow_array(rows)))


def check_run_options(strategy, shard_points, can_partition, scratch_dir=None):
    """The options of streamed and distributed runs, before any work."""
    if strategy not in STRATEGIES:
        raise InputError(f"strategy must be one of {', '.join(STRATEGIES)}, got '{strategy}'")
    if isinstance(shard_points, bool) or not isinstance(shard_points, (int, np.integer)) \
            or shard_points < 1:
        raise InputError(f"{option('shard_points')} must be a whole number >= 1, got "
                         f"{shard_points!r}")
    if strategy == "partition" and not can_partition:
        raise InputError(f"strategy 'partition' on a remote cluster needs a "
                         f"{option('scratch_dir')} that every worker shares")
    if scratch_dir is not None and not (os.path.isdir(scratch_dir)
                                        and os.access(scratch_dir, os.W_OK | os.X_OK)):
        raise InputError(f"{option('scratch_dir')} {label_of(scratch_dir)}: not a directory "
                         "this process can write in")
