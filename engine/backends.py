"""The choice of backend. Backends take a batch and return host numpy arrays equal
bit for bit: ``CpuBackend`` (pointscore.cpu) runs the Numba CPU kernels, ``GpuBackend``
(pointscore.gpu) their CUDA twins."""
from .cpu import CpuBackend
from .device import gpu_usable, simulated
from .errors import InputError, option

SCALED_NOTE = ("matching with per-point scales (radius, knn) runs on the CPU; the GPU "
               "does the rest")
MAXIMUM_MATCHING_NOTE = "{} matching runs on the CPU; the GPU does the rest"
NO_GPU_NOTE = "no usable GPU, running on the CPU"


def backend_for(device):
    """(backend, note): the backend that runs ``device``, and a line for the user or None.

    Raises
    ------
    InputError
        For ``device='gpu'`` on a machine without a usable GPU (except under Numba's
        CUDA simulator).
    """
    if device == "cpu":
        return CpuBackend(), None
    if device == "auto":
        if gpu_usable():
            from .gpu import GpuBackend
            return GpuBackend(), None
        return CpuBackend(), NO_GPU_NOTE
    if gpu_usable() or simulated():
        from .gpu import GpuBackend
        return GpuBackend(), None
    raise InputError(f"{option('device')} 'gpu' asked for, but no usable GPU was found (needs "
                     "a CUDA driver, CuPy and numba-cuda: pip install 'pointscore[gpu]')")
