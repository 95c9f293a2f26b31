"""The command line's arguments: one parser per subcommand, every flag defined here."""
import argparse
import math

from ..choices import (
    BREAKDOWNS,
    DEFAULT_KNN_K,
    DEFAULT_SHARD_POINTS,
    DEVICES,
    MATCH,
    MAX_GAME_LEVEL,
    MAX_THRESHOLDS,
    NORMALIZE,
)
from ..choices import CONVERT_FORMATS as FORMATS
from ..errors import InputError
from ..limits import TRUSTED, UNTRUSTED
from ..protocols import PROTOCOLS
from ..version import package_version

# Library option names whose flag is not "--" + the name with dashes.
FLAGS = {"radius": "--radius-column", "n_resamples": "--bootstrap", "mapping": "--map",
         "fmt": "--from"}


class KernelsVersion(argparse.Action):
    """``--version``: the version, and where the CPU kernels' machine code comes from."""

    def __init__(self, option_strings, version, dest=argparse.SUPPRESS,
                 default=argparse.SUPPRESS,
                 help="show the version and where the CPU kernels come from, and exit"):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)
        self.version = version

    def __call__(self, parser, namespace, values, option_string=None):
        from ..kernels import jit
        source = "compiled ahead of time" if jit.SOURCE == "compiled" else \
            "compiled by Numba at first use"
        print(f"{self.version} (CPU kernels: {source})")
        parser.exit()


def flag(name):
    """The command line's flag for a library option name."""
    return FLAGS.get(name, "--" + name.replace("_", "-"))


class Parser(argparse.ArgumentParser):
    """Usage errors are input errors: one line, exit status 2."""

    def error(self, message):
        command = self.prog.split()[-1]
        hint = "pointscore --help" if command == "pointscore" else f"pointscore {command} --help"
        raise InputError(f"usage error: {message} (see '{hint}')")


def parse_thresholds(text):
    """'start:stop:step' (stop included within half a step) or 'a,b,c', sorted and
    distinct. (argparse types raise ArgumentTypeError: it names the flag.)"""
    try:
        if ":" in text:
            start, stop, step = (float(v) for v in text.split(":"))
            if not (math.isfinite(start) and math.isfinite(stop) and step > 0
                    and stop >= start):
                raise argparse.ArgumentTypeError(f"start:stop:step needs finite start <= stop "
                                                 f"and step > 0, got '{text}'")
            n = (stop - start) / step + 0.5  # may be inf for a tiny step
            if n >= MAX_THRESHOLDS:
                raise argparse.ArgumentTypeError(f"'{text}' gives more than {MAX_THRESHOLDS} "
                                                 "thresholds")
            values = [round(start + i * step, 10) for i in range(int(n) + 1)]
        else:
            values = [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected start:stop:step or a,b,c with numbers, "
                                         f"got '{text}'") from None
    if any(not 0 < v < math.inf for v in values):
        raise argparse.ArgumentTypeError(f"every threshold must be finite and > 0, got "
                                         f"'{text}'")
    return sorted(set(values))


def parse_numbers(text):
    """An argparse type: numbers separated by commas."""
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got "
                                         f"'{text}'") from None


def whole_number(minimum):
    """An argparse type: a whole number >= minimum."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, "
                                             f"got '{text}'")
        return value
    return parse


def _scoring(parser, images_help):
    """pointscore.evaluate's scoring options, for every subcommand that scores."""
    parser.add_argument("--images", help=images_help)
    parser.add_argument("--protocol", choices=tuple(PROTOCOLS),
                        help="a benchmark's protocol: sets the scoring options not given "
                             "and prints its table ('pointscore protocols' lists them)")
    parser.add_argument("--thresholds", type=parse_thresholds,
                        help="start:stop:step or a,b,c (default 0.01:0.10:0.01)")
    parser.add_argument("--normalize", choices=NORMALIZE,
                        help="default none; knn: thresholds in units of each gt's mean "
                             "distance to its --knn-k nearest gts (docs/scaled.md)")
    parser.add_argument("--radius-column", dest="radius", metavar="NAME",
                        help="a gt column of per-point scales (e.g. NWPU's sigma_l): match "
                             "when distance <= threshold * radius (docs/scaled.md)")
    parser.add_argument("--knn-k", type=whole_number(1), metavar="K",
                        help=f"neighbours of --normalize knn (default {DEFAULT_KNN_K})")
    parser.add_argument("--match", choices=MATCH,
                        help="default greedy; kuhn: the augmenting paths of NWPU-Crowd's "
                             "and FIDTM's scripts, which the protocols use")
    parser.add_argument("--strict", action="store_true",
                        help="warnings (thresholds that do not fit the data's units, a score "
                             "column under another name, files swapped, no images table) "
                             "are errors: exit 2, no output")
    parser.add_argument("--score-threshold", type=float, default=None,
                        help="keep predictions with score >= S at the operating point")
    parser.add_argument("--device", choices=DEVICES, default="auto")


