"""`pointscore convert`: the formats crowd-counting data comes in -> the spec's long layout.

    pointscore convert --from {nwpu-txt,nwpu-json,mat,coco,csv} [--role {gt,pred}]
        INPUT [INPUT ...] --out PATH.parquet [--images-out PATH.parquet]
        [--map old=new,...] [--delimiter C] [--mat-key NAME] [--no-class]

Each INPUT is a file or a directory (its files with the format's extension, sorted by
name, not recursive). Output: one row per point, `image_id, x, y` (float64 x, y), then
`score`/`class` where the source has them, then the format's extra columns.

Formats (one Python function each, all returning a pyarrow.Table):

* ``nwpu-txt`` (:func:`from_nwpu_txt`): the NWPU-Crowd localization files, one line per
  image, ``image_id count`` then the points. Predictions (``--role pred``): ``x y`` per
  point. Ground truth (``--role gt``, e.g. ``val_gt_loc.txt``): ``x y sigma_s sigma_l
  level`` per point; ``sigma_s``, ``sigma_l`` (float64) and ``level`` (int64) are kept.
  The count must match the numbers on the line; ids are integers; an image may appear
  on one line only. Blank lines are skipped. Lines are counted from 1.
* ``nwpu-json`` (:func:`from_nwpu_json`): NWPU-Crowd per-image JSON
  ``{"img_id", "human_num", "points": [[x, y], ...], "boxes"}``; ``human_num``, when
  present, must equal the number of points; ``boxes`` are not used.
* ``mat`` (:func:`from_mat`): ShanghaiTech ``GT_IMG_<n>.mat`` (``image_info``: a cell
  holding a struct whose ``location`` is N x 2 (x, y) and ``number`` is N) and
  UCF-QNRF / NWPU ``*_ann.mat`` / ``<n>.mat`` (``annPoints``, N x 2); any other
  variable holding N x 2 with ``--mat-key``. Coordinates are kept as stored.
* ``coco`` (:func:`from_coco`): a COCO keypoint dataset (``images``, ``annotations``
  with ``keypoints`` [x, y, v, ...]) or a results list (dicts with ``image_id``,
  ``category_id``, ``keypoints``, ``score``). Every keypoint with v > 0 is a point, its
  class the ``category_id`` (``--no-class`` leaves classes out); the extra column
  ``keypoint`` is its index within the annotation. A dataset is ground truth, a
  results list predictions (``score`` kept); ``--role`` checks it, and ``--role pred``
  takes a dataset's annotations as predictions, with their ``score`` when present.
* ``csv`` (:func:`from_csv`): any CSV/TSV; ``--map img=image_id,px=x`` renames
  columns, every other column is kept as it is. The result is checked with the same
  rules as ``pointscore evaluate`` (rows counted from 0 after the header).

Per-image files (nwpu-json, mat) take their image id from the file name: the stem for
nwpu-json (``0001.json`` -> 1); for mat the stem without ShanghaiTech's ``GT_IMG_`` /
``GT_`` / ``IMG_`` prefix and UCF-QNRF's ``_ann`` suffix (``GT_IMG_12.mat`` -> 12,
``img_0001_ann.mat`` -> 1). When every such id is all digits they become integers,
otherwise they all stay strings; two files giving the same id is an error.

Images without points have no row in the long layout, yet they count (spec section 1:
count error 0, an image with predictions and no ground truth). ``--images-out`` writes
the images table (``image_id``, plus ``width``, ``height`` where the source has them:
COCO datasets) listing every image the source names, empty ones included; pass it as
``--images`` to ``pointscore evaluate``. Without it, a note says how many were dropped.

Bad input raises engine.io.InputError, one line per problem, each naming the file and
the line (text formats), the row (CSV) or the JSON element; at most 20 per file are
listed, then a count. Nothing is written unless everything converted: outputs are
written whole under a temporary name and renamed into place, both or neither.
"""
import itertools
import json
import os
import re
import sys
from contextlib import ExitStack

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .io import InputError, load
from .report import atomic_path, output_path_problem

FORMATS = ("nwpu-txt", "nwpu-json", "mat", "coco", "csv")
EXTENSIONS = {
    "nwpu-txt": (".txt",),
    "nwpu-json": (".json",),
    "mat": (".mat",),
    "coco": (".json",),
    "csv": (".csv", ".tsv", ".csv.gz", ".tsv.gz"),
}
MAX_PROBLEMS_PER_FILE = 20
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


