"""What each subcommand does with its parsed arguments: library calls, then outputs.

Each command imports the parts of the library it uses when it runs: checking a
submission (validate) must not pay for loading Numba and scipy."""
import json
import os
import sys
from contextlib import ExitStack

from ..errors import InputError, label_of, option, shown
from ..files import check_input_path
from ..limits import BOUNDS, Limits
from ..outputs import (
    STDOUT,
    destination,
    output_problems,
    summary_json,
    table_format,
    write_json,
    write_text,
)
from ..read import READ_ERRORS, check_footers, is_parquet, metadata_points
from ..sinks import RowSink
from ..terminal import (
    class_table,
    crowd_table,
    history_table,
    protocol_table,
    ranking_table,
    text_table,
)
from .parsers import evaluate_parser, flag
from .say import say

SCORING = ("protocol", "thresholds", "normalize", "match", "score_threshold", "device",
           "radius", "knn_k")
GATE_FAILED = 3  # evaluate's exit status when --fail-if holds
INVALID_SUBMISSIONS = 4  # compare's exit status when some submissions are invalid


def _limits(args):
    """The run's Limits from --untrusted and the --max-* flags."""
    return Limits.create(args.untrusted, **{name: getattr(args, f"max_{name}")
                                            for name in BOUNDS})


def _scoring(args):
    """The scoring options of pointscore.evaluate from the parsed arguments (None where
    not given: the protocol's, else the default)."""
    return dict({name: getattr(args, name) for name in SCORING}, strict=args.strict)


def _check_outputs(outputs, inputs, tables=()):
    """Refuse outputs that cannot be written before the work, not after it; the
    ``tables`` among them must name a known format."""
    problems = output_problems(outputs, inputs)
    for name in tables if not problems else ():
        if outputs.get(name):
            try:
                table_format(name, outputs[name])
            except InputError as exc:
                problems += exc.raw
    if problems:
        raise InputError(problems)


def streams(gt, pred, shard_points, limits):
    """Whether to stream: a Parquet input that is a dataset directory, or Parquet inputs
    holding more points together than one shard (points, not rows: a nested-layout row
    holds an image's). Their metadata is read only once the path and the footer's size
    pass the limits' checks: a FIFO would block, a huge footer take gigabytes."""
    import pyarrow.parquet as pq

    from .. import remote
    if any(remote.is_remote(p) and is_parquet(p) for p in (gt, pred)):
        return True  # read as it is scored, shard by shard, whatever its size
    parquet = [p for p in (gt, pred) if is_parquet(p) and os.path.exists(p)]
    if any(os.path.isdir(p) for p in parquet):
        return True
    for path in parquet:
        check_footers(path, check_input_path(path, limits.untrusted), label_of(path), limits)
    try:
        points = sum(metadata_points(pq.ParquetFile(p).metadata) for p in parquet)
    except READ_ERRORS:
        return False  # reading it whole says what is wrong
    return points > shard_points


def _resolved(args, scoring, limits):
    """The run's ScoringOptions: the options given, completed by --protocol, checked
    before any work."""
    from ..options import ScoringOptions
    from ..protocols import resolve
    _, chosen = resolve(args.protocol, {k: v for k, v in scoring.items()
                                        if k not in ("strict", "protocol")},
                        args.images, limits)
    options = ScoringOptions.create(**chosen)
    if args.knn_k is not None and options.normalize != "knn":
        raise InputError(f"usage error: {option('knn_k')} applies to {option('normalize')} "
                         "knn only")
    return options


def _overlays(args, thresholds):
    """write_report's overlay keywords from --image-root, --image-pattern and
    --overlay-threshold, checked before any work (the threshold against the run's
    ``thresholds``)."""
    from ..overlays import DEFAULT_PATTERN, OverlayOptions
    given = {name: getattr(args, name)
             for name in ("image_root", "image_pattern", "overlay_threshold")}
    for name, value in given.items():
        if value is not None and not args.report:
            raise InputError(f"usage error: {option(name)} needs {option('report')}")
    if args.image_pattern is not None and args.image_root is None:
        raise InputError(f"usage error: {option('image_pattern')} needs {option('image_root')}")
    OverlayOptions.create(args.image_root, args.image_pattern or DEFAULT_PATTERN,
                          args.overlay_threshold)
    if args.overlay_threshold is not None and args.overlay_threshold not in thresholds:
        raise InputError(f"usage error: {option('overlay_threshold')} "
                         f"{args.overlay_threshold:g} is not one of the run's thresholds "
                         f"({', '.join(f'{d:g}' for d in thresholds)})")
    return dict(given, image_pattern=args.image_pattern or DEFAULT_PATTERN)


