"""`pointscore convert` (pointscore.convert): each source format written here, converted,
read back from Parquet and compared; malformed files name the file and the line."""
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import scipy.io
from hypothesis import given, settings
from hypothesis import strategies as st

import pointscore
from pointscore import InputError, convert
from pointscore.cli import main, parsers
from pointscore.cli.commands import convert_command
from pointscore.convert.common import MAX_PROBLEMS_PER_FILE

# A small known set: image id -> N x 2 points (image 3111 has none).
POINTS = {
    3110: np.array([[10.0, 20.0], [30.5, 40.25], [7.0, 7.0]]),
    3111: np.zeros((0, 2)),
    3112: np.array([[1.0, 2.0]]),
}


def cli(argv):
    """The `convert` subcommand's work, its InputErrors raised (the CLI's parser raises
    InputError for usage errors too)."""
    return convert_command(parsers.build().parse_args(["convert", *map(str, argv)]))


def long_rows(points):
    """Expected long layout: (image_id, x, y) rows in image order."""
    return [(image_id, float(x), float(y)) for image_id, xy in points.items() for x, y in xy]


def rows(table, columns=("image_id", "x", "y")):
    return list(zip(*(table.column(c).to_pylist() for c in columns)))


def problems_of(excinfo):
    """The lines as the command line shows them: options named by their flags."""
    return excinfo.value.lines(parsers.flag)


# --------------------------------------------------------------------- NWPU txt

def write_nwpu_pred(path, points):
    with open(path, "w") as out:
        for image_id, xy in points.items():
            numbers = " ".join(repr(float(v)) for v in xy.ravel())
            out.write(f"{image_id} {len(xy)} {numbers}\n")


def test_nwpu_txt_pred_round_trip(tmp_path):
    src = tmp_path / "pred.txt"
    write_nwpu_pred(src, POINTS)
    out, images = tmp_path / "pred.parquet", tmp_path / "images.parquet"
    cli(["--from", "nwpu-txt", "--role", "pred", src, "--out", out, "--images-out", images])
    table = pq.read_table(out)
    assert table.column_names == ["image_id", "x", "y"]
    assert table.schema.field("image_id").type == pa.int64()
    assert table.schema.field("x").type == pa.float64()
    assert rows(table) == long_rows(POINTS)
    assert pq.read_table(images).column("image_id").to_pylist() == [3110, 3111, 3112]


def test_nwpu_txt_gt_keeps_sigma_and_level(tmp_path):
    # The layout of NWPU-Crowd's val_gt_loc.txt: id count, then x y sigma_s sigma_l level.
    src = tmp_path / "val_gt_loc.txt"
    src.write_text("3110 2 851 1304 15 23 3 831 1344 13 22 2\n3111 0\n\n"
                   "3112 1 1.5 2.5 4 8 1\r\n")
    table = convert.from_nwpu_txt(src, "gt")
    assert table.column_names == ["image_id", "x", "y", "sigma_s", "sigma_l", "level"]
    assert rows(table, table.column_names) == [
        (3110, 851.0, 1304.0, 15.0, 23.0, 3), (3110, 831.0, 1344.0, 13.0, 22.0, 2),
        (3112, 1.5, 2.5, 4.0, 8.0, 1)]
    assert table.schema.field("level").type == pa.int64()


def test_nwpu_txt_malformed_names_file_and_line(tmp_path):
    src = tmp_path / "bad.txt"
    src.write_text("3110 2 10 20 30\n"      # line 1: count 2 needs 4 numbers, 3 follow
                   "3111 x\n"               # line 2: count is not an integer
                   "31a 0\n"                # line 3: id is not an integer
                   "3112 1 5 abc\n"         # line 4: not a number
                   "\n"
                   "7\n")                   # line 6: no count
    with pytest.raises(InputError) as excinfo:
        convert.from_nwpu_txt(src, "pred")
    lines = problems_of(excinfo)
    assert len(lines) == 5
    for line, number in zip(lines, (1, 2, 3, 4, 6)):
        assert line.startswith(f"{src}: line {number}: ")
    assert "count says 2 points, so 4 numbers" in lines[0] and "3 follow" in lines[0]
    assert "'abc' is not a number" in lines[3]