def _read_json(path):
    text = _read_text(path)
    try:
        return json.loads(text)
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
    if names and all(name.isascii() and name.isdigit() for name in names):
        ids = [int(name) for name in names]
    else:
        ids = names
    seen, problems = {}, []
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


# ------------------------------------------------------------------ NWPU-Crowd txt

def _lines_of(text):
    """Non-blank lines of a text as an arrow list-of-tokens array, with 1-based numbers."""
    lines = pc.split_pattern(pa.array([text], pa.large_string()), "\n").values
    lines = pc.ascii_trim_whitespace(lines)
    keep = np.asarray(pc.greater(pc.binary_length(lines), 0))
    numbers = np.flatnonzero(keep) + 1
    tokens = pc.ascii_split_whitespace(lines.filter(pa.array(keep)))
    counts = np.asarray(pc.list_value_length(tokens), np.int64)
    return pc.list_flatten(tokens), counts, numbers


def _parse_floats(tokens):
    """String tokens -> float64 numpy array, or (None, bad mask) when some do not parse."""
    try:
        return np.asarray(tokens.cast(pa.float64())), None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None, ~np.asarray(pc.match_substring_regex(tokens, _FLOAT_RE))


def _parse_one_file_nwpu(path, role, problems):
    """One NWPU localization file -> (ids, counts, point numbers, line numbers), or None
    after adding its problems (in line order) to `problems`."""
    width = 5 if role == "gt" else 2
    flat, ntok, numbers = _lines_of(_read_text(path))
    if numbers.size == 0:
        problems.add(path, "no lines with data (expected 'image_id count ...' per image)")
        return None
    found = []          # (line, message); at most a screenful of each kind is formatted
    hidden = 0

    def report(mask, line_numbers, message):
        nonlocal hidden
        index = np.flatnonzero(mask)
        hidden += max(index.size - MAX_PROBLEMS_PER_FILE, 0)
        for i in index[:MAX_PROBLEMS_PER_FILE]:
            found.append((int(line_numbers[i]), f"line {line_numbers[i]}: {message(i)}"))

    start = np.concatenate(([0], np.cumsum(ntok)[:-1]))
    short = ntok < 2
    report(short, numbers, lambda i: "expected 'image_id count ...', got one value")
    ok = ~short
    head_id = flat.take(pa.array(start[ok]))
    head_count = flat.take(pa.array(start[ok] + 1))
    good_id = np.asarray(pc.match_substring_regex(head_id, _INT_RE))
    good_count = np.asarray(pc.match_substring_regex(head_count, r"^[0-9]+$"))
    lines_ok = numbers[ok]
    report(~good_id, lines_ok, lambda i: f"image id {head_id[i].as_py()!r} is not an integer")
    report(~good_count, lines_ok,
           lambda i: f"count {head_count[i].as_py()!r} is not a non-negative integer")
    ids = np.zeros(ok.sum(), np.int64)
    counts = np.zeros(ok.sum(), np.int64)
    try:
        ids[good_id] = np.asarray(head_id.filter(pa.array(good_id)).cast(pa.int64()))
        counts[good_count] = np.asarray(head_count.filter(pa.array(good_count)).cast(pa.int64()))
    except (pa.ArrowInvalid, OverflowError):
        problems.add(path, "an image id or count is too large for a 64-bit integer")
        return None
    after_head = ntok[ok] - 2
    per_point = "x y" if role == "pred" else "x y sigma_s sigma_l level"
    report(good_count & (after_head != counts * width), lines_ok,
           lambda i: f"count says {_plural(counts[i], 'point')}, so "
                     f"{_plural(counts[i] * width, 'number')} ({per_point} per point), "
                     f"but {after_head[i]} follow it")
    # The point numbers: every token but the first two of each line, parsed at once.
    in_body = np.ones(len(flat), bool)
    in_body[start] = False
    in_body[start[ok] + 1] = False
    body = flat.filter(pa.array(in_body))
    values, bad = _parse_floats(body)
    if values is None and not bad.any():      # arrow and the pattern disagree: Python decides
        values = np.array(body.to_pylist(), dtype=np.float64)
    if values is not None:
        bad = ~np.isfinite(values)
    if bad.any():
        body_line = np.repeat(numbers, np.maximum(ntok - 2, 0))
        what = "a number" if values is None else "a finite number"
        report(bad, body_line, lambda i: f"{body[i].as_py()!r} is not {what}")
    if found or hidden:
        for _, message in sorted(found, key=lambda item: item[0]):
            problems.add(path, message)
        problems.hidden[path] = problems.hidden.get(path, 0) + hidden
        problems.total += hidden
        return None
    return ids, counts, values, lines_ok


