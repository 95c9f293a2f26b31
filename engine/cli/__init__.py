"""The ``pointscore`` command: a thin layer over the library.

Exit status: 0 success; 2 bad input or usage (one line per problem, options named by
their flags); 1 an internal error or a run that could not finish (one line).
"""
import logging
import os
import sys

from ..errors import InputError, escape
from ..runners import DistributedError
from . import parsers
from .commands import COMMANDS


def main(argv=None):
    """Run the command line; returns the exit status."""
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        args = parsers.build().parse_args(argv)
        COMMANDS[args.command](args)
    except InputError as exc:
        for line in exc.lines(parsers.flag):
            print(f"pointscore: {' '.join(line.splitlines())}", file=sys.stderr)
        return 2
    except DistributedError as exc:
        print(f"pointscore: {escape(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("pointscore: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # an internal error: one line, the traceback only on request
        if os.environ.get("POINTSCORE_DEBUG"):
            raise
        first_line = escape((str(exc).strip().splitlines() or [""])[0])[:200]
        print(f"pointscore: internal error: {type(exc).__name__}: {first_line} "
              "(set POINTSCORE_DEBUG=1 for a traceback)", file=sys.stderr)
        return 1
    return 0