def test_nwpu_txt_gt_needs_five_numbers_per_point_and_unique_images(tmp_path):
    src = tmp_path / "gt.txt"
    src.write_text("1 1 10 20\n2 1 1 2 3 4 5\n2 0\n3 1 1 2 3 4 inf\n")
    with pytest.raises(InputError) as excinfo:
        convert.from_nwpu_txt(src, "gt")
    lines = problems_of(excinfo)
    assert lines[0].startswith(f"{src}: line 1: count says 1 point, so 5 numbers "
                               "(x y sigma_s sigma_l level per point)")
    assert lines[1] == f"{src}: line 4: 'inf' is not a finite number"
    src.write_text("1 1 10 20 4 8 1\n2 0\n1 0\n")
    with pytest.raises(InputError, match=r"line 3: image 1 is already given \(line 1\)"):
        convert.from_nwpu_txt(src, "gt")


def test_nwpu_txt_needs_role_and_caps_messages(tmp_path):
    src = tmp_path / "pred.txt"
    src.write_text("".join(f"{i} 1 {i}\n" for i in range(50)))
    with pytest.raises(InputError, match="needs role"):
        cli(["--from", "nwpu-txt", src, "--out", tmp_path / "o.parquet"])
    with pytest.raises(InputError) as excinfo:
        convert.from_nwpu_txt(src, "pred")
    lines = problems_of(excinfo)
    assert len(lines) == MAX_PROBLEMS_PER_FILE + 1
    assert lines[-1] == f"{src}: ... and 30 more problems"


@settings(max_examples=25, deadline=None)
@given(st.lists(st.lists(st.tuples(st.floats(-1e6, 1e6), st.floats(-1e6, 1e6)), max_size=6),
                min_size=1, max_size=6))
def test_nwpu_txt_round_trip_any_points(tmp_path_factory, images):
    points = {i: np.array(xy, dtype=np.float64).reshape(-1, 2) for i, xy in enumerate(images)}
    src = tmp_path_factory.mktemp("nwpu") / "pred.txt"
    write_nwpu_pred(src, points)
    table, image_table = convert.from_nwpu_txt(src, "pred", with_images=True)
    assert rows(table) == long_rows(points)      # repr() round-trips float64 exactly
    assert image_table.column("image_id").to_pylist() == list(points)


# --------------------------------------------------------------------- NWPU json

def test_nwpu_json_directory_round_trip(tmp_path):
    folder = tmp_path / "jsons"
    folder.mkdir()
    for image_id, xy in POINTS.items():
        (folder / f"{image_id:04d}.json").write_text(json.dumps(
            {"img_id": f"{image_id:04d}.jpg", "human_num": len(xy), "points": xy.tolist(),
             "boxes": [[x - 1, y - 1, x + 1, y + 1] for x, y in xy.tolist()]}))
    (folder / "notes.txt").write_text("not a json file: ignored")
    out, images = tmp_path / "gt.parquet", tmp_path / "images.parquet"
    cli(["--from", "nwpu-json", folder, "--out", out, "--images-out", images])
    assert rows(pq.read_table(out)) == long_rows(POINTS)
    assert pq.read_table(images).column("image_id").to_pylist() == [3110, 3111, 3112]
    # A single file; a non-numeric stem keeps a string id.
    single = tmp_path / "scene_a.json"
    single.write_text(json.dumps({"img_id": "scene_a.jpg", "human_num": 1, "points": [[1, 2]]}))
    assert rows(convert.from_nwpu_json(single)) == [("scene_a", 1.0, 2.0)]


def test_nwpu_json_malformed(tmp_path):
    bad_count = tmp_path / "0001.json"
    bad_count.write_text(json.dumps({"human_num": 3, "points": [[1, 2], [3, 4]]}))
    bad_point = tmp_path / "0002.json"
    bad_point.write_text(json.dumps({"human_num": 2, "points": [[1, 2], [3, "x"]]}))
    bad_json = tmp_path / "0003.json"
    bad_json.write_text('{"human_num": 1,\n "points": [[1, 2]\n}')
    for path, expected in [(bad_count, "human_num is 3 but 'points' has 2 points"),
                           (bad_point, "points[1] is not [x, y] with two numbers"),
                           (bad_json, "line 3: invalid JSON")]:
        with pytest.raises(InputError) as excinfo:
            convert.from_nwpu_json(path)
        assert problems_of(excinfo)[0].startswith(f"{path}: {expected}")
    # Two files naming the same image.
    (tmp_path / "dup").mkdir()
    for name in ("1.json", "01.json"):
        (tmp_path / "dup" / name).write_text(json.dumps({"points": []}))
    with pytest.raises(InputError, match="image id 1 is also the id of"):
        convert.from_nwpu_json(tmp_path / "dup")


