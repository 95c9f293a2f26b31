"""Crowd-counting conventions (engine/counting.py, docs/counting.md): GAME, breakdowns
by count or density, count-only predictions, and the command line's flags."""
import json
import math
import os
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datasets import datasets
from hypothesis import given, settings

import pointscore
from pointscore import InputError
from pointscore.cli import main

SETTINGS = settings(max_examples=40, deadline=None)
SPEC_KEYS = ["version", "schema_version", "config", "warnings", "images", "gt_points", "pred_points", "counting", "micro",
             "macro", "map", "classes"]


def evaluate(gt, pred, images=None, **options):
    options.setdefault("thresholds", [1.0])
    return pointscore.evaluate(gt, pred, images, device="cpu", **options).summary


def problems(gt, pred, images=None, **options):
    with pytest.raises(InputError) as caught:
        evaluate(gt, pred, images, **options)
    return caught.value.problems


# ---- GAME -------------------------------------------------------------------------------

# Image 0 is 4 x 4 with points on cell borders, on the far edge and outside the image;
# image 1 is 8 x 2 with one stray prediction. Cells at level l: floor(x / w * 2^l), clipped.
GRID_GT = {"image_id": [0, 0, 0, 0], "x": [0.0, 2.0, 4.0, 1.0], "y": [0.0, 2.0, 4.0, 3.0]}
GRID_PRED = {"image_id": [0, 0, 0, 0, 1], "x": [1.0, 2.0, 5.0, 3.0, 4.0],
             "y": [1.0, 1.9, -1.0, 3.0, 1.0], "score": [0.9, 0.8, 0.7, 0.6, 0.5]}
GRID_IMAGES = {"image_id": [0, 1], "width": [4.0, 8.0], "height": [4.0, 2.0]}


def test_game_by_hand():
    # Image 0, level 1 (2 x 2 cells of 2 px): gt (0,0) -> cell (row 0, col 0); (2,2) on
    # the border -> (1,1); (4,4) on the far edge -> (1,1); (1,3) -> (1,0). Predictions
    # (1,1) -> (0,0); (2,1.9) -> (0,1); (5,-1) outside -> (0,1); (3,3) -> (1,1).
    # |1-1| + |0-2| + |1-0| + |2-1| = 4. Level 2 (1 px cells): only (3,3) shared: 3 + 3;
    # level 3: all 8 apart. Image 1: one prediction and no gt, 1 at every level.
    s = evaluate(GRID_GT, GRID_PRED, GRID_IMAGES, game=3)
    assert s["game"] == {"levels": [0, 1, 2, 3], "pooled": [0.5, 2.5, 3.5, 4.5],
                         "classes": {"0": [0.5, 2.5, 3.5, 4.5]}}
    assert s["game"]["pooled"][0] == s["counting"]["mae"]


def test_game_keeps_predictions_over_the_score_threshold_and_ignores_normalize():
    kept = evaluate(GRID_GT, GRID_PRED, GRID_IMAGES, game=1, score_threshold=0.75)
    # Predictions (1,1) and (2,1.9) kept: image 0 level 1 is 0 + 1 + 1 + 2, image 1 is 0.
    assert kept["game"]["pooled"] == [1.0, 2.0]
    normalized = evaluate(GRID_GT, GRID_PRED, GRID_IMAGES, game=1, score_threshold=0.75,
                          normalize="wh", thresholds=[0.1])
    assert normalized["game"] == kept["game"]


def test_game_pooled_merges_classes_per_cell():
    gt = {"image_id": [0], "x": [1.0], "y": [1.0], "class": ["a"]}
    pred = {"image_id": [0], "x": [1.5], "y": [1.5], "class": ["b"]}
    s = evaluate(gt, pred, {"image_id": [0], "width": [4.0], "height": [4.0]}, game=1)
    assert s["game"]["pooled"] == [0.0, 0.0]
    assert s["game"]["classes"] == {"a": [1.0, 1.0], "b": [1.0, 1.0]}


def naive_game(gt, pred, images, level):
    """Pooled GAME(level) with loops and a Counter."""
    size = {i: (w, h) for i, w, h in zip(images["image_id"], images["width"], images["height"])}
    side = 2 ** level

    def cell(i, x, y):
        w, h = size[i]
        return (i, min(max(math.floor(y / h * side), 0), side - 1),
                min(max(math.floor(x / w * side), 0), side - 1))

    diff = Counter()
    for i, x, y in zip(gt["image_id"], gt["x"], gt["y"]):
        diff[cell(i, x, y)] += 1
    for i, x, y in zip(pred["image_id"], pred["x"], pred["y"]):
        diff[cell(i, x, y)] -= 1
    return sum(abs(v) for v in diff.values()) / len(images["image_id"])