def _limits(parser):
    """The bounds on work and memory (pointscore.limits), and the leaderboard's mode."""
    group = parser.add_argument_group(
        "limits", "bounds on what a file can make pointscore do; exceeding one is an error "
        "(exit 2) naming it")
    group.add_argument("--untrusted", action="store_true",
                       help="score a stranger's submission: inputs must be regular files, "
                            "--images is required, no class the ground truth lacks, and the "
                            "limits are tighter")
    for name, text in LIMIT_HELP.items():
        group.add_argument(f"--max-{name.replace('_', '-')}", type=whole_number(1),
                           metavar="N", help=f"{text} (default {getattr(TRUSTED, name):,}; "
                                             f"untrusted {getattr(UNTRUSTED, name):,})")


def _overlays(parser):
    """--report's worst images drawn with their points (docs/report.md, "Overlays")."""
    parser.add_argument("--image-root", metavar="ROOT",
                        help="--report draws the worst images' points over their files in "
                             "ROOT (default: over blank canvases of the images' sizes)")
    parser.add_argument("--image-pattern", metavar="PATTERN",
                        help="an image's file name under ROOT, str.format of its image_id "
                             "(default '{image_id}.jpg'; e.g. 'IMG_{image_id}.jpg', "
                             "'{image_id:04d}.jpg')")
    parser.add_argument("--overlay-threshold", type=float, metavar="D",
                        help="--report draws the matching at this threshold, one of the "
                             "run's (default: the middle one)")


LIMIT_HELP = {"points": "points (rows) of one input table",
              "image_points": "points of one table in one image",
              "images": "evaluated images", "classes": "classes",
              "row_groups": "row groups of one Parquet input",
              "pairs": "candidate pairs held at once (per-point scales, hungarian)",
              "component": "cells of one hungarian component's cost matrix",
              "search": "pairs looked at by the augmenting-path searches of one image and "
                        "class at one threshold (kuhn)"}


