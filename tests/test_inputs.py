"""Reading and checking inputs (docs/metrics.md section 1): every accepted form scores the same, and
every bad table is refused with one line per problem naming the source, column and rows."""
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest

import pointscore
from pointscore import InputError

THRESHOLDS = (0.5, 1.0, 2.0)

# Image 4 has only a prediction; distances of the true pairs are 0.25, 0.75, 0.5 and 1.5.
GT = {"image_id": [1, 1, 2, 2, 3],
      "x": [0.0, 4.0, 0.0, 2.0, 1.0], "y": [0.0, 0.0, 0.0, 2.0, 1.0],
      "class": [0, 1, 0, 0, 1]}
PRED = {"image_id": [1, 1, 2, 2, 3, 4],
        "x": [0.25, 4.0, 2.0, 9.0, 1.0, 0.0], "y": [0.0, 0.75, 2.5, 9.0, 2.5, 0.0],
        "score": [0.875, 0.5, 0.75, 0.125, 0.625, 0.375],
        "class": [0, 1, 0, 0, 1, 1]}
GT_NO_CLASS = {k: v for k, v in GT.items() if k != "class"}
PRED_NO_CLASS = {k: v for k, v in PRED.items() if k != "class"}


def long_table(data, ids):
    """The points as a pyarrow.Table, ids and classes integer or string."""
    columns = dict(data)
    if ids == "string":
        columns["image_id"] = [f"img{i}" for i in data["image_id"]]
        columns["class"] = [f"c{c}" for c in data["class"]]
    return pa.table(columns)


def nested(table):
    """One row per image, the points in a list<struct<x, y[, score], class>> column."""
    by_image = {}
    for row in table.to_pylist():
        by_image.setdefault(row.pop("image_id"), []).append(row)
    return pa.table({"image_id": list(by_image), "points": list(by_image.values())})


def as_form(table, form, path):
    """``table`` in one of the accepted forms; files are written under ``path``."""
    if form == "parquet":
        pq.write_table(table, path / "t.parquet")
        return path / "t.parquet"
    if form == "dataset":  # hive partitioned: the 'part' column is read but unused
        for part, rows in (("part=0", slice(0, 3)), ("part=1", slice(3, None))):
            (path / "t" / part).mkdir(parents=True)
            pq.write_table(table[rows], path / "t" / part / "data.parquet")
        return path / "t"
    if form == "feather":
        feather.write_feather(table, path / "t.feather")
        return path / "t.feather"
    if form == "arrow":
        with pa.ipc.new_file(path / "t.arrow", table.schema) as writer:
            writer.write_table(table)
        return str(path / "t.arrow")
    if form == "csv":
        pcsv.write_csv(table, path / "t.csv")
        return str(path / "t.csv")
    if form == "table":
        return table
    if form == "pandas":
        return table.to_pandas()
    if form == "dict":
        return {name: table.column(name).to_numpy() for name in table.column_names}
    if form == "nested":
        pq.write_table(nested(table), path / "t.parquet")
        return path / "t.parquet"
    raise AssertionError(form)


def canonical(summary):
    """The summary with class keys replaced by their order, so 0 and 'c0' compare equal."""
    return {**summary, "classes": list(summary["classes"].values())}


@pytest.fixture(scope="module")
def expected():
    return pointscore.evaluate(GT, PRED, thresholds=THRESHOLDS, device="cpu").summary


def test_reference_case_is_not_trivial(expected):
    assert expected["images"] == 4 and expected["gt_points"] == 5
    assert expected["micro"]["tp"] == [2, 3, 4]
    assert expected["map"] is not None


@pytest.mark.parametrize("ids", ["integer", "string"])
@pytest.mark.parametrize("form", ["parquet", "dataset", "feather", "arrow", "csv", "table",
                                  "pandas", "dict", "nested"])
def test_every_input_form_gives_the_same_summary(form, ids, expected, tmp_path):
    (tmp_path / "gt").mkdir()
    (tmp_path / "pred").mkdir()
    gt = as_form(long_table(GT, ids), form, tmp_path / "gt")
    pred = as_form(long_table(PRED, ids), form, tmp_path / "pred")
    summary = pointscore.evaluate(gt, pred, thresholds=THRESHOLDS, device="cpu").summary
    # a nested table lists its images itself, so it needs no images table
    no_images = [] if form == "nested" else expected["warnings"]
    assert canonical(summary) == canonical({**expected, "warnings": no_images})
    names = ["0", "1"] if ids == "integer" else ["c0", "c1"]
    assert list(summary["classes"]) == names


