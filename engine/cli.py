"""The `pointscore` command: a thin layer over engine.evaluate (spec section 8).

Exit status: 0 success, 2 bad input or usage (one line per problem), 1 internal error.
"""
import argparse
import logging
import os
import sys
from contextlib import ExitStack

from . import compare, convert, counting, html_report, stream
from .distributed import DistributedError
from .io import InputError
from .options import add_scoring_arguments, positive_int
from .report import atomic_path, output_problems, summary_json, text_table


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise InputError(f"usage error: {message} (see 'pointscore {self.prog.split()[-1]} --help')")


def _parser():
    parser = _Parser(prog="pointscore", description="Score point predictions against "
                     "ground truth: counting errors, P/R/F1 and mAP@d.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    ev = commands.add_parser("evaluate", help="score one prediction table")
    ev.add_argument("--gt", required=True, help="ground-truth points (Parquet, Arrow, CSV)")
    ev.add_argument("--pred", required=True, help="predicted points")
    add_scoring_arguments(ev, "images table: image_id[, width, height]")
    ev.add_argument("--json", metavar="PATH|-", help="write the JSON summary ('-': stdout only)")
    ev.add_argument("--per-image", metavar="PATH.parquet", help="write per-image counts")
    ev.add_argument("--matches", metavar="PATH.parquet",
                    help="write every prediction's matched gt row and distance per threshold")
    ev.add_argument("--report", metavar="DIR",
                    help="write a self-contained HTML report (needs matplotlib: the plot extra)")
    crowd = ev.add_argument_group(
        "crowd counting", "added to the summary only when asked for (docs/counting.md); "
        "--pred may also be per-image counts: image_id, count[, class]")
    crowd.add_argument("--game", type=int, choices=range(counting.MAX_GAME_LEVEL + 1),
                       metavar="L", help="GAME(0..L) on 2^l x 2^l grids (needs --images "
                       "with width, height)")
    crowd.add_argument("--breakdown", choices=counting.BREAKDOWNS,
                       help="metrics per bin of true count, or of count per megapixel")
    crowd.add_argument("--bins", type=counting.parse_bins, metavar="E0,E1,...",
                       help="upper bin edges (default 0,100,500,5000, NWPU-Crowd's scene "
                            "levels: [0,0], (0,100], ..., (5000,inf))")
    big = ev.add_argument_group(
        "large datasets", "Parquet dataset directories, and Parquet inputs of more points "
        "than one shard, are streamed shard by shard in bounded memory")
    big.add_argument("--workers", type=positive_int, metavar="N",
                     help="score on a local Dask cluster of N worker processes")
    big.add_argument("--scheduler", metavar="ADDRESS",
                     help="score on the Dask cluster at ADDRESS (tcp://host:8786)")
    big.add_argument("--shard-points", type=positive_int, metavar="N",
                     default=stream.DEFAULT_SHARD_POINTS,
                     help=f"points per shard (default {stream.DEFAULT_SHARD_POINTS:,})")
    big.add_argument("--scratch-dir", metavar="DIR",
                     help="where inputs not sorted by image_id are partitioned "
                          "(default TMPDIR; with --scheduler, a directory every worker shares)")
    ev.set_defaults(func=_evaluate)
    convert.add_parser(commands)
    compare.add_parser(commands)
    return parser


def _check_outputs(args):
    """Refuse outputs that cannot be written before the work, not after it."""
    problems = output_problems({"--json": args.json, "--per-image": args.per_image,
                                "--matches": args.matches, "--report": args.report})
    if problems:
        raise InputError(problems)


def _evaluate(args):
    _check_outputs(args)
    if args.workers and args.scheduler:
        raise InputError("usage error: give --workers (a local cluster) or --scheduler "
                         "(an existing one), not both")
    # Both files are complete before either takes its final name.
    with ExitStack() as stack:
        per_image, matches = (stack.enter_context(atomic_path(path)) if path else None
                              for path in (args.per_image, args.matches))
        report = stream.evaluate_cli(args, per_image, matches)
        for line in report.notes:
            print(line, file=sys.stderr)
        if args.json and args.json != "-":
            with open(stack.enter_context(atomic_path(args.json)), "w", encoding="utf-8") as out:
                out.write(summary_json(report.summary))
        if args.report:  # last: it is renamed into place at once
            html_report.write_report(args.report, {compare.default_names([args.pred])[0]: report})
    if args.json == "-":
        sys.stdout.write(summary_json(report.summary))
    else:
        sys.stdout.write(text_table(report.summary) + counting.text_table(report.summary))


def main(argv=None):
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        args = _parser().parse_args(argv)
        args.func(args)
    except InputError as exc:
        for line in exc.problems:
            print(f"pointscore: {' '.join(str(line).splitlines())}", file=sys.stderr)
        return 2
    except DistributedError as exc:
        print(f"pointscore: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("pointscore: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # an internal error: one line, the traceback only on request
        if os.environ.get("POINTSCORE_DEBUG"):
            raise
        first_line = (str(exc).strip().splitlines() or [""])[0]
        print(f"pointscore: internal error: {type(exc).__name__}: {first_line} "
              "(set POINTSCORE_DEBUG=1 for a traceback)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
