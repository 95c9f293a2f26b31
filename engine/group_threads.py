"""Runs of (image, class) groups, and other independent blocks of work, in threads.

The CPU kernels are sequential and release the GIL (``nogil=True``): the engine splits
a batch's groups into runs of about equal work and runs them in a pool of
``thread_count()`` threads (NUMBA_NUM_THREADS, which the Dask runner sets per worker).
A ``prange`` loop would do the same, but ``parallel=True`` compiles the kernel and every
function it calls a second time, which took a quarter of a first run's time.
"""
import os
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np

RUNS_PER_THREAD = 4  # more runs than threads, so one crowded image does not hold up the rest


def thread_count():
    """Numba's thread count where Numba is in use (``numba.set_num_threads`` included),
    else what it would be: NUMBA_NUM_THREADS when it is a number, else the CPUs this
    process may run on. Numba is not imported for it: the compiled kernels run without."""
    if "numba" in sys.modules:
        return sys.modules["numba"].get_num_threads()
    try:
        return max(1, int(os.environ["NUMBA_NUM_THREADS"]))
    except (KeyError, ValueError):
        usable = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
        return max(1, len(usable) if usable else os.cpu_count() or 1)


def group_runs(p_off, g_off, n_runs):
    """Split the groups into at most ``n_runs`` consecutive runs of about equal work.

    Parameters
    ----------
    p_off, g_off : numpy.ndarray
        Offsets of each group's predictions and ground-truth points (n_groups + 1).
    n_runs : int
        The most runs wanted.

    Returns
    -------
    list of (int, int)
        Half-open group ranges, in order, covering every group.
    """
    n_groups = p_off.size - 1
    if n_groups <= 0:
        return []
    work = np.cumsum(np.diff(p_off) + np.diff(g_off))
    targets = work[-1] * np.arange(1, n_runs) / n_runs
    cuts = np.unique(np.concatenate(([0], np.searchsorted(work, targets, "right"),
                                     [n_groups])))
    return list(zip(cuts[:-1].tolist(), cuts[1:].tolist()))


def over_groups(run, p_off, g_off, threads=None):
    """Call ``run(start, stop)`` for runs of groups that together cover every group, in
    threads when there are several.

    Parameters
    ----------
    run : callable
        Takes a half-open group range; each call must write only its groups' outputs.
    p_off, g_off : numpy.ndarray
        Offsets of each group's predictions and ground-truth points.
    threads : int, optional
        Threads to use; ``thread_count()`` by default.
    """
    threads = thread_count() if threads is None else threads
    runs = group_runs(p_off, g_off, RUNS_PER_THREAD * threads if threads > 1 else 1)
    in_threads(lambda r: run(*r), runs, threads)


def in_threads(work, items, threads=None):
    """Call ``work(item)`` for every item, in a pool of ``threads`` (``thread_count()`` by
    default) when there are several items; a call's exception is raised here.

    Parameters
    ----------
    work : callable
        A call that releases the GIL (a ``nogil`` kernel), writing only its own outputs.
    items : sequence
    threads : int, optional
    """
    threads = thread_count() if threads is None else threads
    if threads <= 1 or len(items) <= 1:
        for item in items:
            work(item)
        return
    with ThreadPoolExecutor(min(threads, len(items))) as pool:
        for _ in pool.map(work, items):
            pass  # map yields each result so that a kernel's exception is raised here