def from_nwpu_txt(paths, role, *, with_images=False):
    """NWPU-Crowd localization txt (one line per image) -> long-layout pyarrow.Table.

    role "pred": ``image_id count x1 y1 x2 y2 ...``; role "gt": ``image_id count`` then
    ``x y sigma_s sigma_l level`` per point (the three extras are kept as columns).
    With ``with_images=True`` returns ``(points, images)``; the images table lists
    every line's image, those with count 0 included.
    """
    if role not in ("gt", "pred"):
        raise InputError(f"nwpu-txt: role must be 'gt' or 'pred' (the line layouts "
                         f"differ), got {role!r}")
    width = 5 if role == "gt" else 2
    files = _expand(paths, "nwpu-txt")
    problems = _Problems()
    parsed = [(path, _parse_one_file_nwpu(path, role, problems)) for path in files]
    problems.raise_if_any()
    seen = [(int(image_id), path, f"line {line}") for path, (ids, _, _, lines) in parsed
            for image_id, line in zip(ids.tolist(), lines.tolist())]
    _check_unique_images(seen, problems)
    problems.raise_if_any()
    ids = np.concatenate([p[0] for _, p in parsed])
    counts = np.concatenate([p[1] for _, p in parsed])
    values = np.concatenate([p[2] for _, p in parsed]).reshape(-1, width)
    image_id = pa.array(np.repeat(ids, counts), pa.int64())
    extra = {}
    if role == "gt":
        level = values[:, 4]
        bad = level != np.round(level)
        if bad.any():
            # Report against the lines: map each bad point back to its line.
            point_line = np.repeat(np.concatenate([p[3] for _, p in parsed]), counts)
            point_file = np.repeat(np.repeat(np.arange(len(files)),
                                             [p[1].size for _, p in parsed]), counts)
            for i in np.flatnonzero(bad):
                problems.add(files[point_file[i]], f"line {point_line[i]}: level "
                             f"{level[i]!r} is not an integer")
            problems.raise_if_any()
        extra = {"sigma_s": values[:, 2], "sigma_l": values[:, 3],
                 "level": level.astype(np.int64)}
    points = _points_table(image_id, values[:, 0], values[:, 1], **extra)
    return _result(points, _images_table(pa.array(ids, pa.int64())), with_images)


# ------------------------------------------------------------------ NWPU-Crowd json

def _xy_array(value, path, where, problems):
    """A JSON list of [x, y] pairs -> N x 2 float64, or None with a problem."""
    if not isinstance(value, list):
        problems.add(path, f"{where} must be a list of [x, y], got {type(value).__name__}")
        return None
    try:
        array = np.array(value, dtype=np.float64)
        if array.size == 0:
            return np.zeros((0, 2))
        if array.ndim != 2 or array.shape[1] != 2:
            raise ValueError
    except (ValueError, TypeError):
        for i, item in enumerate(value):
            if not (isinstance(item, list) and len(item) == 2 and all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) for v in item)):
                problems.add(path, f"{where}[{i}] is not [x, y] with two numbers: {item!r}")
        return None
    bad = ~np.isfinite(array).all(axis=1)
    for i in np.flatnonzero(bad):
        problems.add(path, f"{where}[{i}] is not finite: {value[i]!r}")
    return None if bad.any() else array


def from_nwpu_json(paths, *, with_images=False):
    """NWPU-Crowd per-image JSON files (a directory of them, or single files) -> Table.

    The image id is the file name's stem (all-digit stems become integers).
    """
    files = _expand(paths, "nwpu-json")
    ids = _file_ids(files, lambda stem: stem)
    problems = _Problems()
    arrays = []
    for path in files:
        data = _read_json(path)
        if not isinstance(data, dict) or "points" not in data:
            problems.add(path, "expected an NWPU-Crowd annotation object with 'points' "
                         "(and 'human_num')")
            arrays.append(None)
            continue
        xy = _xy_array(data["points"], path, "points", problems)
        count = data.get("human_num")
        if xy is not None and count is not None and count != len(xy):
            problems.add(path, f"human_num is {count!r} but 'points' has {len(xy)} points")
        arrays.append(xy)
    problems.raise_if_any()
    return _per_image_result(ids, arrays, with_images)


