"""Device detection and dispatch. Detection never raises: a machine without a driver,
without CuPy or without numba-cuda simply has no usable GPU."""
import os

import numpy as np

from kernels import knn

DEVICES = ("auto", "cpu", "gpu")


def simulated():
    """True when Numba's CUDA simulator is on: kernels run, but on the CPU."""
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") == "1"


def gpu_usable():
    """A real CUDA device with CuPy and Numba both able to use it, and libNVVM to
    compile the kernels (a driver alone would fail at the first kernel)."""
    if simulated():
        return False
    try:
        import cupy
        from numba import cuda
        from numba.cuda.cudadrv import nvvm
        return bool(cupy.is_available()) and bool(cuda.is_available()) \
            and bool(nvvm.is_available())
    except Exception:  # no CuPy, no driver, no NVVM, broken install: all mean "no GPU"
        return False


class CpuBackend:
    """Numba CPU kernels, parallel over (image, class) groups."""
    name = "cpu"
    xp = np

    def match(self, batch, dmax, kept, nearest, d2_thresholds):
        """Greedy (or nearest) matching at dmax, and with d2_thresholds COCO's AP
        matching per threshold: (match_gt, match_d2, is_tp or None)."""
        with_ap = d2_thresholds is not None
        score = batch.pred_score if with_ap else np.zeros(batch.pred_x.size)
        match_gt, match_d2, is_tp = knn.match_groups(
            nearest, batch.pred_off, batch.gt_off, batch.pred_x, batch.pred_y,
            batch.gt_x, batch.gt_y, kept, dmax, score,
            d2_thresholds if with_ap else np.zeros(0), with_ap)
        return match_gt, match_d2, is_tp if with_ap else None


def backend_for(device):
    """(backend, note): the backend that runs ``device``, and an info line or None."""
    from .io import InputError
    if device not in DEVICES:
        raise InputError(f"device must be one of {', '.join(DEVICES)}, got '{device}'")
    if device == "cpu":
        return CpuBackend(), None
    if device == "auto":
        if gpu_usable():
            from .gpu import GpuBackend
            return GpuBackend(), None
        return CpuBackend(), "pointscore: no usable GPU, running on the CPU"
    if gpu_usable() or simulated():
        from .gpu import GpuBackend
        return GpuBackend(), None
    raise InputError("device 'gpu' asked for, but no usable GPU was found (needs a CUDA "
                     "driver, CuPy and numba-cuda: pip install 'pointscore[gpu]')")
