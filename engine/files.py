"""What an input path may be: a regular file, or a directory of them (a Parquet dataset).

A FIFO or a device would block or never end, and is refused. In the untrusted mode no
symbolic link is followed either, in the path or inside a dataset directory: a
submission must not make pointscore read (and quote in its messages) another file.
"""
import os
import stat

from .errors import InputError, label_of

MAX_DATASET_FILES = 100_000


def check_name(name, label):
    """Arrow opens files by UTF-8 names only; a name that is not UTF-8 (bytes Python
    keeps as lone surrogates) would fail deep in the reader."""
    try:
        os.fsdecode(name).encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(f"{label}: the name is not UTF-8 text, which pointscore's readers "
                         "need: rename it") from None


def check_input_path(path, untrusted=False):
    """Raise InputError unless ``path`` is an input pointscore may read; else return its
    files: the path itself, or the files of a directory (one walk serves every check
    of them)."""
    name = os.fspath(path)
    label = label_of(name)
    check_name(name, label)
    try:
        info = os.lstat(name) if untrusted else os.stat(name)
    except FileNotFoundError:
        raise InputError(f"{label}: no such file or directory") from None
    except OSError as exc:
        raise InputError(f"{label}: cannot read: {exc.strerror}") from None
    if stat.S_ISLNK(info.st_mode):
        raise InputError(f"{label}: is a symbolic link (not read in the untrusted mode)")
    if stat.S_ISDIR(info.st_mode):
        return _check_directory(name, label, untrusted)
    if not stat.S_ISREG(info.st_mode):
        raise InputError(f"{label}: is not a regular file or a directory")
    if info.st_size == 0:
        raise InputError(f"{label}: the file is empty")
    return [name]


def _check_directory(name, label, untrusted):
    seen, found = 0, []
    for directory, subdirs, files in os.walk(name, followlinks=not untrusted):
        for entry in subdirs + files:
            seen += 1
            if seen > MAX_DATASET_FILES:
                raise InputError(f"{label}: holds more than {MAX_DATASET_FILES:,} files")
            path = os.path.join(directory, entry)
            check_name(path, label_of(path))
            mode = (os.lstat if untrusted else os.stat)(path).st_mode
            if stat.S_ISLNK(mode):
                raise InputError(f"{label_of(path)}: is a symbolic link (not read in the "
                                 "untrusted mode)")
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise InputError(f"{label_of(path)}: is not a regular file or a directory")
            if stat.S_ISREG(mode):
                found.append(path)
    return found