def _per_image_result(ids, arrays, with_images):
    counts = np.array([len(a) for a in arrays], np.int64)
    xy = np.concatenate(arrays) if arrays else np.zeros((0, 2))
    id_array = _id_array(ids)
    image_id = id_array.take(pa.array(np.repeat(np.arange(len(ids)), counts)))
    points = _points_table(image_id, xy[:, 0], xy[:, 1])
    return _result(points, _images_table(id_array), with_images)


# ------------------------------------------------------------------ .mat

_MAT_AFFIXES = re.compile(r"^(?:gt_img_|gt_|img_)?(.*?)(?:_ann)?$", re.IGNORECASE)


def mat_image_id(stem):
    """ShanghaiTech / UCF-QNRF file stem -> id text.

    'GT_IMG_12' -> '12', 'img_0001_ann' -> '0001', '0001' -> '0001'."""
    return _MAT_AFFIXES.match(stem).group(1) or stem


def _mat_points(data, key, path, problems):
    """The N x 2 (x, y) array of one loaded .mat file."""
    if key is None:
        if "image_info" in data:           # ShanghaiTech: cell{struct(location, number)}
            try:
                record = data["image_info"][0, 0]
                if record.dtype.names and "location" in record.dtype.names:
                    location = record["location"][0, 0]
                    number = record["number"][0, 0] if "number" in record.dtype.names else None
                else:
                    location, number = record[0][0][0], None
            except (IndexError, TypeError, ValueError, KeyError):
                problems.add(path, "'image_info' is not ShanghaiTech's cell holding a struct "
                             "with 'location'")
                return None
            array = _numeric_matrix(location, path, "image_info location", problems)
            if array is not None and number is not None:
                number = np.asarray(number, dtype=np.float64).ravel()
                if number.size == 1 and number[0] != len(array):
                    problems.add(path, f"image_info number is {number[0]:g} but location "
                                 f"has {len(array)} points")
            return array
        if "annPoints" in data:            # UCF-QNRF, NWPU-Crowd mats
            return _numeric_matrix(data["annPoints"], path, "annPoints", problems)
        names = ", ".join(k for k in data if not k.startswith("__")) or "none"
        problems.add(path, f"neither 'image_info' (ShanghaiTech) nor 'annPoints' (UCF-QNRF) "
                     f"in this file (variables: {names}); name one with --mat-key")
        return None
    if key not in data:
        names = ", ".join(k for k in data if not k.startswith("__")) or "none"
        problems.add(path, f"no variable '{key}' (variables: {names})")
        return None
    return _numeric_matrix(data[key], path, key, problems)


def _numeric_matrix(value, path, what, problems):
    try:
        array = np.asarray(value, dtype=np.float64)
    except (ValueError, TypeError):
        problems.add(path, f"{what} is not a numeric array")
        return None
    if array.size == 0:
        return np.zeros((0, 2))
    if array.ndim != 2 or array.shape[1] != 2:
        problems.add(path, f"{what} has shape {array.shape}, expected N x 2 (x, y)")
        return None
    bad = ~np.isfinite(array).all(axis=1)
    if bad.any():
        rows = ", ".join(str(i + 1) for i in np.flatnonzero(bad)[:5])
        problems.add(path, f"{what} has {int(bad.sum())} non-finite points (rows {rows}, "
                     f"counted from 1 as in MATLAB)")
        return None
    return array


def from_mat(paths, *, key=None, with_images=False):
    """ShanghaiTech GT_IMG_*.mat / UCF-QNRF *_ann.mat (or any N x 2 variable `key`) -> Table."""
    import scipy.io
    files = _expand(paths, "mat")
    ids = _file_ids(files, mat_image_id)
    problems = _Problems()
    arrays = []
    for path in files:
        try:
            data = scipy.io.loadmat(path)
        except NotImplementedError:
            problems.add(path, "MATLAB v7.3 (HDF5) files are not supported; save with -v7")
            arrays.append(None)
            continue
        except Exception as exc:  # noqa: BLE001 - whatever a damaged file raises
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            problems.add(path, f"cannot read as a .mat file: {first}")
            arrays.append(None)
            continue
        arrays.append(_mat_points(data, key, path, problems))
    problems.raise_if_any()
    return _per_image_result(ids, arrays, with_images)


# ------------------------------------------------------------------ COCO

def _key_values(values, path, what, problems):
    """JSON ids (int or str; not float, bool or null) -> arrow array, or None."""
    kinds = {type(v) for v in values}
    if kinds <= {int} or kinds <= {str}:
        return _id_array(values) if values else pa.array([], pa.int64())
    bad = [i for i, v in enumerate(values) if type(v) not in (int, str)]
    if bad:
        shown = ", ".join(f"{i} ({values[i]!r})" for i in bad[:5])
        problems.add(path, f"{what} must be an integer or a string: {len(bad)} are not "
                     f"(at {shown})")
    else:
        problems.add(path, f"{what} mixes integers and strings")
    return None


