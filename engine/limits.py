"""Bounds on the work and memory one run may take, each one an option (a flag of the
command line): what a submitted file can make pointscore do stays within them. Each
is checked as early as the data allows: from a file's metadata before it is read
(Parquet rows, row groups, list lengths), while streaming it (CSV rows, compressed
sizes), or right after reading, before anything is scored. Exceeding one is an
InputError naming it.

The defaults let NWPU-Crowd and anything real pass (its densest image has about
20,000 heads, 2.1 M in all). ``UNTRUSTED`` are the leaderboard's: a submission of a
stranger scored against one's own ground truth (``--untrusted``).
"""
import os
from dataclasses import dataclass, fields, replace

from .errors import InputError, option

MAX_RESAMPLES = 100_000   # bootstrap replicates, in every mode


@dataclass(frozen=True)
class Limits:
    """The bounds of one run (see the module doc).

    Attributes
    ----------
    points : int
        Points (rows) of one input table.
    image_points : int
        Points of one table in one image.
    images : int
        Evaluated images.
    classes : int
        Classes.
    row_groups : int
        Row groups of one Parquet input.
    pairs : int
        Candidate pairs held at once (per-point scales, the hungarian rule): 16 bytes
        each.
    component : int
        Cells of one connected component's cost matrix under the hungarian rule: 8
        bytes each.
    search : int
        Pairs looked at by the augmenting-path searches of one (image, class) group
        under the kuhn rule: time, cubic where points pile up.
    untrusted : bool
        The leaderboard's mode: inputs must be regular files (no links, FIFOs or
        devices), the images table is required, and predictions may not name a class
        the ground truth lacks.
    """
    points: int = 2_000_000_000
    image_points: int = 10_000_000
    images: int = 100_000_000
    classes: int = 100_000
    row_groups: int = 1_000_000
    pairs: int = 200_000_000
    component: int = 100_000_000
    search: int = 10_000_000_000
    untrusted: bool = False

    @classmethod
    def create(cls, untrusted=False, **given):
        """The mode's defaults, with the ``given`` bounds (None: the default) in their
        place.

        Raises
        ------
        InputError
            For a bound that is not a whole number >= 1.
        """
        base = UNTRUSTED if untrusted else TRUSTED
        given = {k: v for k, v in given.items() if v is not None}
        problems = [f"{option('max_' + k)} must be a whole number >= 1, got {v!r}"
                    for k, v in given.items()
                    if isinstance(v, bool) or not isinstance(v, int) or v < 1]
        if problems:
            raise InputError(problems)
        return replace(base, **given)

    def exceeded(self, name, found, what):
        """The InputError for a bound ``name`` exceeded: ``found`` of ``what``."""
        return InputError(f"{what}: {found:,} is more than {option('max_' + name)} "
                          f"{getattr(self, name):,}")


TRUSTED = Limits()
UNTRUSTED = Limits(points=50_000_000, image_points=100_000, images=1_000_000, classes=10_000,
                   row_groups=10_000, pairs=20_000_000, component=4_000_000,
                   search=200_000_000, untrusted=True)
BOUNDS = tuple(f.name for f in fields(Limits) if f.name != "untrusted")


def check_workers(workers):
    """A local cluster of at most as many workers as cores."""
    cores = os.cpu_count() or 1
    if workers is not None and workers > cores:
        raise InputError(f"{option('workers')} {workers} is more than this machine's {cores} "
                         "cores (use a scheduler for a larger cluster)")
