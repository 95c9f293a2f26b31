"""One line on a terminal when a run compiles kernels: without the kernels compiled ahead
of time (kernels/aot.py), the first run spends most of its time in Numba's compiler,
silent otherwise."""
from contextlib import contextmanager, nullcontext

NOTICE = ("compiling the scoring kernels for this machine, once (later runs start warm; "
          "`pointscore warmup` does it ahead of time)")


@contextmanager
def _first_compile_told(tell):
    from ..kernels import jit
    if jit.SOURCE == "compiled":  # nothing to compile, and no Numba to import
        yield
        return
    from numba.core import event  # imported only when the notice is wanted

    class FirstCompile(event.Listener):
        told = False

        def on_start(self, ev):
            if not self.told and ev.data["dispatcher"].py_func.__module__.startswith(
                    "pointscore."):
                self.told = True
                tell(NOTICE)

        def on_end(self, ev):
            pass

    with event.install_listener("numba:compile", FirstCompile()):
        yield


def compile_notice(enabled, tell):
    """A context in which the first compilation of a pointscore kernel calls
    ``tell(NOTICE)``, once; nothing when not ``enabled`` (stderr not a terminal)."""
    return _first_compile_told(tell) if enabled else nullcontext()