def _coco_keypoints(anns, path, where, problems):
    """annotations' keypoints -> (N x 3 array, keypoints per annotation)."""
    bad = [i for i, a in enumerate(anns)
           if not isinstance(a, dict) or not isinstance(a.get("keypoints"), list)
           or len(a["keypoints"]) % 3]
    for i in bad:
        a = anns[i]
        if not isinstance(a, dict):
            problems.add(path, f"{where}[{i}] is not an object")
        elif "keypoints" not in a:
            problems.add(path, f"{where}[{i}]{_ann_name(a)} has no 'keypoints'")
        else:
            problems.add(path, f"{where}[{i}]{_ann_name(a)}: 'keypoints' must be a list "
                         f"[x, y, v, ...] of length divisible by 3")
    if bad:
        return None, None
    lengths = np.fromiter((len(a["keypoints"]) for a in anns), np.int64, len(anns))
    try:
        flat = np.fromiter(itertools.chain.from_iterable(a["keypoints"] for a in anns),
                           np.float64, int(lengths.sum()))
    except (TypeError, ValueError):
        for i, a in enumerate(anns):
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                       for v in a["keypoints"]):
                problems.add(path, f"{where}[{i}]{_ann_name(a)}: 'keypoints' holds a "
                             f"value that is not a number")
        return None, None
    return flat.reshape(-1, 3), lengths // 3


def _ann_name(ann):
    return f" (id {ann['id']!r})" if isinstance(ann, dict) and "id" in ann else ""


def _coco_one(path, role, keep_class, problems):
    before = problems.total
    data = _read_json(path)
    if isinstance(data, list):
        kind = "pred"
        anns, where, images = data, "results", None
        if role == "gt":
            problems.add(path, "a COCO results list holds predictions; convert it with "
                         "--role pred (or give the dataset file with 'images' and "
                         "'annotations')")
            return None
    elif isinstance(data, dict) and isinstance(data.get("annotations"), list):
        kind = role or "gt"
        anns, where, images = data["annotations"], "annotations", data.get("images")
    else:
        problems.add(path, "expected a COCO dataset (an object with 'images' and "
                     "'annotations') or a results list")
        return None
    kp, per_ann = _coco_keypoints(anns, path, where, problems)
    if kp is None:
        return None
    no_image = [i for i, a in enumerate(anns) if "image_id" not in a]
    for i in no_image:
        problems.add(path, f"{where}[{i}]{_ann_name(anns[i])} has no 'image_id'")
    ann_image = None if no_image else _key_values([a["image_id"] for a in anns], path,
                                                  f"{where} image_id", problems)
    ann_class = None
    if keep_class:
        missing = [i for i, a in enumerate(anns) if "category_id" not in a]
        for i in missing:
            problems.add(path, f"{where}[{i}]{_ann_name(anns[i])} has no 'category_id' "
                         f"(use --no-class for single-class data)")
        if not missing:
            ann_class = _key_values([a["category_id"] for a in anns], path,
                                    f"{where} category_id", problems)
    ann_score = None
    has_score = [("score" in a) for a in anns]
    if kind == "pred" and any(has_score):
        if not all(has_score):
            i = has_score.index(False)
            problems.add(path, f"{where}[{i}]{_ann_name(anns[i])} has no 'score' (others do)")
        else:
            try:
                ann_score = np.array([a["score"] for a in anns], np.float64)
            except (TypeError, ValueError):
                ann_score = None
            if ann_score is None or ann_score.ndim != 1:
                problems.add(path, f"{where}: every 'score' must be a number")
                ann_score = None
            else:
                for i in np.flatnonzero(~np.isfinite(ann_score) | (ann_score < 0))[:5]:
                    problems.add(path, f"{where}[{i}]{_ann_name(anns[i])}: score "
                                 f"{anns[i]['score']!r} is not finite and >= 0")
    image_table = None
    if images is not None:
        image_table = _coco_images(images, path, problems)
    if problems.total > before:
        return None
    keep = kp[:, 2] > 0
    ann_of_kp = np.repeat(np.arange(len(anns)), per_ann)
    kp_index = np.arange(len(kp)) - np.repeat(np.cumsum(per_ann) - per_ann, per_ann)
    ann_of_point = ann_of_kp[keep]
    xy = kp[keep, :2]
    bad = ~np.isfinite(xy).all(axis=1)
    for i in np.flatnonzero(bad):
        a = ann_of_point[i]
        problems.add(path, f"{where}[{a}]{_ann_name(anns[a])}: keypoint "
                     f"{kp_index[keep][i]} is not finite")
    if image_table is not None and len(anns):
        image_ids = image_table.column("image_id").combine_chunks()
        if image_ids.type != ann_image.type and len(image_ids):
            problems.add(path, f"{where} image_id are {ann_image.type} but images id are "
                         f"{image_ids.type}")
        else:
            known = np.asarray(pc.is_in(ann_image, value_set=image_ids.cast(ann_image.type)))
            for i in np.flatnonzero(~known)[:MAX_PROBLEMS_PER_FILE]:
                problems.add(path, f"{where}[{i}]{_ann_name(anns[i])}: image_id "
                             f"{anns[i]['image_id']!r} is not in 'images'")
    if problems.total > before:
        return None
    take = pa.array(ann_of_point)
    columns = {"image_id": ann_image.take(take), "x": xy[:, 0], "y": xy[:, 1]}
    if ann_score is not None:
        columns["score"] = ann_score[ann_of_point]
    if ann_class is not None:
        columns["class"] = ann_class.take(take)
    columns["keypoint"] = kp_index[keep].astype(np.int32)
    return kind, pa.table(columns), image_table


