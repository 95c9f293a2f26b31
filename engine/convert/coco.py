"""COCO keypoint datasets and results."""
import itertools

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import InputError, option
from .common import (
    MAX_PROBLEMS_PER_FILE,
    _check_unique_images,
    _concat,
    _expand,
    _id_array,
    _images_table,
    _Problems,
    _read_json,
    _result,
)


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
                         f"{option('role')} pred (or give the dataset file with 'images' and "
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
                         f"(use {option('no_class')} for single-class data)")
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
        whole = (width == np.round(width)) & (height == np.round(height))
        if whole.all() and (np.maximum(width, height) < 2.0 ** 63).all():  # fit int64
            width, height = width.astype(np.int64), height.astype(np.int64)
        return _images_table(ids, width, height)
    return _images_table(ids)


def from_coco(paths, role=None, *, keep_class=True, with_images=False):
    """COCO keypoint dataset (ground truth) or results list (predictions) -> Table
    (with ``with_images``, also the images table).

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