def test_images_table_in_any_form_gives_the_same_summary(expected, tmp_path):
    images = pa.table({"image_id": [1, 2, 3, 4], "width": [10, 10, 10, 10],
                       "height": [10.0, 10.0, 10.0, 10.0]})
    for form in ("parquet", "csv", "pandas", "dict"):
        (tmp_path / form).mkdir()
        source = as_form(images, form, tmp_path / form)
        summary = pointscore.evaluate(GT, PRED, source, thresholds=THRESHOLDS, device="cpu").summary
        assert summary == {**expected, "warnings": []}  # the images table: no warning


def test_dictionary_encoded_and_large_string_columns_are_read_as_plain(expected):
    gt = long_table(GT, "string")
    gt = gt.set_column(0, "image_id", gt.column("image_id").dictionary_encode())
    gt = gt.set_column(3, "class", gt.column("class").cast(pa.large_string()))
    summary = pointscore.evaluate(gt, long_table(PRED, "string"), thresholds=THRESHOLDS,
                              device="cpu").summary
    assert canonical(summary) == canonical(expected)


def test_header_only_csv_is_an_empty_prediction_table(tmp_path):
    (tmp_path / "pred.csv").write_text("image_id,x,y\n")
    summary = pointscore.evaluate(GT_NO_CLASS, tmp_path / "pred.csv", thresholds=[1.0],
                              device="cpu").summary
    assert summary["pred_points"] == 0 and summary["micro"]["fn"] == [5]


def problems(gt=GT_NO_CLASS, pred=PRED_NO_CLASS, images=None, **options):
    with pytest.raises(InputError) as caught:
        pointscore.evaluate(gt, pred, images, thresholds=[1.0], device="cpu", **options)
    return caught.value.problems


def changed(data, **columns):
    return {**data, **columns}


@pytest.mark.parametrize("table, fragments", [
    (changed(GT_NO_CLASS, x=[0.0, np.nan, 0.0, np.inf, 1.0]),
     ["<gt>", "'x'", "2 missing, NaN or infinite", "rows 1, 3 (nan, inf)"]),
    (changed(GT_NO_CLASS, x=np.array([0.0, None, 0.0, 2.0, 1.0], dtype=object)),
     ["<gt>", "'x'", "row 1 (nan)"]),
    (changed(GT_NO_CLASS, x=["0", "1", "a", "2", "1"]),
     ["<gt>", "'x'", "must be numeric, got string", "row 2 ('a')"]),
    (changed(GT_NO_CLASS, image_id=[1.0, 1.0, 2.5, 2.0, 3.0]),
     ["<gt>", "'image_id'", "must be integer or string, got double", "row 2 (2.5)"]),
    (changed(GT_NO_CLASS, image_id=[1.0, 1.0, 2.0, 2.0, 3.0]),  # whole floats: still refused
     ["<gt>", "'image_id'", "got double", "rows 0, 1, 2, 3, 4 (1.0, 1.0, 2.0, 2.0, 3.0)"]),
    (changed(GT_NO_CLASS, image_id=[True, True, False, False, True]),
     ["<gt>", "'image_id'", "got bool", "rows 0, 1, 2, 3, 4"]),
    (changed(GT_NO_CLASS, image_id=np.array([1, 1, 2, 2, 2**63], dtype=np.uint64)),
     ["<gt>", "'image_id'", "above the int64 range", f"row 4 ({2**63})"]),
    ({"image_id": [1], "x": [0.0]},
     ["<gt>", "missing column 'y'", "ground truth", "(has: image_id, x)"]),
])
def test_bad_ground_truth_gives_one_problem_naming_source_column_and_rows(table, fragments):
    [line] = problems(gt=table)
    for fragment in fragments:
        assert fragment in line