def _coco_images(images, path, problems):
    if not isinstance(images, list) or not all(isinstance(i, dict) and "id" in i
                                               for i in images):
        problems.add(path, "'images' must be a list of objects with 'id'")
        return None
    ids = _key_values([i["id"] for i in images], path, "images id", problems)
    if ids is None:
        return None
    seen = {}
    for n, image in enumerate(images):
        if image["id"] in seen:
            problems.add(path, f"images[{n}]: id {image['id']!r} is also the id of "
                         f"images[{seen[image['id']]}]")
        seen.setdefault(image["id"], n)
    if all("width" in i and "height" in i for i in images) and images:
        try:
            width = np.array([i["width"] for i in images], np.float64)
            height = np.array([i["height"] for i in images], np.float64)
        except (TypeError, ValueError):
            problems.add(path, "images: 'width' and 'height' must be numbers")
            return None
        bad = ~(np.isfinite(width) & np.isfinite(height) & (width > 0) & (height > 0))
        for n in np.flatnonzero(bad)[:5]:
            problems.add(path, f"images[{n}] (id {images[n]['id']!r}): width and height "
                         f"must be finite and > 0")
        if bad.any():
            return None
        if (width == np.round(width)).all() and (height == np.round(height)).all():
            width, height = width.astype(np.int64), height.astype(np.int64)
        return _images_table(ids, width, height)
    return _images_table(ids)


def from_coco(paths, role=None, *, keep_class=True, with_images=False):
    """COCO keypoint dataset (ground truth) or results list (predictions) -> Table.

    Each keypoint with v > 0 becomes a point; class = category_id unless
    ``keep_class=False``; a results list's ``score`` is kept. ``role`` None takes the
    file's own kind. With ``with_images=True`` returns ``(points, images)``, the images
    table being the datasets' ``images`` (None for results lists).
    """
    if role not in (None, "gt", "pred"):
        raise InputError(f"coco: role must be 'gt', 'pred' or None, got {role!r}")
    files = _expand(paths, "coco")
    problems = _Problems()
    parts = [(path, _coco_one(path, role, keep_class, problems)) for path in files]
    problems.raise_if_any()
    kinds = {part[0] for _, part in parts}
    if len(kinds) > 1:
        raise InputError([f"{path}: a COCO {'results list' if part[0] == 'pred' else 'dataset'}"
                          for path, part in parts] +
                         ["cannot mix COCO datasets (ground truth) and results lists "
                          "(predictions) in one table"])
    points = _concat([part[1] for _, part in parts], files, "points")
    images = None
    image_tables = [part[2] for _, part in parts if part[2] is not None]
    if image_tables:
        images = _concat(image_tables, [p for p, part in parts if part[2] is not None],
                         "images")
        ids = images.column("image_id").to_pylist()
        if len(set(ids)) != len(ids):
            seen = [(image_id, path, "images") for path, part in parts if part[2] is not None
                    for image_id in part[2].column("image_id").to_pylist()]
            _check_unique_images(seen, problems)
            problems.raise_if_any()
    return _result(points, images, with_images)


