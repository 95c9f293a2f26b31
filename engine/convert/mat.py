"""ShanghaiTech and UCF-QNRF .mat files."""
import re

import numpy as np

from ..errors import option
from .common import _expand, _file_ids, _per_image_result, _Problems

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
                     f"in this file (variables: {names}); name one with {option('mat_key')}")
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