def test_negative_or_nan_scores_are_refused_with_their_rows():
    pred = changed(PRED_NO_CLASS, score=[0.5, -1.0, np.nan, 0.5, 0.5, -0.0])
    [line] = problems(pred=pred)
    assert "<pred>: column 'score' has 2 missing, NaN, infinite or negative values" in line
    assert "rows 1, 2 (-1.0, nan)" in line


def test_several_problems_in_one_table_give_several_lines():
    gt = {"image_id": [1.5, 2.0], "x": ["a", "1"], "y": [np.nan, 0.0], "class": [0.5, 1.0]}
    lines = problems(gt=gt)
    assert len(lines) == 4
    assert [line.split("'")[1] for line in lines] == ["image_id", "x", "y", "class"]
    assert all(line.startswith("<gt>: ") and "\n" not in line for line in lines)


def test_problems_of_every_table_are_reported_together():
    lines = problems(gt={"image_id": [1], "x": [0.0]}, pred=changed(PRED_NO_CLASS, y=[np.nan] * 6),
                     images={"image_id": [1, 1]})
    assert len(lines) == 3
    assert [line.split(":")[0] for line in lines] == ["<gt>", "<pred>", "<images>"]


def test_many_offending_rows_are_cut_to_a_few():
    pred = changed(PRED_NO_CLASS, x=[np.nan] * 6)
    [line] = problems(pred=pred)
    assert "rows 0, 1, 2, 3, 4 and 1 more" in line


@pytest.mark.parametrize("images, fragments", [
    ({"image_id": [1, 2, 2, 3, 4]}, ["<images>", "'image_id'", "duplicate", "row 2 (2)"]),
    ({"image_id": [1, 2, 3, 4], "width": [10, 0, 10, 10]}, ["'width'", "non-positive", "row 1"]),
    ({"image_id": [1, 2, 3, 4], "height": [10, 10, np.nan, 10]}, ["'height'", "row 2 (nan)"]),
    ({"image_id": [1, 2, 3]}, ["<pred>", "'image_id'", "not in the images table", "row 5 (4)"]),
])
def test_bad_images_table_is_refused(images, fragments):
    [line] = problems(images=images)
    for fragment in fragments:
        assert fragment in line


def test_unknown_ids_are_reported_for_each_table():
    lines = problems(images={"image_id": [1, 2]})
    assert len(lines) == 2
    assert lines[0].startswith("<gt>: column 'image_id' has 1 ids not in the images table")
    assert "rows 4, 5 (3, 4)" in lines[1]


@pytest.mark.parametrize("gt, pred, images, options, fragments", [
    (changed(GT_NO_CLASS, image_id=["a", "a", "b", "b", "c"]), PRED_NO_CLASS, None, {},
     ["'image_id'", "string in <gt>", "integer in <pred>"]),
    (GT, PRED_NO_CLASS, None, {}, ["<gt> has a 'class' column but <pred> does not"]),
    (GT_NO_CLASS, {k: v for k, v in PRED_NO_CLASS.items() if k != "score"}, None,
     {"score_threshold": 0.5}, ["<pred>", "'score'"]),
    (GT_NO_CLASS, PRED_NO_CLASS, None, {"normalize": "wh"}, ["'width'", "'height'"]),
    (GT_NO_CLASS, PRED_NO_CLASS, {"image_id": [1, 2, 3, 4]}, {"normalize": "diag"},
     ["'width'", "'height'"]),
])
def test_tables_that_disagree_or_lack_what_an_option_needs_are_refused(gt, pred, images, options,
                                                                      fragments):
    [line] = problems(gt, pred, images, **options)
    for fragment in fragments:
        assert fragment in line


def test_nested_layout_names_the_points_fields(tmp_path):
    points = pa.array([[{"x": 1.0}], []], pa.list_(pa.struct([("x", pa.float64())])))
    path = tmp_path / "gt.parquet"
    pq.write_table(pa.table({"image_id": [1, 2], "points": points}), path)
    [line] = problems(gt=path)
    assert line == (f"{path}: missing column 'points.y' in the ground truth table "
                    "(has: image_id, points.x)")


def test_nested_layout_without_image_id_is_a_missing_column():
    points = pa.array([[{"x": 1.0, "y": 2.0}]])
    [line] = problems(gt=pa.table({"image": [1], "points": points}))
    assert line.startswith("<gt>: missing column 'image_id'")


