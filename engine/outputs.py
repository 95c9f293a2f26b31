"""Writing results without harming anything else.

* A regular file (or a new path) is written under a temporary name beside it and
  renamed into place: a reader never sees half a file, and a failed or killed run
  leaves nothing behind. Through a symbolic link, the file it points to is replaced,
  and the link kept.
* A character device or a FIFO (``/dev/stdout``, ``/dev/null``, a pipe) is written
  through, never replaced; ``-`` is standard output. Anything else (a directory, a
  socket, a block device) is refused.
* A failed write (a full disk, ``/dev/full``) is an ``OutputError``: exit status 1,
  one line.
* Problems with the paths are found before the work: an output that names an input or
  lies inside an input directory, two outputs that name one file, a missing directory.
"""
import json
import os
import stat
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass

from . import remote
from .errors import InputError, OutputError, label_of, option

TABLE_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".jsonl": "jsonl"}
STDOUT = "-"
REPORT_FILES = {"index.html"}   # all a report directory holds: what may be replaced


@dataclass
class Destination:
    """Where one output goes: ``path`` is what to open for writing (a temporary file, a
    device or a FIFO), or None for standard output; ``label`` the name messages give
    it."""
    path: str
    label: str
    format_name: str = None  # the name whose extension gives a table's format

    def __post_init__(self):
        if self.format_name is None:
            self.format_name = STDOUT if self.path is None else self.path

    def open(self, binary=False):
        """A file to write to (standard output's own, which closing leaves open)."""
        if self.path is None:
            stream = sys.stdout.buffer if binary else sys.stdout
            return _Unclosed(stream)
        return open(self.path, "wb" if binary else "w",
                    **({} if binary else {"encoding": "utf-8"}))


