"""Match export: every prediction's matched gt row and distance per threshold."""
import numpy as np
import pyarrow.parquet as pq
import pytest
from datasets import datasets
from hypothesis import given, settings

import pointscore
from pointscore.cli import main

POLICIES = ["greedy", "nearest", "hungarian", "kuhn"]


def by_row(table):
    """The export in the predictions table's row order."""
    return table.sort_by("pred_row").to_pydict()


def _check(report, gt, pred, thresholds):
    """The export agrees with the summary and with the tables it points into, and comes
    ordered by image, then row."""
    exported = report.matches.to_pydict()
    order = sorted(range(len(exported["pred_row"])),
                   key=lambda i: (exported["image_id"][i], exported["pred_row"][i]))
    assert order == list(range(len(order)))
    matches = by_row(report.matches)
    n_pred = len(pred["x"])
    assert matches["pred_row"] == list(range(n_pred))
    assert matches["image_id"] == list(np.asarray(pred["image_id"]))
    for t, d in enumerate(thresholds):
        rows, dists = matches[f"gt_row@{d!r}"], matches[f"dist@{d!r}"]
        matched = [(p, g, dist) for p, (g, dist) in enumerate(zip(rows, dists)) if g is not None]
        assert len(matched) == report.summary["micro"]["tp"][t]
        assert len({g for _, g, _ in matched}) == len(matched)  # one to one
        for p, g, dist in matched:
            assert matches["kept"][p]
            assert gt["image_id"][g] == pred["image_id"][p]
            if "class" in gt:
                assert gt["class"][g] == pred["class"][p]
            assert dist == np.sqrt((pred["x"][p] - gt["x"][g]) ** 2
                                   + (pred["y"][p] - gt["y"][g]) ** 2) <= d


@pytest.mark.parametrize("match", POLICIES)
@settings(max_examples=30, deadline=None)
@given(data=datasets())
def test_matches_agree_with_the_summary_and_the_tables(match, data):
    gt, pred, images, thresholds = data
    score_threshold = 0.6 if "score" in pred else None
    report = pointscore.evaluate(gt, pred, images, thresholds=thresholds, match=match,
                             score_threshold=score_threshold, device="cpu", matches=True)
    _check(report, gt, pred, thresholds)
    assert pointscore.evaluate(gt, pred, images, thresholds=thresholds, match=match,
                           score_threshold=score_threshold, device="cpu").matches is None


def test_radius_matches_are_in_radius_units():
    gt = {"image_id": [0, 0], "x": [0.0, 10.0], "y": [0.0, 0.0], "r": [2.0, 4.0]}
    pred = {"image_id": [0, 0], "x": [10.0, 3.0], "y": [3.0, 0.0]}
    report = by_row(pointscore.evaluate(gt, pred, thresholds=[1.0], radius="r", device="cpu",
                                        matches=True).matches)
    assert report["gt_row@1.0"] == [1, None]  # 3 > 1 * 2: the second finds nothing
    assert report["dist@1.0"] == [0.75, None]


def test_rows_are_the_tables_rows_whatever_their_order():
    gt = {"image_id": [2, 1, 2], "x": [0.0, 5.0, 9.0], "y": [0.0, 5.0, 9.0]}
    pred = {"image_id": [2, 2, 1, 3], "x": [9.0, 1.0, 5.0, 0.0], "y": [9.0, 0.0, 5.5, 0.0]}
    table = by_row(pointscore.evaluate(gt, pred, thresholds=[0.75, 2.0], device="cpu",
                                       matches=True).matches)
    assert table["gt_row@0.75"] == [2, None, 1, None]
    assert table["gt_row@2.0"] == [2, 0, 1, None]
    assert table["dist@2.0"] == [0.0, 1.0, 0.5, None]


def test_cli_writes_the_matches_file(tmp_path, capsys):
    gt = tmp_path / "gt.csv"
    gt.write_text("image_id,x,y\n1,0,0\n1,4,0\n")
    pred = tmp_path / "pred.csv"
    pred.write_text("image_id,x,y,score\n1,3,0,0.9\n1,0,1,0.8\n")
    out = tmp_path / "m.parquet"
    assert main(["evaluate", "--gt", str(gt), "--pred", str(pred), "--thresholds", "1.5",
                 "--matches", str(out), "--json", "-"]) == 0
    table = by_row(pq.read_table(out))
    assert table["gt_row@1.5"] == [1, 0] and table["dist@1.5"] == [1.0, 1.0]
    assert main(["evaluate", "--gt", str(gt), "--pred", str(pred), "--matches",
                 str(tmp_path / "missing" / "m.parquet")]) == 2
    counts = tmp_path / "counts.csv"
    counts.write_text("image_id,count\n1,2\n")
    capsys.readouterr()
    assert main(["evaluate", "--gt", str(gt), "--pred", str(counts), "--matches",
                 str(tmp_path / "c.parquet")]) == 2
    assert "no points to export matches of" in capsys.readouterr().err
    assert not (tmp_path / "c.parquet").exists()


@pytest.mark.parametrize("match", POLICIES)
def test_gpu_under_the_simulator_exports_the_same_matches(match):
    rng = np.random.default_rng(4)
    gt = {"image_id": rng.integers(0, 3, 40), "x": rng.integers(0, 9, 40) * 1.0,
          "y": rng.integers(0, 9, 40) * 1.0}
    pred = {"image_id": rng.integers(0, 3, 40), "x": rng.integers(0, 9, 40) * 1.0,
            "y": rng.integers(0, 9, 40) * 1.0, "score": rng.choice([0.2, 0.7], 40)}
    kwargs = dict(thresholds=[1.0, 2.0], match=match, matches=True)
    cpu = pointscore.evaluate(gt, pred, device="cpu", **kwargs).matches
    assert pointscore.evaluate(gt, pred, device="gpu", **kwargs).matches.equals(cpu)


def test_rows_of_a_nested_table_count_its_points():
    """In the nested layout (a list of points per image) a point's row is its place
    among the flattened points, image after image."""
    import pyarrow as pa
    points = pa.array([[{"x": 0.0, "y": 0.0}, {"x": 5.0, "y": 0.0}], [{"x": 1.0, "y": 1.0}]])
    pred = pa.table({"image_id": [1, 2], "points": points})
    gt = {"image_id": [1, 1, 2], "x": [0.0, 5.0, 1.0], "y": [0.0, 0.0, 1.0]}
    matches = pointscore.evaluate(gt, pred, thresholds=[0.5], matches=True,
                                  device="cpu").matches
    assert matches["pred_row"].to_pylist() == [0, 1, 2]
    assert matches["gt_row@0.5"].to_pylist() == [0, 1, 2]