# ------------------------------------------------------------------ CSV

def parse_mapping(text):
    """'old=new,old2=new2' -> dict; a usage error when malformed."""
    if isinstance(text, dict):
        return dict(text)
    mapping = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        old, sep, new = item.partition("=")
        if not sep or not old.strip() or not new.strip():
            raise InputError(f"--map: expected old=new[,old=new...], got '{text}'")
        if old.strip() in mapping:
            raise InputError(f"--map: column '{old.strip()}' is mapped twice")
        mapping[old.strip()] = new.strip()
    return mapping


def _read_csv(path, delimiter, problems):
    import pyarrow.csv as pacsv
    if delimiter is None:
        delimiter = "\t" if path.lower().endswith((".tsv", ".tsv.gz")) else ","
    bad_rows = []

    def invalid(row):
        bad_rows.append(row)
        return "skip"

    def read(threads):
        return pacsv.read_csv(path, read_options=pacsv.ReadOptions(use_threads=threads),
                              parse_options=pacsv.ParseOptions(delimiter=delimiter,
                                                               invalid_row_handler=invalid))
    try:
        table = read(True)
        if bad_rows:      # read again in one thread to learn the line numbers
            bad_rows.clear()
            read(False)
    except (pa.ArrowInvalid, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        problems.add(path, f"cannot read as CSV: {first}")
        return None
    for row in bad_rows:
        where = f"line {row.number}" if row.number is not None else "a row"
        problems.add(path, f"{where}: expected {row.expected_columns} columns, got "
                     f"{row.actual_columns}: {row.text[:80]!r}")
    return None if bad_rows else table


def _csv_one(path, mapping, role, delimiter, problems):
    before = problems.total
    table = _read_csv(path, delimiter, problems)
    if table is None:
        return None
    names = table.column_names
    unknown = [old for old in mapping if old not in names]
    if unknown:
        problems.add(path, f"--map names columns not in the file: "
                     f"{', '.join(repr(c) for c in unknown)} (has: {', '.join(names)})")
        return None
    renamed = [mapping.get(name, name) for name in names]
    clash = sorted({n for n in renamed if renamed.count(n) > 1})
    if clash:
        problems.add(path, f"after --map, column names repeat: "
                     f"{', '.join(repr(c) for c in clash)}")
        return None
    table = table.rename_columns(renamed)
    # Numeric columns read as text because of a bad cell: name the rows.
    for name in ("x", "y", "score"):
        if name in table.column_names:
            column = table.column(name).combine_chunks()
            if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
                ok = np.asarray(pc.fill_null(pc.match_substring_regex(
                    pc.utf8_trim_whitespace(column), _FLOAT_RE), True))
                for i in np.flatnonzero(~ok)[:MAX_PROBLEMS_PER_FILE]:
                    problems.add(path, f"row {i}: column '{name}': {column[i].as_py()!r} "
                                 f"is not a number")
                if ok.all():
                    table = table.set_column(table.column_names.index(name), name,
                                             pc.utf8_trim_whitespace(column).cast(pa.float64()))
            elif pa.types.is_integer(column.type):
                table = table.set_column(table.column_names.index(name), name,
                                         column.cast(pa.float64()))
    if problems.total > before:
        return None
    check_role = role or ("pred" if "score" in table.column_names else "gt")
    try:
        load(table, check_role)
    except InputError as exc:
        prefix = f"<{check_role}>: "
        for line in exc.problems:
            problems.add(path, line[len(prefix):] if line.startswith(prefix) else line)
        return None
    return table


def from_csv(paths, *, mapping=None, role=None, delimiter=None):
    """CSV/TSV points -> Table: columns renamed by ``mapping`` ({old: new} or
    'old=new,...'), the rest kept; checked as ``role`` ('pred' when there is a score
    column and no role is given, else 'gt')."""
    if role not in (None, "gt", "pred"):
        raise InputError(f"csv: role must be 'gt', 'pred' or None, got {role!r}")
    mapping = parse_mapping(mapping)
    files = _expand(paths, "csv")
    problems = _Problems()
    tables = [_csv_one(path, mapping, role, delimiter, problems) for path in files]
    problems.raise_if_any()
    return _concat(tables, files, "points")


# ------------------------------------------------------------------ command line

def convert(fmt, paths, *, role=None, mapping=None, delimiter=None, mat_key=None,
            keep_class=True):
    """Any format -> (points, images or None)."""
    if fmt == "nwpu-txt":
        if role is None:
            raise InputError("convert --from nwpu-txt needs --role gt or --role pred "
                             "(ground truth has 5 numbers per point, predictions 2)")
        return from_nwpu_txt(paths, role, with_images=True)
    if fmt == "nwpu-json":
        return from_nwpu_json(paths, with_images=True)
    if fmt == "mat":
        return from_mat(paths, key=mat_key, with_images=True)
    if fmt == "coco":
        return from_coco(paths, role, keep_class=keep_class, with_images=True)
    if fmt == "csv":
        return from_csv(paths, mapping=mapping, role=role, delimiter=delimiter), None
    raise InputError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")


def add_parser(subparsers):
    """Add `convert` to the CLI's subparsers (their parser_class raises InputError)."""
    parser = subparsers.add_parser(
        "convert", help="convert crowd-counting annotations to pointscore's Parquet",
        description="Convert NWPU-Crowd txt/json, ShanghaiTech/UCF-QNRF .mat, COCO "
                    "keypoint JSON or CSV points to the long Parquet layout "
                    "(image_id, x, y[, score, class]).")
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="a file, or a directory of files in the format")
    parser.add_argument("--from", dest="fmt", required=True, choices=FORMATS,
                        help="the input format")
    parser.add_argument("--role", choices=("gt", "pred"),
                        help="ground truth or predictions: required for nwpu-txt; checked "
                             "for coco; chooses the checks for csv")
    parser.add_argument("--out", required=True, metavar="PATH.parquet",
                        help="the points table to write")
    parser.add_argument("--images-out", metavar="PATH.parquet",
                        help="also write the images table (every image the source names, "
                             "empty ones included; width/height from COCO)")
    parser.add_argument("--map", dest="mapping", default="", metavar="OLD=NEW,...",
                        help="csv: rename columns, e.g. img=image_id,px=x,py=y")
    parser.add_argument("--delimiter", default=None,
                        help="csv: field delimiter (default ',' or tab for .tsv)")
    parser.add_argument("--mat-key", default=None, metavar="NAME",
                        help="mat: the variable holding the N x 2 points (default: "
                             "image_info or annPoints)")
    parser.add_argument("--no-class", dest="keep_class", action="store_false",
                        help="coco: leave category_id out (single-class data)")
    parser.set_defaults(func=run)
    return parser


