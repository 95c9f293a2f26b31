"""Compile the entry kernels (kernels.exports) ahead of time into one extension module,
``pointscore.kernels._compiled``, when the package is built (setup.py calls ``build``).

Why ahead of time: Numba compiles a kernel the first time a process calls it, which
makes the first run after installing take 20 s on 2 cores, and even a warm run pays for
importing Numba and loading its registries (0.7 s) before it scores anything. The
extension needs neither: it imports in milliseconds, with NumPy alone.

It is built with ``numba.pycc`` (Numba's own ahead-of-time compiler: the same source,
the same LLVM, so the same bits as the JIT) for the generic CPU of the architecture, so
a wheel runs on any x86-64 or aarch64 machine. Where it cannot be built, the package
still works: kernels.jit falls back to Numba's JIT at first use.
"""
import os


def _releasing_gil(pycc_compiler):
    """pycc's exports hold the GIL, and its CC has no option to release it; its wrapper
    honours the compile flags' ``release_gil`` (Numba's ``nogil``), so the flags it
    compiles with get that set. The engine runs kernels in threads, which need it."""
    class Flags(pycc_compiler.Flags):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.release_gil = True
    pycc_compiler.Flags = Flags


def _constant(value):
    def source_digest():
        return value
    return source_digest


def build(output_dir, output_file):
    """Compile every entry kernel, and ``source_digest`` (kernels.jit's digest of the
    sources compiled), into ``output_dir/output_file``. Must run in a process that has
    not imported Numba or the kernel modules yet: it sets their environment."""
    os.environ["POINTSCORE_KERNELS"] = "jit"  # the kernel modules' njit is Numba's
    os.environ["NUMBA_CPU_NAME"] = "generic"  # callees too, whatever CPU builds it
    import importlib
    import warnings

    from numba.core.errors import NumbaPendingDeprecationWarning
    with warnings.catch_warnings():  # pycc is pending deprecation, with no successor yet
        warnings.simplefilter("ignore", NumbaPendingDeprecationWarning)
        from numba.pycc import CC
        from numba.pycc import compiler as pycc_compiler

    from .exports import ENTRIES, symbol
    from .jit import source_digest
    _releasing_gil(pycc_compiler)
    cc = CC("_compiled", source_module=__name__)
    cc.output_dir, cc.output_file = output_dir, output_file
    for entry, signature in ENTRIES.items():
        module, name = entry.split(".")
        kernel = getattr(importlib.import_module(f"{__package__}.{module}"), name)
        cc.export(symbol(entry), signature)(kernel.py_func)
    cc.export("source_digest", "i8()")(_constant(source_digest()))
    cc.compile()