def test_nested_points_that_are_not_structs_are_refused():
    [line] = problems(gt=pa.table({"image_id": [1], "points": pa.array([[1.0, 2.0]])}))
    assert line.startswith("<gt>: column 'points' must be list<struct<x, y[, score, class]>>")


def test_nested_bad_values_name_the_points_field():
    points = pa.array([[{"x": 1.0, "y": 2.0}], [{"x": np.nan, "y": 0.0}]])
    [line] = problems(gt=pa.table({"image_id": [1, 2], "points": points}))
    assert line.startswith("<gt>: column 'points.x' has 1 missing, NaN or infinite values (row 1")


@pytest.mark.parametrize("source, fragment", [
    ({"image_id": [1, 2], "x": [0.0], "y": [0.0, 1.0]}, "cannot build a table from the dict"),
    (pd.DataFrame({"image_id": [1, "b"], "x": [0.0, 1.0], "y": [0.0, 1.0]}),
     "cannot build a table from the DataFrame"),
    ([1, 2, 3], "expected a path, pyarrow.Table"),
])
def test_tables_that_cannot_be_built_give_one_line(source, fragment):
    [line] = problems(gt=source)
    assert line.startswith("<gt>: ") and fragment in line and "\n" not in line


@pytest.mark.parametrize("name, content, fragment", [
    ("gt.parquet", b"", "the file is empty"),
    ("gt.csv", b"", "the file is empty"),
    ("gt.parquet", b"not parquet", "cannot read ground truth table"),
    ("gt.csv", b"image_id,x,y\n1,2\n", "cannot read ground truth table"),
    ("gt.txt", b"image_id,x,y\n", "unknown file type"),
])
def test_unreadable_files_give_one_line_naming_the_file(tmp_path, name, content, fragment):
    path = tmp_path / name
    path.write_bytes(content)
    [line] = problems(gt=path)
    assert line.startswith(f"{path}: ") and fragment in line and "\n" not in line


def test_a_missing_path_is_named(tmp_path):
    [line] = problems(gt=tmp_path / "nope.parquet")
    assert line == f"{tmp_path / 'nope.parquet'}: no such file or directory"


def test_header_only_predictions_score_against_string_ids(tmp_path):
    gt = tmp_path / "gt.csv"
    gt.write_text("image_id,x,y\na,0,0\nb,1,1\n")
    pred = tmp_path / "pred.csv"
    pred.write_text("image_id,x,y\n")
    s = pointscore.evaluate(str(gt), str(pred), thresholds=[1.0], device="cpu").summary
    assert s["images"] == 2 and s["micro"]["fn"] == [2]


def test_nested_image_without_points_still_counts():
    point = pa.struct([("x", pa.float64()), ("y", pa.float64())])
    nested = pa.table({"image_id": [1, 2],
                       "points": pa.array([[{"x": 0.0, "y": 0.0}], []], pa.list_(point))})
    s = pointscore.evaluate(nested, nested, thresholds=[1.0], device="cpu").summary
    assert s["images"] == 2 and s["micro"]["tp"] == [1]


IMAGES = {"image_id": [1, 2, 3, 4], "width": [10.0] * 4, "height": [10.0] * 4}


@pytest.mark.parametrize("gt, images, normalize, lines", [
    # 4 / 1e-320 overflows; so do the predictions 0.25 and 4.0 of image 1.
    (GT_NO_CLASS, changed(IMAGES, width=[1e-320, 10.0, 10.0, 10.0]), "wh",
     ["<gt>: column 'x' has 1 values not finite or beyond +-8.988e+307 with normalize 'wh' "
      "(row 1 (inf))",
      "<pred>: column 'x' has 2 values not finite or beyond +-8.988e+307 with normalize 'wh' "
      "(rows 0, 1 (inf, inf))"]),
    (GT_NO_CLASS, changed(IMAGES, width=[10.0, 1e200, 1e-170, 10.0],
                          height=[10.0, 1.0, 1e-170, 10.0]), "diag",
     ["<images>: normalize 'diag' needs every diagonal sqrt(width**2 + height**2) finite "
      "and > 0 in float64, got 2 that are not (rows 1, 2 (inf, 0.0))"]),
    (changed(GT_NO_CLASS, x=[0.0, 1e308, 0.0, -1e308, 1.0]), None, "none",
     ["<gt>: column 'x' has 2 values beyond +-8.988e+307, where distances overflow "
      "(rows 1, 3 (1e+308, -1e+308))"]),
])
def test_coordinates_the_kernels_cannot_take_are_refused(gt, images, normalize, lines):
    assert problems(gt=gt, images=images, normalize=normalize) == lines


