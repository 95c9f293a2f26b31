"""One image of a training loop's batch, as PointMetrics.update receives it: arrays of
any kind (numpy, lists, PyTorch or CuPy tensors on the CPU or a GPU) read into host
numpy arrays and checked, each problem an InputError naming the image's place in the
batch. pointscore never imports torch: it reads what the objects expose."""
import numbers

import numpy as np

from .batch import MAX_COORD
from .errors import InputError, first_line, shown


def host_array(value, where):
    """A numpy array of an array-like: a numpy array as it is; an object exposing
    ``__cuda_array_interface__`` (a CUDA tensor, a CuPy array) copied to the host; one
    exposing ``__dlpack__`` without ``__array__`` read through DLPack; anything else
    through ``numpy.asarray`` (lists, CPU tensors, ``__array__``)."""
    if isinstance(value, np.ndarray):
        return value
    try:
        if hasattr(value, "__cuda_array_interface__"):
            return _from_device(value)
        if hasattr(value, "__dlpack__") and not hasattr(value, "__array__"):
            return np.from_dlpack(value)
        return np.asarray(value)
    except InputError:
        raise
    except Exception as exc:  # each library words it differently; the line says which
        raise InputError(f"{where}: cannot read it as an array: {first_line(exc)}") from None


def _from_device(value):
    """A GPU array's copy on the host, through CuPy when installed (the ``gpu`` extra),
    else Numba's CUDA driver."""
    try:
        import cupy
    except ImportError:
        from numba import cuda
        return cuda.as_cuda_array(value).copy_to_host()
    return cupy.asnumpy(cupy.asarray(value))


def points(value, where):
    """An (n, 2) float64 array of finite coordinates."""
    array = host_array(value, where)
    if array.size == 0:
        return np.zeros((0, 2))
    if array.ndim != 2 or array.shape[1] != 2:
        raise InputError(f"{where}: points must be an (N, 2) array, got shape "
                         f"{tuple(array.shape)}")
    return _finite(array, where, "coordinates")


def per_point(value, n, where, what):
    """A length-n array: labels (integers or strings), scores (finite, >= 0) or radii
    (finite, > 0, with a square that stays finite and > 0: matching divides by it)."""
    array = host_array(value, where)
    if n == 0 and array.size == 0:  # an image without points: [] reads as floats
        return np.zeros(0, np.int64 if what in ("labels", "levels") else np.float64)
    if array.ndim != 1 or array.shape[0] != n:
        raise InputError(f"{where}: {what} must hold one value per point ({n}), got shape "
                         f"{tuple(array.shape)}")
    if what in ("labels", "levels"):
        if array.dtype.kind not in "iuU":
            raise InputError(f"{where}: {what} must be integers or strings, got "
                             f"{array.dtype}")
        return array.astype(np.int64) if array.dtype.kind in "iu" else array
    array = _finite(array, where, what)
    with np.errstate(over="ignore", under="ignore"):
        square = array * array
    bad = array < 0 if what == "scores" else ~(square > 0) | ~np.isfinite(square)
    if bad.any():
        need = ">= 0" if what == "scores" else "> 0, with a square finite and > 0"
        raise InputError(f"{where}: {int(bad.sum())} {what} not {need} ({_rows(bad)})")
    return array


def image_label(value, where):
    """An image's label (of breakdown_by): one integer or string."""
    if isinstance(value, (str, numbers.Integral)) and not isinstance(value, bool):
        return value
    array = host_array(value, where)
    if array.size != 1 or array.dtype.kind not in "iuU":
        raise InputError(f"{where}: an image's label must be one integer or string, got "
                         f"{shown(value)}")
    return array.reshape(()).item()


def size(value, where):
    """An image's (width, height), both finite and > 0."""
    array = host_array(value, where)
    if array.shape != (2,) or array.dtype.kind not in "iuf":
        raise InputError(f"{where}: size must be (width, height), got {shown(value)}")
    width, height = (float(v) for v in array)
    if not (np.isfinite(width) and np.isfinite(height) and width > 0 and height > 0):
        raise InputError(f"{where}: size must be two finite numbers > 0, got "
                         f"({width:g}, {height:g})")
    return width, height


def count(value, where):
    """A count-only prediction: one finite number >= 0."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        number = value
    else:
        array = host_array(value, where)
        if array.size != 1 or array.dtype.kind not in "iuf":
            raise InputError(f"{where}: count must be one number, got {shown(value)}")
        number = array.reshape(()).item()
    if not np.isfinite(number) or number < 0:
        raise InputError(f"{where}: count must be a finite number >= 0, got {number:g}")
    return number


def _finite(array, where, what):
    if array.dtype.kind not in "iuf":
        raise InputError(f"{where}: {what} must be numbers, got {array.dtype}")
    array = array.astype(np.float64, copy=False)
    bad = ~(np.abs(array) <= MAX_COORD)  # NaN and infinities too
    if bad.any():
        bad = bad.reshape(array.shape[0], -1).any(axis=1)
        raise InputError(f"{where}: {int(bad.sum())} {what} NaN, infinite or beyond "
                         f"+-{MAX_COORD:.4g} ({_rows(bad)})")
    return array


def _rows(bad):
    rows = np.flatnonzero(bad)
    return f"rows {', '.join(map(str, rows[:5].tolist()))}{', ...' if rows.size > 5 else ''}"
