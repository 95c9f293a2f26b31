"""``pointscore warmup``: run every CPU kernel once. Installed with its kernels compiled
ahead of time (kernels/aot.py), pointscore has nothing to compile, and this checks that
they load (the Docker images run it when they are built). Otherwise it compiles every
kernel into Numba's on-disk cache, so that the runs after it start warm.

Numba compiles a kernel, and everything it calls, the first time it is called with
arguments of new types, whatever branches the data later takes; one small run per
entry kernel and argument kind therefore compiles all of them.
"""
import time

import numpy as np

from .compare import compare
from .entrypoints import evaluate

# A few images of points in clusters, with points piled on one spot and ties.
_RNG = np.random.default_rng(0)
_IDS = np.repeat(np.arange(4), 30)
_X = np.round(_RNG.uniform(0, 100, _IDS.size))
_Y = np.round(_RNG.uniform(0, 80, _IDS.size))
GT = {"image_id": _IDS, "x": _X, "y": _Y, "radius": np.full(_IDS.size, 4.0)}
PRED = {"image_id": _IDS, "x": _X + 1.0, "y": _Y, "score": np.round(_RNG.random(_IDS.size), 1)}
IMAGES = {"image_id": np.arange(4), "width": np.full(4, 100.0), "height": np.full(4, 80.0)}
COUNTS = {"image_id": np.arange(4), "count": np.array([29.5, 30.0, 31.0, 0.0])}
# 400 predictions on one spot, every gt of their image within reach: greedy's heap gives
# up on them, and mutual best pairs (a kernel of its own) finish the image.
PILED = {"image_id": np.zeros(400, np.int64), "x": np.full(400, 50.0), "y": np.full(400, 40.0),
         "score": np.linspace(0, 1, 400)}

# (what it compiles, the evaluate options that reach it)
STEPS = (
    ("greedy matching and AP", {"thresholds": [2.0, 4.0]}),
    ("nearest matching", {"thresholds": [2.0, 4.0], "match": "nearest"}),
    ("hungarian matching", {"thresholds": [2.0, 4.0], "match": "hungarian"}),
    ("kuhn matching (the protocols')", {"thresholds": [2.0, 4.0], "match": "kuhn"}),
    ("per-point radii", {"thresholds": [0.5, 1.0], "radius": "radius"}),
    ("k-NN scales", {"thresholds": [0.5, 1.0], "normalize": "knn"}),
    ("GAME and breakdowns", {"thresholds": [0.05], "normalize": "wh", "game": 2,
                             "breakdown": "count"}),
)


def warm():
    """Compile every CPU kernel into the cache.

    Returns
    -------
    list of (str, float)
        Each step's name and its seconds (about its compile time when the cache was
        empty, milliseconds when it was full).
    """
    done = []

    def step(name, work):
        start = time.perf_counter()
        work()
        done.append((name, time.perf_counter() - start))

    for name, options in STEPS:
        step(name, lambda options=options: evaluate(GT, PRED, IMAGES, device="cpu",
                                                    **options))
    step("piled-up points", lambda: evaluate(GT, PILED, IMAGES, thresholds=[100.0],
                                             device="cpu"))
    step("count-only predictions", lambda: evaluate(GT, COUNTS, IMAGES, device="cpu"))
    step("compare's bootstrap", lambda: compare(GT, [PRED, PRED], IMAGES, names=["a", "b"],
                                                thresholds=[2.0, 4.0], device="cpu",
                                                n_resamples=20))
    return done