def _with_warnings(summary, lines):
    """The summary with its warnings as ``lines`` (options named by their flags), each
    said on stderr."""
    for line in lines:
        say(f"warning: {line}")
    return dict(summary, warnings=lines)


def evaluate_command(args):
    from ..entrypoints import evaluate, evaluate_distributed, evaluate_stream
    outputs = {"json": args.json, "per_image": args.per_image, "matches": args.matches,
               "report": args.report}
    _check_outputs(outputs, [("gt", args.gt), ("pred", args.pred), ("images", args.images)],
                   tables=("per_image", "matches"))
    if args.workers and args.scheduler:
        raise InputError(f"usage error: give {option('workers')} (a local cluster) or "
                         f"{option('scheduler')} (an existing one), not both")
    scoring = dict(_scoring(args), game=args.game, breakdown=args.breakdown, bins=args.bins,
                   level_column=args.level_column, breakdown_by=args.breakdown_by)
    limits = _limits(args)
    options = _resolved(args, scoring, limits)
    overlays = _overlays(args, options.thresholds)
    kept = _before_history(args, options, limits)
    distributed = args.workers is not None or args.scheduler
    with ExitStack() as stack:
        # Every output takes its place only once all are complete.
        dest = {name: stack.enter_context(destination(path))
                for name, path in outputs.items() if path and name != "report"}
        # A run kept in a history keeps its per-image rows in memory: the gate reads them.
        per_image_to = None if args.history else dest.get("per_image")
        sharded = dict(shard_points=args.shard_points, scratch_dir=args.scratch_dir,
                       per_image_path=per_image_to, matches_path=dest.get("matches"),
                       progress=None, resume=args.resume)
        streamed = bool(distributed) or args.resume or streams(args.gt, args.pred,
                                                               args.shard_points, limits)
        if distributed:
            report = evaluate_distributed(args.gt, args.pred, args.images, **scoring, **sharded,
                                          workers=args.workers, scheduler=args.scheduler,
                                          limits=limits)
        elif streamed:
            report = evaluate_stream(args.gt, args.pred, args.images, **scoring, **sharded,
                                     limits=limits)
        else:
            report = evaluate(args.gt, args.pred, args.images, **scoring,
                              matches=args.matches is not None, limits=limits)
        for name, table in (("per_image", report.per_image), ("matches", report.matches)):
            written = streamed and (per_image_to if name == "per_image" else True)
            if name in dest and not written:  # rows held in memory
                with RowSink(dest[name], name=name) as sink:
                    sink.write(table)
        for line in report.notes:
            say(line)
        summary = _with_warnings(report.summary, report.warning_lines(flag))
        if "json" in dest:
            write_text(dest["json"], summary_json(summary))
        if args.report:  # last: it is renamed into place at once
            from ..compare import default_names
            from ..html_report import write_report
            from ..overlays import Sources
            name = default_names([args.pred])[0]
            write_report(args.report, {name: report}, **overlays,
                         sources=Sources(args.gt, {name: args.pred}, args.images, limits))
    if STDOUT not in outputs.values():
        sys.stdout.write(text_table(report.summary) + crowd_table(report.summary)
                         + (class_table(report.summary) if args.per_class else "")
                         + protocol_table(report.summary))
    if args.history:
        return _keep_in_history(args, report, kept)
    return report


