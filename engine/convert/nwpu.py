"""NWPU-Crowd's localisation txt files and per-image JSON."""

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import InputError
from .common import (
    _FLOAT_RE,
    _INT_RE,
    MAX_PROBLEMS_PER_FILE,
    _check_unique_images,
    _expand,
    _file_ids,
    _images_table,
    _per_image_result,
    _plural,
    _points_table,
    _Problems,
    _read_json,
    _read_text,
    _result,
)


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
    """String tokens -> (float64 numpy array, mask of the non-finite ones), or (None,
    mask of those that are not numbers) when some do not parse."""
    try:
        values = np.asarray(tokens.cast(pa.float64()))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        bad = ~np.asarray(pc.match_substring_regex(tokens, _FLOAT_RE))
        if bad.any():
            return None, bad
        # Arrow and the pattern disagree (a form one takes and the other not): Python decides.
        values = np.array(tokens.to_pylist(), dtype=np.float64)
    return values, ~np.isfinite(values)


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
    # Compared by division: a huge count times the width could wrap around int64.
    mismatch = (after_head % width != 0) | (counts != after_head // width)
    report(good_count & mismatch, lines_ok,
           lambda i: f"count says {_plural(int(counts[i]), 'point')}, so "
                     f"{_plural(int(counts[i]) * width, 'number')} ({per_point} per point), "
                     f"but {after_head[i]} follow it")
    # The point numbers: every token but the first two of each line, parsed at once.
    in_body = np.ones(len(flat), bool)
    in_body[start] = False
    in_body[start[ok] + 1] = False
    body = flat.filter(pa.array(in_body))
    values, bad = _parse_floats(body)
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
        bad = (level != np.round(level)) | (np.abs(level) >= 2.0 ** 63)
        if bad.any():
            # Report against the lines: map each bad point back to its line.
            point_line = np.repeat(np.concatenate([p[3] for _, p in parsed]), counts)
            point_file = np.repeat(np.repeat(np.arange(len(files)),
                                             [p[1].size for _, p in parsed]), counts)
            for i in np.flatnonzero(bad):
                problems.add(files[point_file[i]], f"line {point_line[i]}: level "
                             f"{level[i]!r} is not a 64-bit integer")
            problems.raise_if_any()
        extra = {"sigma_s": values[:, 2], "sigma_l": values[:, 3],
                 "level": level.astype(np.int64)}
    points = _points_table(image_id, values[:, 0], values[:, 1], **extra)
    return _result(points, _images_table(pa.array(ids, pa.int64())), with_images)


# ------------------------------------------------------------------ NWPU-Crowd counts

def from_nwpu_counts(paths, *, with_images=False):
    """NWPU-Crowd's counting submissions (one line per image, ``image_id count``, the
    count a number such as ``100.0000``) -> a count-only predictions table
    (``image_id``, ``count`` as float64).
    """
    files = _expand(paths, "nwpu-counts")
    problems = _Problems()
    ids, counts, seen = [], [], []
    for path in files:
        flat, ntok, numbers = _lines_of(_read_text(path))
        if numbers.size == 0:
            problems.add(path, "no lines with data (expected 'image_id count' per image)")
            continue
        for i in np.flatnonzero(ntok != 2)[:MAX_PROBLEMS_PER_FILE]:
            problems.add(path, f"line {numbers[i]}: expected 'image_id count', got "
                         f"{_plural(int(ntok[i]), 'value')}")
        if (ntok != 2).any():
            continue
        image_id, count = flat.take(pa.array(np.arange(0, len(flat), 2))), \
            flat.take(pa.array(np.arange(1, len(flat), 2)))
        good_id = np.asarray(pc.match_substring_regex(image_id, _INT_RE))
        values, bad = _parse_floats(count)
        bad = bad | (values < 0) if values is not None else bad
        for i in np.flatnonzero(~good_id)[:MAX_PROBLEMS_PER_FILE]:
            problems.add(path, f"line {numbers[i]}: image id {image_id[i].as_py()!r} is not "
                         "an integer")
        for i in np.flatnonzero(bad)[:MAX_PROBLEMS_PER_FILE]:
            problems.add(path, f"line {numbers[i]}: count {count[i].as_py()!r} is not a "
                         "finite number >= 0")
        if not good_id.all() or bad.any():
            continue
        try:
            file_ids = np.asarray(image_id.cast(pa.int64()))
        except pa.ArrowInvalid:
            problems.add(path, "an image id is too large for a 64-bit integer")
            continue
        ids.append(file_ids)
        counts.append(values)
        seen += [(int(i), path, f"line {n}") for i, n in zip(file_ids.tolist(), numbers)]
    problems.raise_if_any()
    _check_unique_images(seen, problems)
    problems.raise_if_any()
    id_array = pa.array(np.concatenate(ids), pa.int64())
    points = pa.table({"image_id": id_array, "count": np.concatenate(counts)})
    return _result(points, _images_table(id_array), with_images)


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