# --------------------------------------------------------------------- .mat

def write_shanghaitech(path, xy):
    # As in ShanghaiTech: image_info is a 1x1 cell holding a struct(location, number).
    struct = {"location": xy, "number": np.array([[float(len(xy))]])}
    scipy.io.savemat(path, {"image_info": np.array([[struct]], dtype=object)})


def test_mat_shanghaitech_and_ucf_qnrf(tmp_path):
    sht = tmp_path / "ground_truth"
    sht.mkdir()
    for image_id, xy in POINTS.items():
        write_shanghaitech(sht / f"GT_IMG_{image_id}.mat", xy)
    loaded = scipy.io.loadmat(sht / "GT_IMG_3110.mat")
    assert np.array_equal(loaded["image_info"][0][0][0][0][0], POINTS[3110])  # the brief's path
    out, images = tmp_path / "sht.parquet", tmp_path / "sht_images.parquet"
    cli(["--from", "mat", sht, "--out", out, "--images-out", images])
    assert rows(pq.read_table(out)) == long_rows(POINTS)
    assert pq.read_table(images).column("image_id").to_pylist() == [3110, 3111, 3112]

    qnrf = tmp_path / "Test"
    qnrf.mkdir()
    for image_id, xy in POINTS.items():
        scipy.io.savemat(qnrf / f"img_{image_id - 3109:04d}_ann.mat", {"annPoints": xy})
    expected = {image_id - 3109: xy for image_id, xy in POINTS.items()}
    table, image_table = convert.from_mat(qnrf, with_images=True)
    assert rows(table) == long_rows(expected)
    assert image_table.column("image_id").to_pylist() == [1, 2, 3]
    assert convert.mat_image_id("GT_IMG_12") == "12"
    assert convert.mat_image_id("img_0001_ann") == "0001"


def test_mat_malformed(tmp_path):
    wrong_number = tmp_path / "GT_IMG_1.mat"
    scipy.io.savemat(wrong_number, {"image_info": np.array(
        [[{"location": np.ones((2, 2)), "number": np.array([[5.0]])}]], dtype=object)})
    wrong_shape = tmp_path / "img_0002_ann.mat"
    scipy.io.savemat(wrong_shape, {"annPoints": np.ones((4, 3))})
    no_points = tmp_path / "img_0003_ann.mat"
    scipy.io.savemat(no_points, {"pts": np.ones((4, 2))})
    not_mat = tmp_path / "img_0004_ann.mat"
    not_mat.write_text("hello")
    with pytest.raises(InputError) as excinfo:
        convert.from_mat(tmp_path)
    lines = problems_of(excinfo)
    assert lines[0] == f"{wrong_number}: image_info number is 5 but location has 2 points"
    assert lines[1] == f"{wrong_shape}: annPoints has shape (4, 3), expected N x 2 (x, y)"
    assert lines[2].startswith(f"{no_points}: neither 'image_info'")
    assert lines[3].startswith(f"{not_mat}: cannot read as a .mat file")
    # --mat-key names the variable.
    assert convert.from_mat(no_points, key="pts").num_rows == 4


# --------------------------------------------------------------------- COCO

COCO_GT = {
    "images": [{"id": 1, "width": 640, "height": 480}, {"id": 2, "width": 100, "height": 50}],
    "annotations": [
        {"id": 10, "image_id": 1, "category_id": 1, "keypoints": [10, 20, 2, 0, 0, 0, 30, 40, 1]},
        {"id": 11, "image_id": 1, "category_id": 2, "keypoints": [50, 60, 2]},
    ],
    "categories": [{"id": 1, "name": "head"}, {"id": 2, "name": "cell"}],
}
COCO_RESULTS = [
    {"image_id": 1, "category_id": 1, "keypoints": [11, 21, 1, 0, 0, 0, 29, 41, 0.7],
     "score": 0.9},
    {"image_id": 2, "category_id": 2, "keypoints": [5, 5, 1], "score": 0.4},
]