def _check_out(path, option):
    if not path.lower().endswith((".parquet", ".pq")):
        raise InputError(f"{option}: '{path}' must end in .parquet or .pq "
                         f"(pointscore reads files by their extension)")
    problem = output_path_problem(option, path)
    if problem:
        raise InputError(problem)


def run(args):
    """Do the conversion the parsed arguments ask for; write the outputs atomically."""
    import pyarrow.parquet as pq
    _check_out(args.out, "--out")
    if args.images_out:
        _check_out(args.images_out, "--images-out")
        if os.path.abspath(args.images_out) == os.path.abspath(args.out):
            raise InputError("--images-out must differ from --out")
    if args.mapping and args.fmt != "csv":
        raise InputError("--map applies to --from csv only")
    if args.mat_key and args.fmt != "mat":
        raise InputError("--mat-key applies to --from mat only")
    if args.delimiter is not None and args.fmt != "csv":
        raise InputError("--delimiter applies to --from csv only")
    if args.images_out and args.fmt == "csv":
        raise InputError("--images-out: a CSV of points does not list its images")
    points, images = convert(args.fmt, args.inputs, role=args.role,
                             mapping=parse_mapping(args.mapping), delimiter=args.delimiter,
                             mat_key=args.mat_key, keep_class=args.keep_class)
    if args.images_out and images is None:
        raise InputError("--images-out: a COCO results list does not list its images")
    with ExitStack() as stack:
        pq.write_table(points, stack.enter_context(atomic_path(args.out)))
        if args.images_out:
            pq.write_table(images, stack.enter_context(atomic_path(args.images_out)))
    n_images = pc.count_distinct(points.column("image_id")).as_py() if points.num_rows else 0
    print(f"wrote {points.num_rows} points of {n_images} images to {args.out}")
    if images is not None:
        empty = images.num_rows - n_images
        if args.images_out:
            print(f"wrote {images.num_rows} images ({empty} without points) to "
                  f"{args.images_out}")
        elif empty:
            print(f"pointscore: note: {empty} images have no points and are not in "
                  f"{args.out}; write --images-out and pass it as --images to keep them "
                  f"in the counting metrics", file=sys.stderr)
    return points, images
