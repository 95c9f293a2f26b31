"""ShanghaiTech and UCF-QNRF .mat files."""
import atexit
import contextlib
import json
import os
import re
import select
import subprocess
import sys
import threading

import numpy as np

from .common import _expand, _file_ids, _per_image_result, _Problems
from .mat_reading import READY

_MAT_AFFIXES = re.compile(r"^(?:gt_img_|gt_|img_)?(.*?)(?:_ann)?$", re.IGNORECASE)
CRASHED = "cannot read as a .mat file: the reader (scipy.io) crashed on it, so it is damaged"
READ_SECONDS = 60  # one file; the largest real annotation reads in milliseconds
STALLED = f"cannot read as a .mat file: still reading it after {READ_SECONDS} s"


def mat_image_id(stem):
    """ShanghaiTech / UCF-QNRF file stem -> id text.

    'GT_IMG_12' -> '12', 'img_0001_ann' -> '0001', '0001' -> '0001'."""
    return _MAT_AFFIXES.match(stem).group(1) or stem


class _Reader:
    """Reads .mat files in a child process (``mat_reading``): scipy's MATLAB reader can
    crash on a damaged file, which no exception handler catches. A crash, or a file
    that takes more than READ_SECONDS, costs the child, is reported against the file,
    and the next file starts a new child. A child process, not multiprocessing: a
    script that calls pointscore need not guard its main module. One child serves every
    call of this process (starting one costs about half a second: the interpreter and
    scipy.io); it ends when this process does."""

    def __init__(self):
        self.forget()

    def forget(self):
        """No child: at the start, and in a forked process (the child is the parent's)."""
        self.child, self.lock = None, threading.Lock()

    def __call__(self, path, key):
        with self.lock:
            if self.child is None:
                self.child = _start_child()
            request = {"path": os.path.abspath(path), "key": key}
            try:
                self.child.stdin.write(json.dumps(request).encode() + b"\n")
                self.child.stdin.flush()
                ready, _, _ = select.select([self.child.stdout], [], [], READ_SECONDS)
                answer = json.loads(self.child.stdout.readline()) if ready else None
                if answer is None:
                    self.stop()
                    return None, [STALLED]
                size = 16 * (answer["rows"] or 0)
                data = self.child.stdout.read(size)
                if len(data) != size:
                    raise BrokenPipeError
            except (OSError, ValueError):  # a broken pipe, a line cut short: a crash
                self.stop()
                return None, [CRASHED]
        if answer["rows"] is None:
            return None, answer["messages"]
        return np.frombuffer(data, np.float64).reshape(-1, 2), answer["messages"]

    def stop(self):
        """End the child (it ends by itself when this process closes its stdin)."""
        if self.child is not None:
            self.child.kill()
            self.child.wait()
            for pipe in (self.child.stdin, self.child.stdout):
                with contextlib.suppress(OSError):  # unflushed bytes for a dead child
                    pipe.close()
        self.child = None


def _start_child():
    """The reading process, once it says it is ready. Isolated (-I): neither the
    working directory nor PYTHONPATH decides what it imports, but this process's path."""
    code = (f"import sys; sys.path[:0] = {[p for p in sys.path if p]!r}; "
            f"from {__package__}.mat_reading import serve; serve()")
    # its stderr (scipy's warnings, a crash's report) is not the user's business
    child = subprocess.Popen([sys.executable, "-I", "-c", code], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    if child.stdout.readline() != READY:
        child.kill()
        child.wait()
        raise RuntimeError("the .mat reading process did not start")
    return child


_read = _Reader()
atexit.register(_read.stop)
os.register_at_fork(after_in_child=_read.forget)


def from_mat(paths, *, key=None, with_images=False):
    """ShanghaiTech ``GT_IMG_*.mat`` / UCF-QNRF ``*_ann.mat`` files -> points Table.

    Parameters
    ----------
    paths : path or sequence of paths
        Files, or directories of .mat files; each file's image id comes from its name.
    key : str, optional
        The variable holding N x 2 (x, y) points (default: ``image_info`` or
        ``annPoints``).
    with_images : bool
        Also return the images table (every file, with or without points).

    Returns
    -------
    pyarrow.Table, or (pyarrow.Table, pyarrow.Table) with ``with_images``

    Raises
    ------
    InputError
        One line per problem, naming the file.
    """
    files = _expand(paths, "mat")
    ids = _file_ids(files, mat_image_id)
    problems = _Problems()
    arrays = []
    for path in files:
        array, messages = _read(path, key)
        for message in messages:
            problems.add(path, message)
        arrays.append(array)
    problems.raise_if_any()
    return _per_image_result(ids, arrays, with_images)
