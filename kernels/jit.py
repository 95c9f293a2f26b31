"""Where the CPU kernels' machine code comes from: ``njit`` here stands in for Numba's.

When the package was built, the entry kernels (kernels.exports) were compiled ahead of
time into the extension ``pointscore.kernels._compiled`` (kernels.aot). With it, a run
imports no Numba and compiles nothing: the first run after installing is as fast as any.
Each ``@njit`` function of the kernel modules then becomes:

- for an entry kernel, the compiled function behind a check of its arguments against
  the entry's signature (compiled code trusts the types it was built for);
- for any other function, a stand-in that is never called from Python on the engine's
  paths, since compiled entries call the compiled callees.

A call the compiled code cannot take (arguments of another type, a helper called from
Python) runs on the kernels compiled by Numba's JIT instead: the same modules imported
a second time as ``pointscore.kernels._jitted``, where ``njit`` is Numba's. The results
are the same bits either way (tests/test_compiled.py runs both).

``POINTSCORE_KERNELS`` chooses: ``auto`` (the default: the extension where it is
present and built from these very sources, else the JIT), ``compiled`` (the extension
or an error, and an error for a call it cannot take) or ``jit`` (Numba's JIT only, as
the test suite runs, bounds-checked). The extension records a digest of the kernel
sources it was built from, so an edited checkout never runs stale machine code.
"""
import hashlib
import importlib
import importlib.util
import os
import pathlib
import re
import sys
import threading
import warnings

import numpy as np

from .exports import ENTRIES, symbol

HERE = pathlib.Path(__file__).resolve().parent
MODES = ("auto", "compiled", "jit")
TWIN = "pointscore.kernels._jitted"
DTYPES = {"b1": np.bool_, "u1": np.uint8, "i4": np.int32, "i8": np.int64, "f8": np.float64}
_ARGUMENT = re.compile(r"(\w+)(\[[^\]]*\])?")


def source_digest(directory=HERE):
    """A digest of the CPU kernels' sources (every module here but the CUDA one), as the
    int64 the extension returns from its ``source_digest`` entry."""
    digest = hashlib.sha256()
    for path in sorted(directory.glob("*.py")):
        if path.name != "cuda.py":
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return int.from_bytes(digest.digest()[:8], "little", signed=True)


def parse_signature(signature):
    """``"i8[::1], f8"`` -> [(np.int64, 1), (np.float64, 0)]: each argument's dtype and
    dimensions (0 for a scalar)."""
    return [(DTYPES[code], brackets.count(",") + 1 if brackets else 0)
            for code, brackets in _ARGUMENT.findall(signature)]


def _mode():
    mode = os.environ.get("POINTSCORE_KERNELS", "auto")
    if mode not in MODES:
        raise ValueError(f"POINTSCORE_KERNELS={mode!r}: use one of {', '.join(MODES)}")
    return mode


def _load_compiled(mode):
    """The extension when this run is to use it, else None (an error in compiled mode)."""
    if mode == "jit" or __name__ != "pointscore.kernels.jit":  # the JIT twin is always JIT
        return None
    try:
        from . import _compiled
    except ImportError as error:
        if mode == "compiled":
            raise ImportError("POINTSCORE_KERNELS=compiled, but this install has no "
                              "compiled kernels (pointscore.kernels._compiled)") from error
        return None
    if _compiled.source_digest() != source_digest():
        if mode == "compiled":
            raise ImportError("POINTSCORE_KERNELS=compiled, but the compiled kernels were "
                              "built from other kernel sources: reinstall pointscore")
        return None
    return _compiled


MODE = _mode()
COMPILED = _load_compiled(MODE)
SOURCE = "compiled" if COMPILED is not None else "jit"
_twin_lock = threading.Lock()


def _twin(entry):
    """``entry``'s function in the JIT twin of the kernel modules; the first use of each
    says so, since it compiles."""
    module, name = entry.split(".")
    with _twin_lock:
        if TWIN not in sys.modules:
            spec = importlib.util.spec_from_file_location(
                TWIN, HERE / "__init__.py", submodule_search_locations=[str(HERE)])
            package = importlib.util.module_from_spec(spec)
            sys.modules[TWIN] = package
            spec.loader.exec_module(package)
        if entry not in _twinned:
            _twinned.add(entry)
            warnings.warn(f"pointscore: {entry} was called with arguments its compiled "
                          "kernel was not built for; Numba compiles it for them now",
                          RuntimeWarning, stacklevel=3)
        return getattr(importlib.import_module(f"{TWIN}.{module}"), name)


_twinned = set()
_INT64 = (-2 ** 63, 2 ** 63)


def _fits(value, dtype, ndim):
    """Whether Numba's JIT would type ``value`` as the compiled argument: exactly the
    dtype, and for arrays the dimensions, C order, alignment and writability (a
    read-only array is another Numba type); else the call goes where the JIT would
    take it."""
    if ndim:
        return (type(value) is np.ndarray and value.dtype == dtype and value.ndim == ndim
                and value.flags.c_contiguous and value.flags.aligned
                and value.flags.writeable)
    if dtype is np.int64:
        return type(value) in (int, np.int64) and _INT64[0] <= value < _INT64[1]
    return type(value) in (float, np.float64)


class _Entry:
    """An entry kernel: its compiled function, for the arguments it was compiled for."""

    def __init__(self, function, entry):
        self.__wrapped__ = function
        self.__name__, self.__doc__ = function.__name__, function.__doc__
        self.entry = entry
        self.arguments = parse_signature(ENTRIES[entry])
        self.compiled = getattr(COMPILED, symbol(entry))

    def __call__(self, *args, **kwargs):
        if not kwargs and len(args) == len(self.arguments) and all(
                _fits(value, *kind) for value, kind in zip(args, self.arguments)):
            return self.compiled(*args)
        if MODE == "compiled":
            raise TypeError(f"{self.entry}: these arguments do not fit its compiled "
                            f"signature ({ENTRIES[self.entry]})")
        return _twin(self.entry)(*args, **kwargs)


class _Helper:
    """A kernel that compiled code calls, not Python: from Python, it runs on the JIT."""

    def __init__(self, function, entry):
        self.__wrapped__ = function
        self.__name__, self.__doc__ = function.__name__, function.__doc__
        self.entry = entry

    def __call__(self, *args, **kwargs):
        if MODE == "compiled":
            raise TypeError(f"{self.entry} is not an entry kernel (kernels/exports.py), "
                            "so it has no compiled version to call from Python")
        return _twin(self.entry)(*args, **kwargs)


def njit(**options):
    """Numba's ``njit(**options)`` without the extension; with it, the decorated function's
    compiled version (an entry kernel) or its stand-in (any other)."""
    if COMPILED is None:
        import numba
        if __name__ == TWIN + ".jit":
            # Not cached: the twin's kernels would be cached under the real modules'
            # names, with its module names inside, which a JIT run would then load.
            options.pop("cache", None)
        return numba.njit(**options)

    def decorate(function):
        entry = f"{function.__module__.rpartition('.')[2]}.{function.__name__}"
        return (_Entry if entry in ENTRIES else _Helper)(function, entry)
    return decorate