@SETTINGS
@given(data=datasets(with_images=True))
def test_game_zero_is_mae_and_equals_naive(data):
    gt, pred, images, thresholds = data
    s = evaluate(gt, pred, images, thresholds=thresholds, game=3)
    assert s["game"]["pooled"][0] == s["counting"]["mae"]
    for name, values in s["game"]["classes"].items():
        assert values[0] == s["classes"][name]["counting"]["mae"]
        assert values == sorted(values)  # finer grids never hide errors
    assert s["game"]["pooled"] == pytest.approx(
        [naive_game(gt, pred, images, level) for level in range(4)], abs=1e-12)


def test_game_needs_image_sizes_and_a_level_from_0_to_3():
    assert problems(GRID_GT, GRID_PRED, game=1) == [
        "game needs image sizes: pass images with 'width' and 'height' columns"]
    assert problems(GRID_GT, GRID_PRED, {"image_id": [0, 1]}, game=1) == [
        "<images>: game needs 'width' and 'height' columns in the images table"]
    for bad in (4, -1, 1.0, True, "2"):
        assert problems(GRID_GT, GRID_PRED, GRID_IMAGES, game=bad)[0].startswith(
            "game must be a whole number from 0 to 3")


# ---- breakdowns -------------------------------------------------------------------------

def crowd(counts, sizes=None):
    """gt with the given number of points per image (ids 0..n-1) and predictions that
    hit every other one; an images table when sizes are given."""
    ids = np.repeat(np.arange(len(counts)), counts)
    x = np.concatenate([np.arange(n, dtype=np.float64) for n in counts])
    gt = {"image_id": ids, "x": x, "y": np.zeros(ids.size)}
    pred = {"image_id": ids[::2], "x": x[::2], "y": np.zeros(ids[::2].size)}
    images = None if sizes is None else {"image_id": np.arange(len(counts)),
                                         "width": np.array([w for w, _ in sizes], float),
                                         "height": np.array([h for _, h in sizes], float)}
    return gt, pred, images


def test_count_bins_are_right_closed_and_the_first_holds_zero():
    gt, pred, images = crowd([0, 100, 101, 5001], [(10, 10)] * 4)
    b = evaluate(gt, pred, images, breakdown="count")["breakdown"]
    assert b["by"] == "count" and b["edges"] == [0.0, 100.0, 500.0, 5000.0]
    assert [(x["lo"], x["hi"], x["images"], x["gt_count"]) for x in b["bins"]] == [
        (0.0, 0.0, 1, 0), (0.0, 100.0, 1, 100), (100.0, 500.0, 1, 101),
        (500.0, 5000.0, 0, 0), (5000.0, None, 1, 5001)]
    second = b["bins"][1]
    assert second["pred_count"] == 50 and second["tp"] == [50] and second["fn"] == [50]
    assert second["counting"] == {"mae": 50.0, "rmse": 50.0, "nae": 0.5}
    assert second["recall"] == [0.5] and second["precision"] == [1.0]


def test_density_bins_count_per_megapixel():
    # 100 points on 1000 x 1000 is 100 per megapixel; on 1000 x 500, 200.
    gt, pred, images = crowd([100, 100], [(1000, 1000), (1000, 500)])
    b = evaluate(gt, pred, images, breakdown="density", bins=[100, 150])["breakdown"]
    assert [x["images"] for x in b["bins"]] == [1, 0, 1]
    assert problems(gt, pred, breakdown="density") == [
        "breakdown 'density' needs image sizes: pass images with 'width' and 'height' "
        "columns"]


