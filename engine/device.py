"""Which devices this machine can score on. Detection never raises: a machine without
a driver, without CuPy or without numba-cuda simply has no usable GPU."""
import os


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