class _Unclosed:
    """A stream whose ``close`` only flushes (standard output stays open)."""

    def __init__(self, stream):
        self.stream = stream

    def __getattr__(self, name):
        return getattr(self.stream, name)

    def close(self):
        self.stream.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _kind(path):
    """'missing', 'regular', 'through' (character device or FIFO) or 'other'."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "missing"
    except OSError:
        return "other"
    if stat.S_ISREG(mode):
        return "regular"
    return "through" if stat.S_ISCHR(mode) or stat.S_ISFIFO(mode) else "other"


def table_format(name, path):
    """The format a table output's path names: by extension, CSV for standard output
    and devices."""
    if path == STDOUT or _kind(os.path.realpath(path)) == "through":
        return "csv"
    lower = path.lower()
    for suffix, fmt in TABLE_FORMATS.items():
        if lower.endswith(suffix):
            return fmt
    raise InputError(f"{option(name)} {label_of(path)}: unknown format (name the file "
                     ".parquet, .csv or .jsonl)")


def output_path_problem(name, path):
    """Why ``path`` cannot be written as output ``name``, or None: checked before the
    work, not after it."""
    if path == STDOUT or remote.is_remote(path):  # an object store: written at the end
        return None
    real = os.path.realpath(path)
    directory = os.path.dirname(real)
    kind = _kind(real)
    if os.path.isdir(real):
        return f"{option(name)} {label_of(path)}: is a directory"
    if kind == "other":
        return f"{option(name)} {label_of(path)}: is not a regular file, a device or a FIFO"
    if kind == "missing" and not os.path.isdir(directory):
        return f"{option(name)} {label_of(path)}: directory {label_of(directory)} does not exist"
    return None


def _inside(path, directory):
    """Whether ``path`` is ``directory`` or within it (URIs by their '/' separated keys)."""
    sep = "/" if remote.is_remote(directory) else os.sep
    return path == directory or path.startswith(directory.rstrip(sep) + sep)


def output_problems(outputs, inputs=()):
    """One line per problem with a command's outputs {name: path or None}, before the
    work: an empty path, two outputs naming one file (the later would replace the
    earlier), an output naming an input ((name, path) pairs) or lying inside an input
    directory, a path that cannot be written. A 'report' names a directory."""
    problems, seen = [], {}
    sources = [(name, path if remote.is_remote(path) else os.path.realpath(path))
               for name, path in inputs
               if isinstance(path, (str, os.PathLike)) and path != STDOUT]
    for name, path in outputs.items():
        if path is None:
            continue
        if not path:
            problems.append(f"usage error: {option(name)} needs a path")
            continue
        real = path if path == STDOUT or remote.is_remote(path) else os.path.realpath(path)
        if real in seen:
            problems.append(f"usage error: {option(seen[real])} and {option(name)} both name "
                            f"{label_of(path)}")
            continue
        seen[real] = name
        problem = report_directory_problem(path) if name == "report" \
            else output_path_problem(name, path)
        if problem:
            problems.append(problem)
            continue
        clash = None if real == STDOUT or _kind(real) == "through" else \
            next((source for source, where in sources if _inside(real, where)), None)
        if clash:
            problems.append(f"usage error: {option(name)} {label_of(path)} would write over "
                            f"the input {option(clash)}")
    return problems


@contextmanager
def destination(path):
    """A Destination for ``path``; a regular file takes its place on leaving without an
    error (the temporary file is removed otherwise)."""
    if path == STDOUT:
        yield Destination(None, "standard output")
        return
    if remote.is_remote(path):
        yield from _remote_destination(path)
        return
    target = os.path.realpath(path)  # through a link, the file it points to
    if _kind(target) == "through":
        yield Destination(target, label_of(path), path)
        return
    directory, base = os.path.split(target)
    suffix = next((s for s in TABLE_FORMATS if base.lower().endswith(s)), "")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".pointscore-", suffix=suffix, dir=directory)
    except OSError as exc:
        raise OutputError(f"{label_of(path)}: cannot write: {exc.strerror}") from None
    os.close(fd)
    try:
        yield Destination(tmp, label_of(path), path)
        try:
            os.chmod(tmp, 0o666 & ~umask())  # mkstemp makes it owner-only
            os.replace(tmp, target)
        except OSError as exc:
            raise OutputError(f"{label_of(path)}: cannot write: {exc.strerror}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _remote_destination(uri):
    """A local temporary file, uploaded whole to ``uri`` on leaving without an error (an
    object appears whole or not at all)."""
    suffix = next((s for s in TABLE_FORMATS if uri.lower().endswith(s)), "")
    fd, tmp = tempfile.mkstemp(prefix=".pointscore-", suffix=suffix)
    os.close(fd)
    try:
        yield Destination(tmp, label_of(uri), uri)
        try:
            remote.upload(tmp, uri)
        except OSError as exc:
            raise OutputError(f"{label_of(uri)}: cannot write: "
                              f"{str(exc).splitlines()[0]}") from None
    finally:
        os.unlink(tmp)


def umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def summary_json(summary):
    return json.dumps(summary, indent=2, allow_nan=False) + "\n"


def write_text(dest, text):
    """Text to a Destination; a failed write is an OutputError."""
    try:
        with dest.open() as out:
            out.write(text)
    except OSError as exc:
        raise OutputError(f"{dest.label}: cannot write: {exc.strerror or exc}") from None


def write_json(summary, path):
    """A JSON document at ``path`` ('-': standard output), written whole or not at all."""
    with destination(path) as dest:
        write_text(dest, summary_json(summary))


def report_directory_problem(directory):
    """Why ``directory`` cannot take a report, or None: checked before the work, not
    after it. It must be new, empty or a previous report (a directory holding only the
    regular file ``index.html``), and not a link: a report never deletes what it did
    not write."""
    if remote.is_remote(directory):  # index.html is written there whole, at the end
        return None
    path = os.path.abspath(directory)
    parent = os.path.dirname(path)
    shown = f"{option('report')} {label_of(directory)}"
    if not os.path.isdir(parent):
        return f"{shown}: directory {label_of(parent)} does not exist"
    if os.path.islink(path):
        return f"{shown}: is a symbolic link; give a new or empty directory"
    if os.path.lexists(path) and not os.path.isdir(path):
        return f"{shown}: exists and is not a directory"
    if os.path.isdir(path):
        try:
            found = os.listdir(path)
        except OSError as exc:
            return f"{shown}: cannot read: {exc.strerror}"
        others = set(found) - REPORT_FILES
        if others:
            return (f"{shown}: holds other files than a report "
                    f"({', '.join(label_of(o) for o in sorted(others)[:3])}); give a new or "
                    "empty directory")
        index = os.path.join(path, "index.html")
        if found and (os.path.islink(index) or not os.path.isfile(index)):
            return f"{shown}: its index.html is not a regular file; give a new or empty directory"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"{shown}: cannot write in {label_of(parent)}"
    return None