def test_coco_dataset_and_results(tmp_path):
    gt_json, res_json = tmp_path / "gt.json", tmp_path / "res.json"
    gt_json.write_text(json.dumps(COCO_GT))
    res_json.write_text(json.dumps(COCO_RESULTS))
    out, images = tmp_path / "gt.parquet", tmp_path / "images.parquet"
    cli(["--from", "coco", gt_json, "--out", out, "--images-out", images])
    gt = pq.read_table(out)
    assert gt.column_names == ["image_id", "x", "y", "class", "keypoint"]
    # v = 0 keypoints are not points; class is the category_id.
    assert rows(gt, gt.column_names) == [(1, 10.0, 20.0, 1, 0), (1, 30.0, 40.0, 1, 2),
                                         (1, 50.0, 60.0, 2, 0)]
    assert rows(pq.read_table(images), ("image_id", "width", "height")) == [
        (1, 640, 480), (2, 100, 50)]
    pred = convert.from_coco(res_json)
    assert rows(pred, ("image_id", "x", "y", "score", "class")) == [
        (1, 11.0, 21.0, 0.9, 1), (1, 29.0, 41.0, 0.9, 1), (2, 5.0, 5.0, 0.4, 2)]
    assert "class" not in convert.from_coco(res_json, "pred", keep_class=False).column_names


def test_coco_malformed(tmp_path):
    res_json = tmp_path / "res.json"
    res_json.write_text(json.dumps(COCO_RESULTS))
    with pytest.raises(InputError, match="results list holds predictions"):
        cli(["--from", "coco", "--role", "gt", res_json, "--out", tmp_path / "o.parquet"])
    bad = json.loads(json.dumps(COCO_GT))
    bad["annotations"][1]["keypoints"] = [1, 2]
    bad["annotations"][0]["image_id"] = 7
    bad_json = tmp_path / "bad.json"
    bad_json.write_text(json.dumps(bad))
    with pytest.raises(InputError) as excinfo:
        convert.from_coco(bad_json)
    assert problems_of(excinfo) == [
        f"{bad_json}: annotations[1] (id 11): 'keypoints' must be a list [x, y, v, ...] "
        "of length divisible by 3"]
    bad["annotations"][1]["keypoints"] = [1, 2, 2]
    bad_json.write_text(json.dumps(bad))
    with pytest.raises(InputError, match=r"annotations\[0\] \(id 10\): image_id 7 is not in "
                                         r"'images'"):
        convert.from_coco(bad_json)
    truncated = tmp_path / "truncated.json"
    truncated.write_text('{"images": [\n{"id": 1,\n')
    with pytest.raises(InputError, match=f"{truncated}: line 3: invalid JSON"):
        convert.from_coco(truncated)


# --------------------------------------------------------------------- CSV

def test_csv_map_round_trip(tmp_path):
    src = tmp_path / "points.csv"
    src.write_text("img,px,py,conf,note\n1,1.5,2,0.9,a\n1,3,4,0.2,b\n2,5,6,0.5,c\n")
    out = tmp_path / "pred.parquet"
    cli(["--from", "csv", src, "--map", "img=image_id,px=x,py=y,conf=score", "--out", out])
    table = pq.read_table(out)
    assert table.column_names == ["image_id", "x", "y", "score", "note"]
    assert table.schema.field("y").type == pa.float64()
    assert rows(table, table.column_names) == [(1, 1.5, 2.0, 0.9, "a"), (1, 3.0, 4.0, 0.2, "b"),
                                               (2, 5.0, 6.0, 0.5, "c")]