@SETTINGS
@given(data=datasets())
def test_bins_add_up_to_the_whole(data):
    gt, pred, images, thresholds = data
    s = evaluate(gt, pred, images, thresholds=thresholds, breakdown="count", bins=[1, 3])
    bins = s["breakdown"]["bins"]
    assert sum(b["images"] for b in bins) == s["images"]
    assert sum(b["gt_count"] for b in bins) == s["gt_points"]
    for name in ("tp", "fp", "fn"):
        assert np.sum([b[name] for b in bins], axis=0).tolist() == s["micro"][name]
    # One bin holding every image gives the summary's own numbers, to the bit.
    whole = evaluate(gt, pred, images, thresholds=thresholds, breakdown="count",
                     bins=[1e9])["breakdown"]["bins"][0]
    assert whole["counting"] == s["counting"]
    for name in ("tp", "fp", "fn", "precision", "recall", "f1"):
        assert whole[name] == s["micro"][name]


@pytest.mark.parametrize("options, message", [
    ({"breakdown": "size"}, "breakdown must be one of count, density, got 'size'"),
    ({"bins": [1, 2]}, "bins needs a breakdown ('count' or 'density')"),
    ({"breakdown": "count", "bins": [5, 5]}, "bins must be finite, increasing numbers >= 0"),
    ({"breakdown": "count", "bins": [-1, 5]}, "bins must be finite, increasing numbers >= 0"),
    ({"breakdown": "count", "bins": [1, math.inf]}, "bins must be finite"),
    ({"breakdown": "count", "bins": []}, "bins must be finite"),
    ({"breakdown": "count", "bins": "0,100"}, "bins must be finite"),
])
def test_breakdown_options_are_checked(options, message):
    gt, pred, _ = crowd([1])
    assert problems(gt, pred, **options)[0].startswith(message)


def test_default_summary_has_the_spec_keys_only():
    gt, pred, images = crowd([3, 0, 5], [(10, 10)] * 3)
    plain = evaluate(gt, pred, images)
    assert list(plain) == SPEC_KEYS
    asked = evaluate(gt, pred, images, game=2, breakdown="density")
    assert list(asked) == SPEC_KEYS + ["game", "breakdown"]
    assert {k: asked[k] for k in SPEC_KEYS} == plain


# ---- count-only predictions -------------------------------------------------------------

GT = {"image_id": [0, 0, 0, 1], "x": [1.0, 2.0, 3.0, 4.0], "y": [0.0, 0.0, 0.0, 0.0]}
IMAGES = {"image_id": [0, 1, 2]}


def test_fractional_counts_by_hand():
    # True counts 3, 1, 0; predicted 2.5, 1.25 and (no row) 0.
    report = pointscore.evaluate(GT, {"image_id": [1, 0], "count": [1.25, 2.5]}, IMAGES,
                             thresholds=[1.0, 2.0], device="cpu")
    s = report.summary
    assert list(s) == SPEC_KEYS
    assert s["images"] == 3 and s["gt_points"] == 4 and s["pred_points"] == 3.75
    assert s["counting"] == {"mae": 0.75 / 3, "rmse": math.sqrt(0.3125 / 3),
                             "nae": (0.5 / 3 + 0.25) / 2}
    assert s["micro"] == {k: [None, None] for k in
                          ("tp", "fp", "fn", "precision", "recall", "f1", "loc_error")}
    assert s["macro"] == {k: [None, None] for k in ("precision", "recall", "f1", "ap")}
    assert s["map"] is None
    assert s["classes"]["0"]["ap"] == [None, None]
    assert s["classes"]["0"]["counting"] == s["counting"]
    assert report.per_image.schema.field("pred_count").type == pa.float64()
    assert report.per_image.column("pred_count").to_pylist() == [2.5, 1.25, 0.0]


@SETTINGS
@given(data=datasets())
def test_integer_counts_score_as_the_points_they_count(data):
    gt, pred, images, thresholds = data
    keys = ["image_id"] + (["class"] if "class" in pred else [])
    grouped = pa.table({k: pred[k] for k in keys}).group_by(keys).aggregate([([], "count_all")])
    counts = {k: grouped.column(k).to_numpy() for k in keys}
    counts["count"] = grouped.column("count_all").to_numpy()
    points = evaluate(gt, pred, images, thresholds=thresholds)
    only = evaluate(gt, counts, images, thresholds=thresholds)
    assert only["counting"] == points["counting"]
    assert only["pred_points"] == points["pred_points"]
    for name, c in points["classes"].items():
        assert only["classes"][name]["counting"] == c["counting"]
        assert only["classes"][name]["pred_points"] == c["pred_points"]


