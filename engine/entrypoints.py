"""The entry points: score tables in memory, streamed shard by shard, or on a Dask
cluster. All three are the same pipeline (pointscore.pipeline) over other sources and
runners, and give the same summary bit for bit."""
from .backends import backend_for
from .choices import DEFAULT_SHARD_POINTS
from .errors import InputError, option
from .limits import TRUSTED, check_workers
from .options import ScoringOptions
from .pipeline import Outputs, Report, check_run_options, run
from .protocols import finish, resolve
from .runners import DaskMap, dask_client, serial_map
from .sinks import destination_of
from .sources import open_inputs


def evaluate(gt, pred, images=None, *, protocol=None, thresholds=None, normalize=None,
             match=None, score_threshold=None, device="auto", radius=None, knn_k=None,
             game=None, breakdown=None, bins=None, level_column=None, breakdown_by=None,
             matches=False, limits=None, strict=False) -> Report:
    """Score predicted points against ground truth, in memory.

    Parameters
    ----------
    gt, pred, images : path or table
        Ground truth (``image_id, x, y[, class]``), predictions (``image_id, x,
        y[, score, class]``, or count-only ``image_id, count[, class]``) and the
        optional images table (``image_id[, width, height]``): a Parquet, Arrow or CSV
        path, a Parquet dataset directory, a ``pyarrow.Table``, a pandas or polars
        DataFrame or a dict of arrays, long or nested layout (docs/metrics.md).
    protocol : str, optional
        A benchmark's protocol (``pointscore.protocols``: 'nwpu', 'qnrf',
        'shanghaitech', 'jhu', 'p2pnet'; docs/protocols.md): it sets the scoring
        options that are not given, and adds its own table to the summary
        (``"protocol"``).
    thresholds : sequence of float, optional
        Distance thresholds d (default 0.01, 0.02, ..., 0.10).
    normalize : {'none', 'wh', 'diag', 'knn'}, optional
        Units of the thresholds (default 'none'): coordinates as given, divided by the
        image's width and height, by its diagonal, or each gt's k-NN scale
        (docs/scaled.md).
    match : {'greedy', 'nearest', 'hungarian', 'kuhn'}, optional
        The one-to-one matching rule of the operating point (default 'greedy').
    score_threshold : float, optional
        Keep predictions with ``score >= score_threshold`` at the operating point.
    device : {'auto', 'cpu', 'gpu'}
        Where the kernels run; every device gives the same bits.
    radius : str, optional
        A ground-truth column of per-point scales: a pair matches when its distance is
        at most the threshold times the gt's radius.
    knn_k : int, optional
        Neighbours of ``normalize='knn'`` (default 3).
    game : int, optional
        Add GAME(0..game) (needs image sizes).
    breakdown : {'count', 'density'}, optional
        Add the metrics per bin of true count, or of count per megapixel.
    bins : sequence of float, optional
        Upper bin edges of ``breakdown`` (default NWPU-Crowd's 0, 100, 500, 5000).
    level_column : str, optional
        A ground-truth column of per-point levels (NWPU-Crowd's head-size ``level``):
        add each level's points, TP and recall per threshold, and their mean.
    breakdown_by : str, optional
        An images-table column of per-image labels (weather, luminance, scene): add
        the metrics of each label's images.
    matches : bool
        Keep every prediction's match per threshold in ``Report.matches``.
    limits : pointscore.Limits, optional
        Bounds on work and memory (default: ``Limits()``; a leaderboard scoring
        strangers' files: ``Limits.create(untrusted=True)``).
    strict : bool
        Warnings (``Report.warnings``: options that do not fit the data, a score column
        under another name, ...) are an InputError, raised before anything is scored.

    Returns
    -------
    Report
        ``summary`` (the JSON-ready dict), ``per_image``, ``state``, ``matches``.

    Raises
    ------
    InputError
        Bad tables or options: one line per problem.
    """
    limits = limits or TRUSTED
    chosen, scoring = resolve(protocol, dict(
        thresholds=thresholds, normalize=normalize, match=match,
        score_threshold=score_threshold, device=device, radius=radius, knn_k=knn_k,
        game=game, breakdown=breakdown, bins=bins, level_column=level_column,
        breakdown_by=breakdown_by), images, limits)
    options = ScoringOptions.create(**scoring)
    backend, note = backend_for(options.device)
    inputs = open_inputs(gt, pred, images, options, matches=matches, limits=limits,
                         protocol=chosen is not None)
    report = run(inputs, options, Outputs(matches=matches), mapper=serial_map,
                 device=backend.name, note=note, limits=limits, strict=strict)
    return finish(chosen, report, lambda changes: evaluate(
        gt, pred, images, **{**scoring, **changes}, limits=limits, strict=strict))