def _before_history(args, options, limits):
    """The nightly flags' checks, before any work: their usage, the store, the gate's
    expression, the ground truth's hash and the baseline. None without --history."""
    if not args.history:
        for name in ("name", "baseline", "fail_if"):
            if getattr(args, name):
                raise InputError(f"usage error: {option(name)} needs {option('history')}")
        return None
    if args.baseline and not args.fail_if:
        raise InputError(f"usage error: {option('baseline')} is what {option('fail_if')} "
                         "compares with: give both")
    from types import SimpleNamespace

    from .. import gate, history
    from ..content_hash import ground_truth_hash
    history.check_store(args.history)
    conditions = gate.parse(args.fail_if, options.thresholds) if args.fail_if else None
    if conditions and any(c.p is not None for c in conditions) and not args.images:
        raise InputError(f"usage error: {option('fail_if')} with 'at p < P' pairs the run's "
                         f"images with the baseline's: give {option('images')}, so that both "
                         "score the same images")
    gt_hash = ground_truth_hash(args.gt, args.images, options, limits)
    baseline = None
    if conditions is not None:
        baseline = history.baseline_of(args.history, args.baseline or "last", gt_hash,
                                       history.config_key({"config": options.config("cpu")}))
        if baseline is None:
            say("gate: no earlier run on this ground truth with these options yet: "
                "nothing to compare with")
    return SimpleNamespace(conditions=conditions, gt_hash=gt_hash, baseline=baseline)


def _keep_in_history(args, report, kept):
    """Gate the run against its baseline (when there is one), then keep it in the store."""
    from .. import gate, history
    verdict = None if kept.baseline is None else \
        gate.judge(kept.conditions, report, kept.baseline, kept.baseline.row["run_id"])
    run_id = history.append(args.history, report, name=args.name, gt_hash=kept.gt_hash,
                            gate=None if verdict is None else
                            ("failed" if verdict.failed else "passed"),
                            baseline=None if kept.baseline is None
                            else kept.baseline.row["run_id"])
    for line in verdict.lines if verdict else ():
        say(f"gate: {line}")
    say(f"run {run_id} kept in {label_of(args.history)}")
    return GATE_FAILED if verdict is not None and verdict.failed else report


def run_command(args):
    from .job import job_argv
    parser = evaluate_parser()
    evaluate_args = parser.parse_args(job_argv(args.job, parser) + args.overrides)
    return evaluate_command(evaluate_args)


def history_command(args):
    from .. import history, remote
    if not remote.is_remote(args.store) and not os.path.isdir(args.store):
        raise InputError(f"{label_of(args.store)}: no such history store (a directory "
                         f"that {option('history')} made)")
    rows = [row for row in history.runs(args.store)
            if args.name is None or row["name"] == args.name]
    if args.json:
        with destination(args.json) as path:
            write_text(path, json.dumps([dict(row, time=row["time"].isoformat())
                                         for row in rows], indent=2, allow_nan=False) + "\n")
    if args.report:
        from ..history_report import write_history_report
        write_history_report(args.report, rows)
    if args.json != STDOUT:
        sys.stdout.write(history_table(rows))
    return 0


def compare_command(args):
    from .. import compare as comparing
    _check_outputs({"json": args.json, "report": args.report, "csv": args.csv},
                   [("gt", args.gt), ("images", args.images), *(("pred", p) for p in args.pred)])
    names = [name.strip() for name in args.names.split(",")] if args.names else None
    limits = _limits(args)
    scoring = _scoring(args)
    overlays = _overlays(args, _resolved(args, scoring, limits).thresholds)
    comparison = comparing.compare(args.gt, args.pred, args.images, names=names,
                                   **scoring, n_resamples=args.n_resamples,
                                   seed=args.seed, confidence=args.confidence,
                                   rank_by=args.rank_by, limits=limits)
    notes = dict.fromkeys(line for r in comparison.reports.values() for line in r.notes)
    for line in notes:
        say(line)
    summary = _with_warnings(comparison.summary, comparison.warning_lines(flag))
    if args.report and comparison.reports:
        from ..html_report import write_report
        from ..overlays import Sources
        given = dict(zip(names or comparing.default_names(args.pred), args.pred))
        write_report(args.report, comparison.reports, summary, **overlays,
                     sources=Sources(args.gt, given, args.images, limits))
    if args.json:
        write_json(summary, args.json)  # written whole; '-' prints it alone
    if args.csv:
        from ..ranking_csv import ranking_csv
        with destination(args.csv) as dest:
            write_text(dest, ranking_csv(summary, summary["config"]["thresholds"]))
    if STDOUT not in (args.json, args.csv):
        sys.stdout.write(ranking_table(summary) + protocol_table(summary))
    for name, lines in comparison.invalid_lines(flag).items():
        for line in lines:
            say(f"invalid submission {shown(name)}: {line}")
    return INVALID_SUBMISSIONS if comparison.invalid else 0


