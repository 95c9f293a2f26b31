"""JHU-Crowd++'s annotations: a split's ``gt/*.txt`` (one head per line: ``x y w h o b``,
its location, box size, occlusion and blur levels) and ``image_labels.txt`` (one image
per line: ``name,count,scene,weather,distractor``)."""
import os
import re

import numpy as np
import pyarrow as pa

from ..errors import InputError
from .common import (
    _INT_RE,
    MAX_PROBLEMS_PER_FILE,
    _expand,
    _file_ids,
    _id_array,
    _images_table,
    _plural,
    _points_table,
    _Problems,
    _read_text,
    _result,
)
from .nwpu import _lines_of, _parse_floats

HEAD_FIELDS = ("x", "y", "w", "h", "occlusion", "blur")
LABELS = "image_labels.txt"
LABEL_FIELDS = ("count", "scene", "weather", "distractor")


def from_jhu(paths, *, with_images=False):
    """JHU-Crowd++ ground truth -> long-layout pyarrow.Table.

    ``paths``: split directories (holding ``gt/`` and, usually, ``image_labels.txt``),
    ``gt`` directories, or single ``gt/*.txt`` files. The image id is the file's stem
    (all-digit stems become integers). The points keep ``w``, ``h``, ``occlusion`` and
    ``blur``; with ``with_images=True`` returns ``(points, images)``, the images table
    holding every file's image and, from ``image_labels.txt``, its ``scene``,
    ``weather`` (0 none, 1 fog or haze, 2 rain, 3 snow) and ``distractor``.
    """
    gt_paths, label_files = [], []
    for path in [paths] if isinstance(paths, (str, os.PathLike)) else list(paths):
        split = os.fspath(path)
        if os.path.isdir(os.path.join(split, "gt")):
            gt_paths.append(os.path.join(split, "gt"))
            if os.path.isfile(os.path.join(split, LABELS)):
                label_files.append(os.path.join(split, LABELS))
        else:
            gt_paths.append(split)
    files = _expand(gt_paths, "jhu")
    ids = _file_ids(files, lambda stem: stem)
    problems = _Problems()
    heads = [_heads(path, problems) for path in files]
    problems.raise_if_any()
    counts = np.array([len(h) for h in heads], np.int64)
    values = np.concatenate(heads) if heads else np.zeros((0, len(HEAD_FIELDS)))
    id_array = _id_array(ids)
    image_id = id_array.take(pa.array(np.repeat(np.arange(len(ids)), counts)))
    points = _points_table(image_id, values[:, 0], values[:, 1],
                           **{name: values[:, k] for k, name in enumerate(HEAD_FIELDS)
                              if k >= 2})
    images = _images_table(id_array)
    if label_files:
        labels = {}
        for path in label_files:
            labels.update(_labels(path, problems))
        problems.raise_if_any()
        images = _with_labels(images, ids, counts, files, labels)
    return _result(points, images, with_images)


def _heads(path, problems):
    """One gt file's heads as an (n, 6) float array (empty on problems, added)."""
    flat, ntok, numbers = _lines_of(_read_text(path))
    wrong = np.flatnonzero(ntok != len(HEAD_FIELDS))
    for i in wrong[:MAX_PROBLEMS_PER_FILE]:
        problems.add(path, f"line {numbers[i]}: expected {len(HEAD_FIELDS)} numbers "
                     f"(x y w h o b), got {_plural(int(ntok[i]), 'value')}")
    if wrong.size:
        return np.zeros((0, len(HEAD_FIELDS)))
    values, bad = _parse_floats(flat)
    if bad.any():
        for i in np.flatnonzero(bad)[:MAX_PROBLEMS_PER_FILE]:
            problems.add(path, f"line {numbers[i // len(HEAD_FIELDS)]}: {flat[i].as_py()!r} "
                         "is not a finite number")
        return np.zeros((0, len(HEAD_FIELDS)))
    return values.reshape(-1, len(HEAD_FIELDS))


def _labels(path, problems):
    """image_labels.txt -> {image name's stem: (count, scene, weather, distractor)}."""
    out = {}
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        fields = [field.strip() for field in line.split(",")]
        whole = [fields[k] for k in (1, 3, 4)] if len(fields) == 5 else []
        if len(fields) != 5 or not all(_is_int(value) for value in whole):
            problems.add(path, f"line {number}: expected 'name,count,scene,weather,"
                         f"distractor' with whole numbers but the scene, got {line[:80]!r}")
            continue
        stem = fields[0][:fields[0].rfind(".")] if "." in fields[0] else fields[0]
        out[stem] = (int(fields[1]), fields[2], int(fields[3]), int(fields[4]))
    return out


def _is_int(text):
    return re.fullmatch(_INT_RE, text) is not None and len(text) < 19  # within int64


def _with_labels(images, ids, counts, files, labels):
    """The images table with each image's labels; every image must have a line, with
    the count of its gt file."""
    problems, rows = [], []
    for image_id, count, path in zip(ids, counts.tolist(), files):
        stem = os.path.basename(path)
        stem = stem[:stem.lower().rfind(".")] if "." in stem else stem
        found = labels.get(stem)
        if found is None:
            problems.append(f"{path}: no line for image {stem!r} in {LABELS}")
        elif found[0] != count:
            problems.append(f"{path}: {LABELS} says {_plural(found[0], 'head')}, the file "
                            f"has {count}")
        rows.append(found or (count, "", 0, 0))
    if problems:
        raise InputError(problems)
    for k, name in enumerate(LABEL_FIELDS[1:], start=1):
        values = [row[k] for row in rows]
        images = images.append_column(name, pa.array(values, pa.string() if k == 1
                                                     else pa.int64()))
    return images
