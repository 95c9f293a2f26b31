"""The ``pointscore`` command: a thin layer over the library.

Exit status (docs/metrics.md, section 8): 0 success; 2 bad input or usage (one line per
problem, options named by their flags); 1 an internal error, a failed write or a run
that could not finish (one line); 128 + N stopped by signal N, after cleaning up.
"""
import logging
import os
import signal
import sys
import warnings

from ..errors import InputError, OutputError, escape
from ..runners import DistributedError
from . import parsers
from .compiling import compile_notice
from .say import say

# SIGTERM (what `timeout`, job runners and `kill` send) and SIGHUP (a closed terminal)
# clean up as Ctrl-C does: temporary files, scratch partitions and local clusters go.
CLEANUP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class Stopped(BaseException):
    """A signal arrived: unwind, cleaning up, then exit with 128 + its number. A
    BaseException, so that no handler of ordinary errors takes it for one."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


def _stop(signum, frame):
    raise Stopped(signum)


class _SayHandler(logging.Handler):
    """Libraries' log records (Dask's, numba's) as the command's own lines."""

    def emit(self, record):
        say(record.getMessage())


def _say_warning(message, category, *_):
    say(f"warning: {category.__name__}: {message}")


def main(argv=None):
    """Run the command line; returns the exit status."""
    logging.basicConfig(level=logging.WARNING, handlers=[_SayHandler()])
    with warnings.catch_warnings():  # restores the caller's warning display on return
        warnings.showwarning = _say_warning
        return _run(argv)


def _run(argv):
    previous = {s: signal.signal(s, _stop) for s in CLEANUP_SIGNALS}
    try:
        args = parsers.build().parse_args(argv)
        from .commands import COMMANDS  # the library loads only once there is work
        # warmup says what it compiles itself.
        with compile_notice(sys.stderr.isatty() and args.command != "warmup", say):
            status = COMMANDS[args.command](args)
    except InputError as exc:
        for line in exc.lines(parsers.flag):
            say(line)
        return 2
    except (DistributedError, OutputError) as exc:
        say(str(exc))
        return 1
    except KeyboardInterrupt:
        say("interrupted")
        return 128 + signal.SIGINT
    except Stopped as stop:
        say(f"stopped by {signal.Signals(stop.signum).name}")
        return 128 + stop.signum
    except Exception as exc:  # an internal error: one line, the traceback only on request
        if os.environ.get("POINTSCORE_DEBUG"):
            raise
        first_line = escape((str(exc).strip().splitlines() or [""])[0])[:200]
        say(f"internal error: {type(exc).__name__}: {first_line} "
            "(set POINTSCORE_DEBUG=1 for a traceback)")
        return 1
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return status if isinstance(status, int) else 0