def convert_command(args):
    """Do the conversion the parsed arguments ask for; write the outputs atomically."""
    import pyarrow.compute as pc

    from .. import convert as converting
    outputs = {"out": args.out, "images_out": args.images_out}
    for name, path in outputs.items():
        if path and not path.lower().endswith((".parquet", ".pq")):
            raise InputError(f"{option(name)}: {label_of(path)!r} must end in .parquet or .pq "
                             "(pointscore reads files by their extension)")
    _check_outputs(outputs, [("inputs", p) for p in args.inputs])
    for name, value, fmt in (("mapping", args.mapping, "csv"), ("mat_key", args.mat_key, "mat"),
                             ("delimiter", args.delimiter, "csv")):
        if value and args.fmt != fmt:
            raise InputError(f"{option(name)} applies to {option('fmt')} {fmt} only")
    if args.images_out and args.fmt == "csv":
        raise InputError(f"{option('images_out')}: a CSV of points does not list its images")
    points, images = converting.convert(args.fmt, args.inputs, role=args.role,
                                        mapping=converting.parse_mapping(args.mapping),
                                        delimiter=args.delimiter, mat_key=args.mat_key,
                                        keep_class=args.keep_class)
    if args.images_out and images is None:
        raise InputError(f"{option('images_out')}: a COCO results list does not list its "
                         "images")
    with ExitStack() as stack:
        for table, path in ((points, args.out), (images, args.images_out)):
            if path:
                dest = stack.enter_context(destination(path))
                with RowSink(dest, name="out") as sink:
                    sink.write(table)
    n_images = pc.count_distinct(points.column("image_id")).as_py() if points.num_rows else 0
    rows = "counts" if "count" in points.column_names else "points"
    print(f"wrote {points.num_rows} {rows} of {n_images} images to {label_of(args.out)}")
    if images is not None:
        empty = images.num_rows - n_images
        if args.images_out:
            print(f"wrote {images.num_rows} images ({empty} without points) to "
                  f"{label_of(args.images_out)}")
        elif empty:
            say(f"note: {empty} images have no points and are not in {label_of(args.out)}; "
                "write --images-out and pass it as --images to keep them in the counting "
                "metrics")
    return points, images


def validate_command(args):
    from ..validate import validate
    found = validate(args.gt, args.pred, args.images, normalize=args.normalize,
                     radius=args.radius, score_threshold=args.score_threshold,
                     limits=_limits(args))
    print(f"valid: {found['pred_points']:,} predictions and {found['gt_points']:,} "
          f"ground-truth points in {found['images']:,} images")


def warmup_command(args):
    from ..kernels import jit
    from ..warmup import warm
    steps = warm()
    width = max(len(name) for name, _ in steps)
    for name, seconds in steps:
        print(f"{name.ljust(width)}  {seconds:6.1f} s")
    total = sum(seconds for _, seconds in steps)
    if jit.SOURCE == "compiled":
        print(f"{'every kernel ran'.ljust(width)}  {total:6.1f} s: compiled ahead of time "
              "when pointscore was built, nothing to compile")
        return
    from numba.core.config import CACHE_DIR
    print(f"{'every kernel compiled'.ljust(width)}  {total:6.1f} s, cached in "
          f"{CACHE_DIR or 'the package folder (__pycache__)'}")


def protocols_command(args):
    from ..protocols import PROTOCOLS
    for protocol in PROTOCOLS.values():
        print(f"{protocol.name}: {protocol.title}\n  sets: {_protocol_sets(protocol)}\n"
              f"  from: {protocol.source}")


def _protocol_sets(protocol):
    """What a protocol sets, in flags: one line."""
    from ..terminal import thresholds_text
    parts = [f"{flag(name)} {thresholds_text(value) if isinstance(value, tuple) else value}"
             for name, value in protocol.sets.items()]
    parts += [f"{flag(name)} {column} (when the images table has it)"
              for name, column in protocol.image_columns.items()]
    parts += ["a second pass with " + ", ".join(f"{flag(k)} {v}" for k, v in changes.items())
              for changes in protocol.passes.values()]
    return "; ".join(parts)


COMMANDS = {"evaluate": evaluate_command, "run": run_command, "history": history_command,
            "compare": compare_command, "protocols": protocols_command,
            "convert": convert_command, "validate": validate_command,
            "warmup": warmup_command}