def test_float_sums_do_not_depend_on_row_order():
    rng = np.random.default_rng(5)
    n = 300
    gt = {"image_id": rng.integers(0, n, 5000), "x": np.zeros(5000), "y": np.zeros(5000),
          "class": rng.integers(0, 3, 5000)}
    ids, classes = np.divmod(rng.permutation(3 * n)[:2 * n], 3)
    counts = {"image_id": ids, "class": classes, "count": rng.random(2 * n) * 1e3}
    first = evaluate(gt, counts, breakdown="count", bins=[5, 10])
    order = rng.permutation(2 * n)
    second = evaluate(gt, {k: v[order] for k, v in counts.items()}, breakdown="count",
                      bins=[5, 10])
    assert first == second


def test_count_only_breakdown_has_null_localisation():
    s = evaluate(GT, {"image_id": [0, 1], "count": [3, 2]}, IMAGES, breakdown="count",
                 bins=[1])
    assert [b["images"] for b in s["breakdown"]["bins"]] == [2, 1]
    assert s["breakdown"]["bins"][1]["counting"] == {"mae": 0.0, "rmse": 0.0, "nae": 0.0}
    assert s["breakdown"]["bins"][0]["tp"] == [None]
    assert s["breakdown"]["bins"][0]["pred_count"] == 2


def test_count_only_errors_name_the_file_column_and_rows(tmp_path):
    path = tmp_path / "counts.csv"
    path.write_text("image_id,count\n0,1.5\n1,-2\n2,nan\n0,3\n")
    assert problems(GT, str(path), IMAGES) == [
        f"{path}: column 'count' has 2 missing, NaN, infinite or negative values "
        "(rows 1, 2 (-2.0, nan))",
        f"{path}: column 'image_id' has 1 repeated image ids in the count-only predictions "
        "table, which takes one row per image (row 3 (0))"]


@pytest.mark.parametrize("counts, message", [
    ({"image_id": [0, 0], "class": [1, 1], "count": [1, 2]},
     "<pred>: column 'image_id' has 1 repeated (image_id, class) pairs"),
    ({"image_id": [0], "count": ["many"]}, "<pred>: column 'count' must be numeric"),
    ({"image_id": [0], "count": [1], "x": [0.0], "y": [0.0]},
     "<pred>: a predictions table holds points ('x', 'y') or per-image counts ('count'), "
     "not both"),
    ({"count": [1]}, "<pred>: missing column 'image_id' in the count-only predictions"),
    ({"image_id": [7], "count": [1]}, "<pred>: column 'image_id' has 1 ids not in the images"),
    ({"image_id": [0], "class": [1], "count": [1]},
     "<pred> has a 'class' column but <gt> does not"),
])
def test_count_only_errors(counts, message):
    assert problems(GT, counts, IMAGES)[0].startswith(message)


def test_count_only_refuses_score_threshold_and_game():
    counts = {"image_id": [0], "count": [1]}
    sized = {"image_id": [0, 1, 2], "width": [9.0] * 3, "height": [9.0] * 3}
    assert problems(GT, counts, sized, score_threshold=0.5, game=1) == [
        "<pred>: score_threshold does not apply to count-only predictions (a 'count' "
        "column, no points)",
        "<pred>: game needs predicted points; count-only predictions have none"]


# ---- command line -----------------------------------------------------------------------

@pytest.fixture
def files(tmp_path):
    gt, pred, images = crowd([3, 0, 120], [(10, 10), (20, 10), (1000, 1000)])
    out = {}
    for name, table in (("gt", gt), ("pred", pred), ("images", images)):
        out[name] = str(tmp_path / f"{name}.parquet")
        pq.write_table(pa.table(table), out[name])
    out["counts"] = str(tmp_path / "counts.csv")
    with open(out["counts"], "w") as f:
        f.write("image_id,count\n0,2.5\n2,118.25\n")
    return out