def test_csv_malformed(tmp_path):
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("img,px,py\n1,1.5,2\n2,5,6,7\n3,1\n")
    with pytest.raises(InputError) as excinfo:
        convert.from_csv(ragged, mapping="img=image_id,px=x,py=y")
    assert problems_of(excinfo) == [
        f"{ragged}: line 3: expected 3 columns, got 4: '2,5,6,7'",
        f"{ragged}: line 4: expected 3 columns, got 2: '3,1'"]
    bad_value = tmp_path / "values.csv"
    bad_value.write_text("img,px,py,score\n1,1.5,2,0.5\n1,abc,4,0.5\n2,3,4,-1\n")
    with pytest.raises(InputError) as excinfo:
        convert.from_csv(bad_value, mapping="img=image_id,px=x,py=y")
    assert problems_of(excinfo) == [f"{bad_value}: row 1: column 'x': 'abc' is not a number"]
    bad_value.write_text("img,px,py,score\n1,1.5,2,0.5\n2,3,4,-1\n")
    with pytest.raises(InputError, match=rf"{bad_value}: column 'score' has 1 .*negative "
                                         r"values \(row 1"):
        convert.from_csv(bad_value, mapping="img=image_id,px=x,py=y")
    with pytest.raises(InputError, match="mapping names columns not in the file: 'im'"):
        convert.from_csv(bad_value, mapping="im=image_id")
    with pytest.raises(InputError, match="missing column 'x'"):
        convert.from_csv(bad_value, mapping="img=image_id")
    with pytest.raises(InputError, match="mapping: expected old=new"):
        cli(["--from", "csv", bad_value, "--map", "img", "--out", tmp_path / "o.parquet"])


# --------------------------------------------------------------------- outputs, evaluate

def test_outputs_are_whole_or_absent(tmp_path):
    src = tmp_path / "pred.txt"
    src.write_text("1 1 2 3\n2 1 5\n")               # line 2 is short
    out, images = tmp_path / "pred.parquet", tmp_path / "images.parquet"
    with pytest.raises(InputError):
        cli(["--from", "nwpu-txt", "--role", "pred", src, "--out", out, "--images-out", images])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pred.txt"]
    with pytest.raises(InputError, match="must end in .parquet"):
        cli(["--from", "nwpu-txt", "--role", "pred", src, "--out", tmp_path / "pred.csv"])
    with pytest.raises(InputError, match="usage error"):
        cli(["--from", "yaml", src, "--out", out])
    with pytest.raises(InputError, match="no such file or directory"):
        cli(["--from", "mat", tmp_path / "missing", "--out", out])


def test_converted_tables_are_accepted_by_evaluate(tmp_path, capsys):
    gt_src, pred_src = tmp_path / "val_gt_loc.txt", tmp_path / "pred.txt"
    # Image 3: nothing in either; image 4: predictions only.
    gt_src.write_text("1 2 10 10 4 8 1 50 50 4 8 1\n2 1 5 5 4 8 1\n3 0\n4 0\n")
    pred_src.write_text("1 3 11 10 52 50 90 90\n2 0\n3 0\n4 1 7 7\n")
    gt, pred, images = (tmp_path / name for name in ("gt.parquet", "pred.parquet",
                                                      "images.parquet"))
    cli(["--from", "nwpu-txt", "--role", "gt", gt_src, "--out", gt, "--images-out", images])
    cli(["--from", "nwpu-txt", "--role", "pred", pred_src, "--out", pred])
    assert "2 images have no points" in capsys.readouterr().err   # images 2 and 3
    report = pointscore.evaluate(str(gt), str(pred), str(images), thresholds=[4.0], device="cpu")
    summary = report.summary
    assert (summary["images"], summary["gt_points"], summary["pred_points"]) == (4, 3, 4)
    assert summary["micro"]["tp"] == [2] and summary["micro"]["fp"] == [2]
    assert summary["micro"]["fn"] == [1]
    # |3-2| + |0-1| + 0 + |1-0| over 4 images (the empty image 3 counts).
    assert summary["counting"]["mae"] == pytest.approx(3 / 4)


def test_convert_runs_from_the_command_line(tmp_path):
    src = tmp_path / "pred.txt"
    src.write_text("1 2 10 20 30 40\n")
    out = tmp_path / "pred.parquet"
    assert main(["convert", "--from", "nwpu-txt", "--role", "pred", str(src),
                 "--out", str(out)]) == 0
    assert pq.read_table(out).num_rows == 2
