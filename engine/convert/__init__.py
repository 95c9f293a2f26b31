"""The formats crowd-counting data comes in -> pointscore's long layout.

    pointscore convert --from {nwpu-txt,nwpu-counts,nwpu-json,mat,jhu,coco,csv}
        [--role {gt,pred}]
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
* ``nwpu-counts`` (:func:`from_nwpu_counts`): NWPU-Crowd's counting submissions, one
  line per image, ``image_id count`` with a count such as ``100.0000``: count-only
  predictions (``image_id``, ``count``), scored for the counting metrics.
* ``nwpu-json`` (:func:`from_nwpu_json`): NWPU-Crowd per-image JSON
  ``{"img_id", "human_num", "points": [[x, y], ...], "boxes"}``; ``human_num``, when
  present, must equal the number of points; ``boxes`` are not used.
* ``mat`` (:func:`from_mat`): ShanghaiTech ``GT_IMG_<n>.mat`` (``image_info``: a cell
  holding a struct whose ``location`` is N x 2 (x, y) and ``number`` is N) and
  UCF-QNRF / NWPU ``*_ann.mat`` / ``<n>.mat`` (``annPoints``, N x 2); any other
  variable holding N x 2 with ``--mat-key``. Coordinates are kept as stored.
* ``jhu`` (:func:`from_jhu`): JHU-Crowd++ ground truth: a split directory (``gt/`` and
  ``image_labels.txt``), a ``gt/`` directory or single files. Each ``gt/<n>.txt`` holds
  a head per line, ``x y w h o b``; ``w``, ``h``, ``occlusion`` and ``blur`` are kept.
  The images table takes ``scene``, ``weather`` (0 none, 1 fog or haze, 2 rain, 3 snow)
  and ``distractor`` from ``image_labels.txt`` (``name,count,scene,weather,
  distractor``), whose count must be the file's number of heads.
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

Per-image files (nwpu-json, mat, jhu) take their image id from the file name: the stem
for nwpu-json and jhu (``0001.json`` -> 1); for mat the stem without ShanghaiTech's ``GT_IMG_`` /
``GT_`` / ``IMG_`` prefix and UCF-QNRF's ``_ann`` suffix (``GT_IMG_12.mat`` -> 12,
``img_0001_ann.mat`` -> 1). When every such id is all digits they become integers,
otherwise they all stay strings; two files giving the same id is an error.

Images without points have no row in the long layout, yet they count (docs/metrics.md section 1:
count error 0, an image with predictions and no ground truth). ``--images-out`` writes
the images table (``image_id``, plus ``width``, ``height`` where the source has them:
COCO datasets) listing every image the source names, empty ones included; pass it as
``--images`` to ``pointscore evaluate``. Without it, a note says how many were dropped.

Bad input raises pointscore.InputError, one line per problem, each naming the file and
the line (text formats), the row (CSV) or the JSON element; at most 20 per file are
listed, then a count. Nothing is written unless everything converted: outputs are
written whole under a temporary name and renamed into place, both or neither.
"""

from ..errors import InputError, option
from .coco import from_coco
from .common import FORMATS
from .mat import from_mat, mat_image_id
from .jhu import from_jhu
from .nwpu import from_nwpu_counts, from_nwpu_json, from_nwpu_txt
from .tabular import from_csv, parse_mapping

__all__ = ["convert", "from_nwpu_txt", "from_nwpu_counts", "from_nwpu_json", "from_mat",
           "from_jhu", "from_coco", "from_csv",
           "mat_image_id", "parse_mapping", "FORMATS"]


def convert(fmt, paths, *, role=None, mapping=None, delimiter=None, mat_key=None,
            keep_class=True):
    """Convert annotations of any supported format.

    Parameters
    ----------
    fmt : {'nwpu-txt', 'nwpu-counts', 'nwpu-json', 'mat', 'jhu', 'coco', 'csv'}
        The input format (see the module doc).
    paths : path or sequence of paths
        Files, or directories of files of the format.
    role : {'gt', 'pred'}, optional
        Required for nwpu-txt; checked for coco; chooses the checks for csv.
    mapping : dict or str, optional
        csv: columns to rename, ``{old: new}`` or ``'old=new,...'``.
    delimiter : str, optional
        csv: the field delimiter.
    mat_key : str, optional
        mat: the variable holding the N x 2 points.
    keep_class : bool
        coco: keep ``category_id`` as the class.

    Returns
    -------
    (pyarrow.Table, pyarrow.Table or None)
        The points in the long layout, and the images table (None for csv).

    Raises
    ------
    InputError
        One line per problem, naming the file and the line, row or JSON element.
    """
    if fmt == "nwpu-txt":
        if role is None:
            raise InputError(f"nwpu-txt needs {option('role')} gt or pred "
                             "(ground truth has 5 numbers per point, predictions 2)")
        return from_nwpu_txt(paths, role, with_images=True)
    if fmt == "nwpu-counts":
        if role == "gt":
            raise InputError(f"nwpu-counts files are predictions: {option('role')} gt does "
                             "not apply")
        return from_nwpu_counts(paths, with_images=True)
    if fmt == "nwpu-json":
        return from_nwpu_json(paths, with_images=True)
    if fmt == "mat":
        return from_mat(paths, key=mat_key, with_images=True)
    if fmt == "jhu":
        return from_jhu(paths, with_images=True)
    if fmt == "coco":
        return from_coco(paths, role, keep_class=keep_class, with_images=True)
    if fmt == "csv":
        return from_csv(paths, mapping=mapping, role=role, delimiter=delimiter), None
    raise InputError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")


