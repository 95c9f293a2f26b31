"""Helpers shared by the converters: inputs, problems, tables."""
import json
import os
import re

import numpy as np
import pyarrow as pa

from ..choices import CONVERT_FORMATS
from ..errors import InputError, label_of
from ..files import check_name

FORMATS = CONVERT_FORMATS
EXTENSIONS = {
    "nwpu-txt": (".txt",),
    "nwpu-counts": (".txt",),
    "nwpu-json": (".json",),
    "mat": (".mat",),
    "jhu": (".txt",),
    "coco": (".json",),
    "csv": (".csv", ".tsv", ".csv.gz", ".tsv.gz"),
}
MAX_PROBLEMS_PER_FILE = 20
INT64_MAX = (1 << 63) - 1
INT64_DIGITS = len(str(INT64_MAX))
_FLOAT_RE = r"^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$"
_INT_RE = r"^-?[0-9]+$"          # what arrow's string -> int64 cast accepts


# ----------------------------------------------------------------------------- helpers

class _Problems:
    """One line per problem, at most MAX_PROBLEMS_PER_FILE listed per file."""

    def __init__(self):
        self.lines = []
        self.hidden = {}
        self.shown = {}
        self.total = 0

    def add(self, path, message):
        self.total += 1
        if self.shown.get(path, 0) >= MAX_PROBLEMS_PER_FILE:
            self.hidden[path] = self.hidden.get(path, 0) + 1
            return
        self.shown[path] = self.shown.get(path, 0) + 1
        self.lines.append(f"{path}: {message}")

    def __bool__(self):
        return bool(self.lines)

    def raise_if_any(self):
        if self.lines:
            extra = [f"{path}: ... and {n} more problem{'s' if n > 1 else ''}"
                     for path, n in self.hidden.items() if n]
            raise InputError(self.lines + extra)


def _plural(n, word):
    return f"{n} {word}{'' if n == 1 else 's'}"


def _as_list(paths):
    if isinstance(paths, (str, os.PathLike)):
        return [paths]
    return list(paths)


def _natural(name):
    """Sort key: 'GT_IMG_3' before 'GT_IMG_12'."""
    return [(0, int(part), part) if part.isdigit() else (1, 0, part)
            for part in re.split(r"([0-9]+)", name)]


def _expand(paths, fmt):
    """Files named by `paths`: files as given, then each directory's files with the
    format's extension, in natural name order (not recursive)."""
    files, problems = [], []
    for path in _as_list(paths):
        label = os.fspath(path)
        if os.path.isdir(label):
            found = sorted((name for name in os.listdir(label)
                            if name.lower().endswith(EXTENSIONS[fmt])
                            and os.path.isfile(os.path.join(label, name))), key=_natural)
            if not found:
                problems.append(f"{label}: no {' or '.join(EXTENSIONS[fmt])} files in "
                                f"this directory")
            files.extend(os.path.join(label, name) for name in found)
        elif os.path.isfile(label):
            if os.path.getsize(label) == 0:
                problems.append(f"{label}: the file is empty")
            else:
                files.append(label)
        else:
            problems.append(f"{label}: no such file or directory")
    if not files and not problems:
        problems.append("no input files given")
    if problems:
        raise InputError(problems)
    for name in files:
        check_name(name, label_of(name))
    return files


def _read_text(path):
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise InputError(f"{path}: line {line}: not UTF-8 text") from None


class _IntegerOutOfRange(Exception):
    pass


def _int64(text):
    """Decimal digits (with an optional '-') as a Python int, or None beyond int64;
    judged by length before converting: Python refuses to convert more than 4,300
    digits, and slowly."""
    value = int(text) if len(text.lstrip("-")) <= INT64_DIGITS else None
    return value if value is not None and -INT64_MAX - 1 <= value <= INT64_MAX else None


def _json_int(text):
    """A JSON integer as a Python int, refused beyond int64."""
    value = _int64(text)
    if value is None:
        raise _IntegerOutOfRange(text)
    return value