def evaluate_stream(gt, pred, images=None, *, shard_points=DEFAULT_SHARD_POINTS,
                    per_image_path=None, matches=False, matches_path=None, strategy="auto",
                    scratch_dir=None, progress=False, limits=None, strict=False,
                    resume=False, protocol=None, **scoring) -> Report:
    """``evaluate`` for inputs larger than memory, with the same summary bit for bit.

    Parquet inputs (files and hive-partitioned dataset directories) are read shard by
    shard: the images, in ascending id order, are cut into shards of about
    ``shard_points`` points (an image is never split), each read, scored and merged;
    other inputs are read whole.

    Parameters
    ----------
    gt, pred, images
        As ``evaluate``.
    shard_points : int
        Points (ground truth and predictions) per shard.
    per_image_path, matches_path : str or pointscore.outputs.Destination, optional
        Write the per-image (match) rows to this file shard by shard, instead of keeping
        them in the Report: Parquet, CSV or JSON lines by the extension (.parquet,
        .csv, .jsonl).
    matches : bool
        Keep the match rows in ``Report.matches`` (when no matches_path is given).
    strategy : {'auto', 'filter', 'partition'}
        How a shard's rows are read (see the README): filtered by image id range, or
        from per-shard partitions written to ``scratch_dir`` (default TMPDIR) first.
    progress : bool or None
        Draw a progress bar on stderr (None: when stderr is a terminal).
    limits : pointscore.Limits, optional
        As ``evaluate``.
    strict : bool
        As ``evaluate``: warnings are an InputError, before any row is written.
    resume : bool
        Keep each finished shard in ``scratch_dir/pointscore-resume`` and take those a
        killed run of the same inputs and options left (pointscore.resume); the
        inputs must be files.
    protocol : str, optional
        As ``evaluate``.
    **scoring
        The scoring options of ``evaluate``.

    Returns
    -------
    Report

    Raises
    ------
    InputError
        Bad tables or options: one line per problem.
    """
    limits = limits or TRUSTED
    chosen, scoring = resolve(protocol, scoring, images, limits)
    options = ScoringOptions.create(**scoring)
    check_run_options(strategy, shard_points, True, scratch_dir)
    backend, note = backend_for(options.device)
    outputs = _outputs(per_image_path, matches_path, matches)
    inputs = open_inputs(gt, pred, images, options, stream=True, mapper=serial_map,
                         matches=outputs.matches, limits=limits, protocol=chosen is not None)
    checkpoints = _checkpoints(resume, scratch_dir, (gt, pred, images), options,
                               shard_points, outputs.matches)  # once the inputs passed
    report = run(inputs, options, outputs, mapper=serial_map, device=backend.name,
                 note=note, limits=limits, shard_points=shard_points, strategy=strategy,
                 scratch_dir=scratch_dir, progress=progress, strict=strict,
                 checkpoints=checkpoints)
    return finish(chosen, report, lambda changes: evaluate_stream(
        gt, pred, images, shard_points=shard_points, strategy=strategy,
        scratch_dir=scratch_dir, limits=limits, strict=strict, **{**scoring, **changes}))


def evaluate_distributed(gt, pred, images=None, *, workers=None, scheduler=None,
                         shard_points=DEFAULT_SHARD_POINTS, per_image_path=None,
                         matches=False, matches_path=None, strategy="auto", scratch_dir=None,
                         progress=False, limits=None, strict=False, resume=False,
                         protocol=None, **scoring) -> Report:
    """``evaluate_stream`` with its tasks on a Dask cluster: a local one of ``workers``
    processes, or the one at ``scheduler``; the same summary bit for bit.

    Parameters
    ----------
    workers : int, optional
        Start a local cluster of this many single-threaded worker processes.
    scheduler : str, optional
        The address of a running cluster (``tcp://host:8786``).
    **others
        As ``evaluate_stream``.

    Returns
    -------
    Report

    Raises
    ------
    InputError
        Bad tables or options.
    DistributedError
        The cluster could not finish the run.
    """
    if (workers is None) == (not scheduler):
        raise InputError(f"give {option('workers')} (a local cluster) or "
                         f"{option('scheduler')} (an existing one), not both or neither")
    limits = limits or TRUSTED
    chosen, scoring = resolve(protocol, scoring, images, limits)
    options = ScoringOptions.create(**scoring)
    if not scheduler:
        check_workers(workers)
    can_partition = not scheduler or scratch_dir is not None
    check_run_options(strategy, shard_points, can_partition, scratch_dir)
    with dask_client(workers, scheduler, options.device) as client:
        mapper = DaskMap(client)
        device, note = next(mapper(_device_of, [options.device], "device"))

        def score(options, outputs, checkpoints=None, progress=False):
            inputs = open_inputs(gt, pred, images, options, stream=True, mapper=mapper,
                                 piece_rows=shard_points, matches=outputs.matches,
                                 limits=limits, protocol=chosen is not None)
            checkpoints = checkpoints and checkpoints()  # once the inputs passed
            return run(inputs, options, outputs, mapper=mapper, device=device, note=note,
                       limits=limits, shard_points=shard_points,
                       piece_rows=shard_points, strategy=strategy, scratch_dir=scratch_dir,
                       can_partition=can_partition, progress=progress, strict=strict,
                       checkpoints=checkpoints)

        outputs = _outputs(per_image_path, matches_path, matches)
        report = score(options, outputs, lambda: _checkpoints(
            resume, scratch_dir, (gt, pred, images), options, shard_points, outputs.matches),
            progress)
        return finish(chosen, report, lambda changes: score(
            ScoringOptions.create(**{**scoring, **changes}), Outputs()))


def _checkpoints(resume, scratch_dir, sources, options, shard_points, matches):
    """The run's pointscore.resume.Checkpoints, or None without ``resume``."""
    if not resume:
        return None
    from .resume import Checkpoints
    inputs = dict(zip(("gt", "pred", "images"), sources))
    return Checkpoints.open(scratch_dir, inputs, options.scoring(), shard_points, matches)


def _outputs(per_image_path, matches_path, matches):
    """The run's Outputs: where the row tables go, in the formats their names give."""
    return Outputs(destination_of(per_image_path), destination_of(matches_path),
                   matches or matches_path is not None)


def _device_of(device):
    """The device the workers score on, and its note (run on a worker)."""
    backend, note = backend_for(device)
    return backend.name, note