def _evaluate(commands):
    ev = commands.add_parser("evaluate", help="score one prediction table")
    ev.add_argument("--gt", required=True, help="ground-truth points (Parquet, Arrow, CSV)")
    ev.add_argument("--pred", required=True, help="predicted points")
    _scoring(ev, "images table: image_id[, width, height]")
    ev.add_argument("--json", metavar="PATH|-", help="write the JSON summary ('-': stdout only)")
    ev.add_argument("--per-image", metavar="PATH.parquet", help="write per-image counts")
    ev.add_argument("--per-class", action="store_true",
                    help="add a row per class to the table printed on the terminal")
    ev.add_argument("--matches", metavar="PATH.parquet",
                    help="write every prediction's matched gt row and distance per threshold")
    ev.add_argument("--report", metavar="DIR",
                    help="write a self-contained HTML report (needs matplotlib: the plot extra)")
    _overlays(ev)
    crowd = ev.add_argument_group(
        "crowd counting", "added to the summary only when asked for (docs/counting.md); "
        "--pred may also be per-image counts: image_id, count[, class]")
    crowd.add_argument("--game", type=int, choices=range(MAX_GAME_LEVEL + 1), metavar="L",
                       help="GAME(0..L) on 2^l x 2^l grids (needs --images with width, height)")
    crowd.add_argument("--breakdown", choices=BREAKDOWNS,
                       help="metrics per bin of true count, or of count per megapixel")
    crowd.add_argument("--bins", type=parse_numbers, metavar="E0,E1,...",
                       help="upper bin edges (default 0,100,500,5000, NWPU-Crowd's scene "
                            "levels: [0,0], (0,100], ..., (5000,inf))")
    crowd.add_argument("--breakdown-by", metavar="COLUMN",
                       help="metrics per label of an images-table column (weather, "
                            "luminance, scene)")
    crowd.add_argument("--level-column", metavar="NAME",
                       help="a gt column of per-point levels (NWPU-Crowd's 'level'): "
                            "points, TP and recall per level")
    big = ev.add_argument_group(
        "large datasets", "Parquet dataset directories, and Parquet inputs of more points "
        "than one shard, are streamed shard by shard in bounded memory")
    big.add_argument("--workers", type=whole_number(1), metavar="N",
                     help="score on a local Dask cluster of N worker processes")
    big.add_argument("--scheduler", metavar="ADDRESS",
                     help="score on the Dask cluster at ADDRESS (tcp://host:8786)")
    big.add_argument("--shard-points", type=whole_number(1), metavar="N",
                     default=DEFAULT_SHARD_POINTS,
                     help=f"points per shard (default {DEFAULT_SHARD_POINTS:,})")
    big.add_argument("--scratch-dir", metavar="DIR",
                     help="where inputs not sorted by image_id are partitioned "
                          "(default TMPDIR; with --scheduler, a directory every worker shares)")
    big.add_argument("--resume", action="store_true",
                     help="keep each finished shard in --scratch-dir, and go on from those a "
                          "killed run of the same inputs and options left (streams the run)")
    nightly = ev.add_argument_group(
        "nightly jobs", "keep each run in a history store and fail on regressions "
        "(docs/nightly.md)")
    nightly.add_argument("--history", metavar="STORE",
                         help="append this run to the history store (a directory)")
    nightly.add_argument("--name", metavar="NAME", help="the run's name in the history (a "
                                                          "model, a branch)")
    nightly.add_argument("--baseline", metavar="last|NAME|RUN_ID",
                         help="the stored run the gate compares with (default last: the "
                              "newest on the same ground truth and options that passed)")
    nightly.add_argument("--fail-if", metavar="EXPR",
                         help="exit 3 when e.g. 'map drop > 0.005 at p < 0.05' holds against "
                              "the baseline (paired bootstrap over images)")
    _limits(ev)


def evaluate_parser():
    """The ``evaluate`` subcommand's parser (job files take its options as keys)."""
    parser = build()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return commands.choices["evaluate"]


def _run(commands):
    parser = commands.add_parser(
        "run", help="run an evaluation described by a job file (TOML)",
        description="Run 'evaluate' with the options of a TOML job file (its keys are "
                    "evaluate's options, as in Python: gt, pred, thresholds, history, "
                    "fail_if, ...); flags after the file override its keys (docs/nightly.md).")
    parser.add_argument("job", metavar="JOB.toml", help="the job file")
    parser.add_argument("overrides", nargs=argparse.REMAINDER, metavar="FLAGS",
                        help="evaluate's flags, overriding the file's keys")


def _history(commands):
    parser = commands.add_parser(
        "history", help="list the runs of a history store",
        description="List the runs of a history store (--history) with their headline "
                    "metrics, oldest first (docs/nightly.md).")
    parser.add_argument("store", metavar="STORE", help="the history store (a directory)")
    parser.add_argument("--name", metavar="NAME", help="only the runs of this name")
    parser.add_argument("--json", metavar="PATH|-", help="write the runs as JSON")
    parser.add_argument("--report", metavar="DIR",
                        help="write an HTML page with each headline metric over time "
                             "(needs matplotlib)")


def _validate(commands):
    parser = commands.add_parser(
        "validate", help="check a submission without scoring it (at upload time)",
        description="Check a predictions table against the ground truth with every rule "
                    "and limit of 'evaluate', without scoring it; exit 0 when it is valid, "
                    "2 with one line per problem when not.")
    parser.add_argument("--gt", required=True, help="ground-truth points (Parquet, Arrow, CSV)")
    parser.add_argument("--pred", required=True, help="the submission")
    parser.add_argument("--images", help="images table: image_id[, width, height]")
    parser.add_argument("--normalize", choices=NORMALIZE, default="none")
    parser.add_argument("--radius-column", dest="radius", metavar="NAME")
    parser.add_argument("--score-threshold", type=float, default=None)
    _limits(parser)