def _read_json(path):
    text = _read_text(path)
    try:
        return json.loads(text, parse_int=_json_int)
    except _IntegerOutOfRange as exc:
        number = exc.args[0]
        line = text.count("\n", 0, max(text.find(number), 0)) + 1
        raise InputError(f"{path}: line {line}: the integer "
                         f"{number[:20]}{'...' if len(number) > 20 else ''} is beyond the "
                         "64-bit range") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: line {exc.lineno}: invalid JSON: {exc.msg}") from None
    except RecursionError:
        raise InputError(f"{path}: invalid JSON: nested too deeply") from None


def _id_array(values):
    """Python ids (int or str, already checked) -> int64 or string arrow array."""
    if values and all(isinstance(v, int) for v in values):
        return pa.array(values, pa.int64())
    return pa.array([str(v) for v in values], pa.string())


def _file_ids(files, strip):
    """Image ids from file names: all-digit ids become integers (all or none)."""
    names = []
    for path in files:
        stem = os.path.basename(path)
        stem = stem[:stem.lower().rfind(".")] if "." in stem else stem
        names.append(strip(stem))
    seen, problems = {}, []
    if names and all(name.isascii() and name.isdigit() for name in names):
        ids = [_int64(name) for name in names]
        problems = [f"{label_of(path)}: the image id its name gives is beyond the 64-bit "
                    "integer range" for path, i in zip(files, ids) if i is None]
        if problems:
            raise InputError(problems)
    else:
        ids = names
    for path, image_id in zip(files, ids):
        if image_id in seen:
            problems.append(f"{path}: image id {image_id!r} is also the id of {seen[image_id]}")
        else:
            seen[image_id] = path
    if problems:
        raise InputError(problems)
    return ids


def _points_table(image_id, x, y, **extra):
    columns = {"image_id": image_id, "x": np.asarray(x, np.float64),
               "y": np.asarray(y, np.float64)}
    columns.update({k: v for k, v in extra.items() if v is not None})
    return pa.table(columns)


def _concat(tables, labels, what):
    """Concatenate per-file tables; integer ids in one file and string ids in another
    (or any other type clash) is an error naming the files."""
    if len(tables) == 1:
        return tables[0]
    first = tables[0].schema
    problems = []
    for table, label in zip(tables[1:], labels[1:]):
        for field in table.schema:
            if field.name in ("image_id", "class") and field.name in first.names \
                    and first.field(field.name).type != field.type:
                problems.append(f"{label}: column '{field.name}' is {field.type} here but "
                                f"{first.field(field.name).type} in {labels[0]}")
    if problems:
        raise InputError(problems)
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise InputError(f"cannot combine the {what} of {', '.join(labels)}: {exc}") from None


def _check_unique_images(ids, problems):
    """Each image once across all inputs: ids is a list of (image_id, file, where)."""
    seen = {}
    for image_id, path, where in ids:
        key = image_id
        if key in seen:
            other_path, other_where = seen[key]
            problems.add(path, f"{where}: image {image_id!r} is already given "
                         f"({other_where}{'' if other_path == path else ' of ' + other_path})")
        else:
            seen[key] = (path, where)


def _images_table(image_id, width=None, height=None):
    columns = {"image_id": image_id}
    if width is not None:
        columns["width"] = width
        columns["height"] = height
    return pa.table(columns)


def _result(points, images, with_images):
    return (points, images) if with_images else points


def _per_image_result(ids, arrays, with_images):
    counts = np.array([len(a) for a in arrays], np.int64)
    xy = np.concatenate(arrays) if arrays else np.zeros((0, 2))
    id_array = _id_array(ids)
    image_id = id_array.take(pa.array(np.repeat(np.arange(len(ids)), counts)))
    points = _points_table(image_id, xy[:, 0], xy[:, 1])
    return _result(points, _images_table(id_array), with_images)