def test_nested_coordinates_out_of_range_name_the_points_field():
    points = pa.array([[{"x": 1.0, "y": 2.0}], [{"x": 0.0, "y": 1e300}]])
    gt = pa.table({"image_id": [1, 2], "points": points})
    images = {"image_id": [1, 2], "width": [1.0, 1.0], "height": [1.0, 1e-20]}
    gt_line, _ = problems(gt=gt, pred=gt, images=images, normalize="wh")
    assert gt_line == ("<gt>: column 'points.y' has 1 values not finite or beyond "
                       "+-8.988e+307 with normalize 'wh' (row 1 (inf))")


def _nested(ids, points, id_type=None):
    point = pa.struct([("x", pa.float64()), ("y", pa.float64())])
    return pa.table({"image_id": pa.array(ids, id_type),
                     "points": pa.array(points, pa.list_(point))})


ONE_POINT = [{"x": 0.0, "y": 0.0}]


@pytest.mark.parametrize("gt, line", [
    # Images without points: the flat table never sees them, their ids are checked too.
    (_nested([1, None], [ONE_POINT, []]), "<gt>: column 'image_id' has 1 missing values (row 1)"),
    (_nested([1.5, 2.0], [[], []], pa.float64()),
     "<gt>: column 'image_id' must be integer or string, got double (row 0 (1.5))"),
    # Rows of 'image_id' count the images, not the points.
    (_nested([1, 2, None], [ONE_POINT * 3, ONE_POINT, ONE_POINT]),
     "<gt>: column 'image_id' has 1 missing values (row 2)"),
    (_nested(["a", "b"], [[], []]), "column 'image_id' is string in <gt> but integer in <pred>"),
])
def test_nested_image_ids_are_checked_image_by_image(gt, line):
    assert problems(gt=gt) == [line]


@pytest.mark.parametrize("options, line", [
    ({"score_threshold": "0.5"}, "score_threshold must be a finite number, got '0.5'"),
    ({"score_threshold": np.float64("nan")}, "score_threshold must be a finite number, got nan"),
    ({"score_threshold": True}, "score_threshold must be a finite number, got True"),
    ({"thresholds": ["a"]}, "thresholds must be finite numbers > 0, got 'a'"),
    ({"thresholds": [0.1, float("nan")]}, "thresholds must be finite numbers > 0, got nan"),
    ({"thresholds": "0.5"}, "thresholds must be finite numbers > 0, got '0.5'"),
    ({"thresholds": []}, "thresholds must be finite numbers > 0, got none"),
    ({"thresholds": [10 ** 400]}, "thresholds must be finite numbers > 0, got "
                                  "1000000000000000000000000000000000000..."),
    ({"match": 3}, "match must be one of greedy, nearest, hungarian, kuhn, got 3"),
    ({"match": np.array(["greedy"])},
     "match must be one of greedy, nearest, hungarian, kuhn, got array(['greedy'], dtype='<U6')"),
    ({"normalize": ["wh"]}, "normalize must be one of none, wh, diag, knn, got ['wh']"),
])
def test_options_of_the_wrong_type_give_one_line(options, line):
    with pytest.raises(InputError) as caught:
        pointscore.evaluate(GT_NO_CLASS, PRED_NO_CLASS, device="cpu",
                        **{"thresholds": [1.0], **options})
    assert caught.value.problems == [line]


def test_options_of_any_numeric_type_are_accepted():
    s = pointscore.evaluate(GT_NO_CLASS, PRED_NO_CLASS, device="cpu", thresholds=np.float32(1.0),
                        score_threshold=np.int64(0)).summary
    assert s["config"]["thresholds"] == [1.0] and s["micro"]["tp"] == [3]