def _compare(commands):
    parser = commands.add_parser(
        "compare", help="rank several prediction tables against one ground truth",
        description="Score several prediction tables against one ground truth and rank "
                    "them, with bootstrap intervals (resampling images) and paired "
                    "p-values (docs/compare.md).")
    parser.add_argument("--gt", required=True, help="ground-truth points (Parquet, Arrow, CSV)")
    parser.add_argument("--pred", required=True, nargs="+", metavar="PRED",
                        help="one predictions table per submission")
    parser.add_argument("--names", metavar="A,B,...",
                        help="submission names, one per --pred (default: file stems)")
    _scoring(parser, "images table: image_id[, width, height] (default: every image id of "
                     "the ground truth and all submissions)")
    parser.add_argument("--bootstrap", dest="n_resamples", type=whole_number(0), default=1000,
                        metavar="N", help="bootstrap resamples of the images (default 1000; "
                                          "0: no intervals or p-values)")
    parser.add_argument("--seed", type=whole_number(0), default=0,
                        help="bootstrap seed (default 0)")
    parser.add_argument("--confidence", type=float, default=0.95,
                        help="interval coverage (default 0.95)")
    parser.add_argument("--rank-by", metavar="map|mae|rmse|f1@D",
                        help="the ranking metric (default map, or the protocol's)")
    parser.add_argument("--json", metavar="PATH|-",
                        help="write the comparison as JSON ('-': stdout only)")
    parser.add_argument("--report", metavar="DIR",
                        help="write a self-contained HTML report (needs matplotlib)")
    _overlays(parser)
    parser.add_argument("--csv", metavar="PATH|-",
                        help="write the ranking as one CSV table (for a leaderboard site)")
    _limits(parser)


def _convert(commands):
    parser = commands.add_parser(
        "convert", help="convert crowd-counting annotations to pointscore's Parquet",
        description="Convert NWPU-Crowd txt/json (points, or counting submissions), "
                    "ShanghaiTech/UCF-QNRF .mat, JHU-Crowd++, COCO keypoint JSON or CSV "
                    "points to the long Parquet layout (image_id, x, y[, score, class]).")
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="a file, or a directory of files in the format")
    parser.add_argument("--from", dest="fmt", required=True, choices=FORMATS,
                        help="the input format")
    parser.add_argument("--role", choices=("gt", "pred"),
                        help="ground truth or predictions: required for nwpu-txt; checked "
                             "for coco; chooses the checks for csv")
    parser.add_argument("--out", required=True, metavar="PATH.parquet",
                        help="the points table to write")
    parser.add_argument("--images-out", metavar="PATH.parquet",
                        help="also write the images table (every image the source names, "
                             "empty ones included; width/height from COCO)")
    parser.add_argument("--map", dest="mapping", default="", metavar="OLD=NEW,...",
                        help="csv: rename columns, e.g. img=image_id,px=x,py=y")
    parser.add_argument("--delimiter", default=None,
                        help="csv: field delimiter (default ',' or tab for .tsv)")
    parser.add_argument("--mat-key", default=None, metavar="NAME",
                        help="mat: the variable holding the N x 2 points (default: "
                             "image_info or annPoints)")
    parser.add_argument("--no-class", dest="keep_class", action="store_false",
                        help="coco: leave category_id out (single-class data)")


def build():
    """The ``pointscore`` parser; each subcommand's namespace has ``command``."""
    parser = Parser(prog="pointscore", description="Score point predictions against "
                    "ground truth: counting errors, P/R/F1 and mAP@d.")
    parser.add_argument("--version", action=KernelsVersion,
                        version=f"pointscore {package_version()}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    _evaluate(commands)
    _run(commands)
    _history(commands)
    _compare(commands)
    _validate(commands)
    _convert(commands)
    commands.add_parser(
        "protocols", help="list the benchmark protocols of --protocol",
        description="List the benchmark protocols that --protocol names, what each sets "
                    "and where it comes from (docs/protocols.md).")
    commands.add_parser(
        "warmup", help="run every kernel once, compiling it where the install has no "
                       "compiled kernels",
        description="Run every CPU kernel once on a small example and print what each step "
                    "took. An install built with its kernels compiled ahead of time has "
                    "nothing to compile (this checks that they load); otherwise Numba "
                    "compiles them into its on-disk cache (NUMBA_CACHE_DIR, or beside the "
                    "package), so that later runs start warm.")
    return parser
