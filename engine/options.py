"""Command-line options shared by the subcommands that score (evaluate, compare)."""
import argparse
import math

from .batch import NORMALIZE
from .device import DEVICES
from .evaluate import MATCH
from .io import InputError
from .scaled import DEFAULT_KNN_K

MAX_THRESHOLDS = 10_000


def parse_thresholds(text):
    """'start:stop:step' (stop included within half a step) or 'a,b,c'."""
    try:
        if ":" in text:
            start, stop, step = (float(v) for v in text.split(":"))
            if not (math.isfinite(start) and math.isfinite(stop) and step > 0
                    and stop >= start):
                raise InputError(f"--thresholds: start:stop:step needs finite start <= stop "
                                 f"and step > 0, got '{text}'")
            n = (stop - start) / step + 0.5  # may be inf for a tiny step
            if n >= MAX_THRESHOLDS:
                raise InputError(f"--thresholds: '{text}' gives more than {MAX_THRESHOLDS} "
                                 "thresholds")
            n = int(n)
            values = [round(start + i * step, 10) for i in range(n + 1)]
        else:
            values = [float(v) for v in text.split(",")]
    except ValueError:
        raise InputError(f"--thresholds: expected start:stop:step or a,b,c with numbers, "
                         f"got '{text}'") from None
    if any(not 0 < v < math.inf for v in values):
        raise InputError(f"--thresholds: every threshold must be finite and > 0, got '{text}'")
    return sorted(set(values))


def add_scoring_arguments(parser, images_help):
    """engine.evaluate's scoring options, for every subcommand that scores."""
    parser.add_argument("--images", help=images_help)
    parser.add_argument("--thresholds", default="0.01:0.10:0.01", type=parse_thresholds,
                        help="start:stop:step or a,b,c (default 0.01:0.10:0.01)")
    parser.add_argument("--normalize", choices=NORMALIZE, default="none",
                        help="knn: thresholds in units of each gt's mean distance to its "
                             "--knn-k nearest gts (docs/scaled.md)")
    parser.add_argument("--radius-column", metavar="NAME",
                        help="a gt column of per-point scales (e.g. NWPU's sigma_l): match "
                             "when distance <= threshold * radius (docs/scaled.md)")
    parser.add_argument("--knn-k", type=positive_int, metavar="K",
                        help=f"neighbours of --normalize knn (default {DEFAULT_KNN_K})")
    parser.add_argument("--match", choices=MATCH, default="greedy")
    parser.add_argument("--score-threshold", type=float, default=None,
                        help="keep predictions with score >= S at the operating point")
    parser.add_argument("--device", choices=DEVICES, default="auto")


def scaling_options(args):
    """engine.evaluate's radius and knn_k from the scoring options."""
    if args.knn_k is not None and args.normalize != "knn":
        raise InputError("usage error: --knn-k applies to --normalize knn only")
    return {"radius": args.radius_column,
            "knn_k": DEFAULT_KNN_K if args.knn_k is None else args.knn_k}


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


positive_int = whole_number(1)
