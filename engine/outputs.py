"""Writing results: files are written to a temporary name beside the target and
renamed into place, so a reader never sees a half-written file and a failed run leaves
nothing behind; problems with the paths are found before the work."""
import json
import os
import sys
import tempfile
from contextlib import contextmanager

from .errors import InputError, label_of, option


def output_path_problem(name, path):
    """Why ``path`` cannot be written as output ``name``, or None: checked before the
    work, not after it."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        return f"{option(name)} {label_of(path)}: directory {label_of(directory)} does not exist"
    if os.path.isdir(path):
        return f"{option(name)} {label_of(path)}: is a directory"
    return None


def output_problems(outputs):
    """One line per problem with a command's outputs {name: path or None}, before the
    work: an empty path, two outputs naming the same file (the later would replace the
    earlier), a path that cannot be written. A 'json' of '-' is stdout; a 'report'
    names a directory."""
    problems, seen = [], {}
    for name, path in outputs.items():
        if path is None or (name == "json" and path == "-"):
            continue
        if not path:
            problems.append(f"usage error: {option(name)} needs a path")
            continue
        real = os.path.realpath(path)
        if real in seen:
            problems.append(f"usage error: {option(seen[real])} and {option(name)} both name "
                            f"{label_of(path)}")
            continue
        seen[real] = name
        problem = report_directory_problem(path) if name == "report" \
            else output_path_problem(name, path)
        if problem:
            problems.append(problem)
    return problems


@contextmanager
def atomic_path(path):
    """Yield a temporary path in the target's directory; rename it into place on success."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".pointscore-", dir=directory)
    except OSError as exc:
        raise InputError(f"{label_of(path)}: cannot write: {exc.strerror}") from None
    os.close(fd)
    try:
        yield tmp
        try:
            os.chmod(tmp, 0o666 & ~umask())  # mkstemp makes it owner-only
            os.replace(tmp, path)
        except OSError as exc:
            raise InputError(f"{label_of(path)}: cannot write: {exc.strerror}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def summary_json(summary):
    return json.dumps(summary, indent=2, allow_nan=False) + "\n"


def write_json(summary, path):
    if path == "-":
        sys.stdout.write(summary_json(summary))
        return
    text = summary_json(summary)
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as out:
        out.write(text)


def write_table(table, path, atomic=True):
    """A table as Parquet at ``path`` (through a temporary name unless ``atomic`` is
    False: the caller already writes to one)."""
    import pyarrow.parquet as pq
    if not atomic:
        pq.write_table(table, path)
        return
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


REPORT_FILES = {"index.html"}   # all a report directory holds: what may be replaced


def report_directory_problem(directory):
    """Why ``directory`` cannot take a report, or None: checked before the work, not
    after it. It must be new, empty or a previous report (only ``index.html``)."""
    path = os.path.abspath(directory)
    parent = os.path.dirname(path)
    shown = f"{option('report')} {label_of(directory)}"
    if not os.path.isdir(parent):
        return f"{shown}: directory {label_of(parent)} does not exist"
    if os.path.lexists(path) and not os.path.isdir(path):
        return f"{shown}: exists and is not a directory"
    if os.path.isdir(path):
        try:
            others = set(os.listdir(path)) - REPORT_FILES
        except OSError as exc:
            return f"{shown}: cannot read: {exc.strerror}"
        if others:
            return (f"{shown}: holds other files than a report "
                    f"({', '.join(label_of(o) for o in sorted(others)[:3])}); give a new or "
                    "empty directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"{shown}: cannot write in {label_of(parent)}"
    return None