def run(capsys, *argv):
    code = main(["evaluate", "--device", "cpu", "--thresholds", "1,2", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_adds_keys_only_when_asked(files, capsys):
    base = ["--gt", files["gt"], "--pred", files["pred"], "--images", files["images"]]
    code, out, _ = run(capsys, *base, "--json", "-")
    assert code == 0 and list(json.loads(out)) == SPEC_KEYS
    code, out, _ = run(capsys, *base, "--json", "-", "--game", "2", "--breakdown", "count",
                       "--bins", "0,100")
    s = json.loads(out)
    assert code == 0 and list(s) == SPEC_KEYS + ["game", "breakdown"]
    assert s["game"]["levels"] == [0, 1, 2]
    assert [b["images"] for b in s["breakdown"]["bins"]] == [1, 1, 1]
    code, out, _ = run(capsys, *base, "--game", "1", "--breakdown", "density")
    assert code == 0 and "GAME(l)" in out and "by true count per megapixel" in out


def test_the_terminal_table_aligns_game_and_rounds_count_only_sums(files, tmp_path, capsys):
    base = ["--gt", files["gt"], "--images", files["images"], "--pred", files["pred"],
            "--game", "2"]
    code, out, _ = run(capsys, *base, "--json", "-")
    pooled = json.loads(out)["game"]["pooled"]
    code, out, _ = run(capsys, *base)
    game = out[out.index("GAME(l)"):].splitlines()[:2]
    assert code == 0 and len(game[0]) == len(game[1])
    assert game[1].split() == ["pooled", *(f"{v:.4f}" for v in pooled)]
    for text, shown in (("1,1.3333333333\n2,2.25\n", "3.58"), ("1,1\n2,3\n", "4")):
        counts = tmp_path / "counts.csv"
        counts.write_text("image_id,count\n" + text)
        code, out, _ = run(capsys, "--gt", files["gt"], "--images", files["images"],
                           "--pred", str(counts))
        assert code == 0 and f"predicted points {shown} " in out
        assert "TP" not in out and "mAP" not in out


@pytest.mark.parametrize("argv, message", [
    (["--game", "1"], "--game needs image sizes: pass --images"),
    (["--game", "4"], "usage error: argument --game: invalid choice"),
    (["--bins", "1,2"], "--bins needs a --breakdown"),
    (["--breakdown", "count", "--bins", "1,x"],
     "usage error: argument --bins: expected numbers separated by commas"),
    (["--breakdown", "count", "--bins", "2,1"], "--bins must be finite, increasing"),
])
def test_cli_bad_options_exit_2(files, capsys, argv, message):
    code, _, err = run(capsys, "--gt", files["gt"], "--pred", files["pred"], *argv)
    assert code == 2 and err.startswith(f"pointscore: {message}")
    assert len(err.splitlines()) == 1


def test_cli_count_only(files, capsys, tmp_path):
    per_image = str(tmp_path / "per_image.parquet")
    code, out, _ = run(capsys, "--gt", files["gt"], "--pred", files["counts"], "--images",
                       files["images"], "--json", "-", "--per-image", per_image)
    s = json.loads(out)
    assert code == 0 and s["pred_points"] == 120.75 and s["micro"]["tp"] == [None, None]
    assert s["counting"]["mae"] == (0.5 + 0 + 1.75) / 3
    assert pq.read_table(per_image).column("pred_count").to_pylist() == [2.5, 0.0, 118.25]
    code, _, err = run(capsys, "--gt", files["gt"], "--pred", files["counts"],
                       "--score-threshold", "0.5")
    assert code == 2 and "--score-threshold does not apply to count-only" in err


def test_streamed_inputs_take_the_options(files, capsys, tmp_path):
    directory = tmp_path / "gt_dir"
    os.makedirs(directory)
    pq.write_table(pq.read_table(files["gt"]), directory / "part-0.parquet")
    options = ["--images", files["images"], "--game", "1", "--breakdown", "count", "--json", "-"]
    outputs = []
    for gt in (str(directory), files["gt"]):  # a dataset directory is streamed
        code, out, err = run(capsys, "--gt", gt, "--pred", files["pred"], *options)
        assert code == 0, err
        outputs.append(json.loads(out))
    assert outputs[0] == outputs[1]
    counts = str(tmp_path / "counts.parquet")
    pq.write_table(pa.table({"image_id": [0, 2], "count": [2.5, 118.25]}), counts)
    code, out, err = run(capsys, "--gt", str(directory), "--pred", counts, "--json", "-")
    assert code == 0, err
    assert json.loads(out)["pred_points"] == 120.75


def test_count_only_predictions_refuse_scaled_distances():
    gt = {"image_id": [1, 1], "x": [0.0, 1.0], "y": [0.0, 0.0], "sigma": [1.0, 1.0]}
    counts = {"image_id": [1], "count": [2.0]}
    for options in ({"radius": "sigma"}, {"normalize": "knn"}):
        with pytest.raises(InputError, match="count-only predictions have no points"):
            pointscore.evaluate(gt, counts, **options)
