"""Who runs a run's tasks: this process (``serial_map``), or a Dask cluster
(``DaskMap``).

A mapper is ``mapper(fn, items, name, **shared)``: fn(item, **shared) for every item,
results yielded in order. On a cluster every task reads its own rows from the Parquet
dataset, so no points pass through the client: only id counts, metric states and
per-image rows come back, and the states merge exactly, so the summary is the
single-process one bit for bit. Workers must see the dataset at the same path; with a
``scheduler`` they partition unordered inputs only into a ``scratch_dir`` that they
all share (else each shard filters the dataset itself).

A worker that dies is replaced and its tasks run again elsewhere (Dask's scheduler
does that up to ``distributed.scheduler.allowed-failures`` times per task); a task
that raises is retried ``RETRIES`` times. A run that cannot finish raises
DistributedError (one line) and writes no output.
"""
import logging
import os
import uuid
from contextlib import contextmanager

from .device import gpu_usable
from .errors import InputError, first_line, option, shown

RETRIES = 2
CONNECT_TIMEOUT_S = 20


class DistributedError(RuntimeError):
    """The cluster could not finish the run (exit status 1, one line)."""


def serial_map(fn, items, name, **shared):
    """fn(item, **shared) over items, one at a time as they are consumed, in order."""
    return (fn(item, **shared) for item in items)


def _dask():
    try:
        import distributed
    except ImportError:
        raise InputError(f"{option('workers')} and {option('scheduler')} need "
                         "dask.distributed: pip install 'pointscore[dask]'") from None
    return distributed


def _local_cluster(distributed, workers, device):
    """N single-threaded worker processes whose Numba threads share the cores; with
    usable GPUs and dask_cuda, one worker per GPU (at most N)."""
    quiet = dict(dashboard_address=None, silence_logs=logging.ERROR)
    if device != "cpu" and gpu_usable():
        try:
            from dask_cuda import LocalCUDACluster
        except ImportError:
            pass
        else:
            import cupy
            gpus = cupy.cuda.runtime.getDeviceCount()
            return LocalCUDACluster(n_workers=min(workers, gpus), threads_per_worker=1, **quiet)
    numba_threads = max(1, (os.cpu_count() or 1) // workers)
    # Workers are fresh processes: Numba reads this when they first import it.
    return distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                    env={"NUMBA_NUM_THREADS": str(numba_threads)}, **quiet)


@contextmanager
def _quiet(name, level):
    """Raise a logger's level for a while: Dask's INFO lines would reach the root handler
    the command line sets up."""
    logger = logging.getLogger(name)
    before = logger.level
    logger.setLevel(max(level, logger.getEffectiveLevel()))
    try:
        yield
    finally:
        logger.setLevel(before)


@contextmanager
def dask_client(workers, scheduler, device):
    """A Dask client of a local cluster of ``workers`` processes, or of the cluster at
    ``scheduler``, closed (and the local cluster shut down) on leaving."""
    distributed = _dask()  # before _quiet: importing it sets its loggers' levels
    with _quiet("distributed", logging.WARNING), _connect(distributed, workers, scheduler,
                                                          device) as client:
        yield client


@contextmanager
def _connect(distributed, workers, scheduler, device):
    if scheduler:
        try:
            client = distributed.Client(scheduler, timeout=CONNECT_TIMEOUT_S)
        except ValueError as exc:  # distributed's word for an address it cannot parse
            raise InputError(f"{option('scheduler')}: {shown(scheduler)} is not a scheduler "
                             f"address like tcp://host:8786 ({first_line(exc)})") from None
        except (OSError, TimeoutError) as exc:
            raise DistributedError(f"cannot reach the Dask scheduler at {shown(scheduler)}: "
                                   f"{first_line(exc)}") from None
        except MemoryError:
            # Something else answers there (a web server): its reply read as a Dask
            # message header asks for an impossible buffer, refused at once.
            raise DistributedError(f"the server at {shown(scheduler)} does not speak Dask's "
                                   "protocol: is it a Dask scheduler?") from None
        with client:
            yield client
        return
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InputError(f"{option('workers')} must be a whole number >= 1, got {workers!r}")
    with _local_cluster(distributed, workers, device) as cluster, \
            distributed.Client(cluster) as client:
        yield client


def _same(value):
    return value


class DaskMap:
    """A mapper on a Dask client: one task per item, results in order."""

    def __init__(self, client):
        self.client = client

    def __call__(self, fn, items, name, **shared):
        from distributed import KilledWorker
        from distributed.comm import CommClosedError
        token = uuid.uuid4().hex[:12]
        # Shared arguments travel once, as tasks of their own: the scheduler keeps them
        # and computes them again if the workers holding them die (scattered data
        # would be lost with them).
        shared = {key: None if value is None else self.client.submit(
                      _same, value, key=f"pointscore-shared-{name}-{token}-{key}")
                  for key, value in shared.items()}
        keys = [f"pointscore-{name}-{token}-{i}" for i in range(len(items))]
        futures = self.client.map(fn, items, key=keys, retries=RETRIES, **shared)
        held = futures + [f for f in shared.values() if f is not None]
        try:
            for key, future in zip(keys, futures):
                try:
                    yield future.result()
                except KilledWorker as exc:
                    last = getattr(exc.last_worker, "address", exc.last_worker)
                    raise DistributedError(
                        f"the Dask run cannot finish: {exc.allowed_failures + 1} workers died "
                        f"running task {key}, the last at {last} (see its log)") from None
                except (CommClosedError, OSError, TimeoutError) as exc:
                    raise DistributedError(f"the Dask run cannot finish: lost the cluster "
                                           f"during task {key} ({first_line(exc)})") from None
        finally:  # nothing of this step stays on the cluster, finished or not
            self.client.cancel(held)
