"""Warnings about likely mistakes (pointscore.advice): each one in the summary's
``warnings`` (options named as in Python, or by their flags on the command line), on
stderr, and an error with --strict; the same on every path."""
import itertools
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import pointscore
from pointscore.cli import main

RNG = np.random.default_rng(3)
# Crowd-like pixel data: 4 images of 1024 x 768 with 50 points each
IDS = np.repeat(np.arange(4), 50)
X, Y = RNG.uniform(0, 1024, IDS.size), RNG.uniform(0, 768, IDS.size)
GT = {"image_id": IDS, "x": X, "y": Y}
PRED = {"image_id": IDS, "x": X + 1.0, "y": Y, "score": RNG.random(IDS.size)}
IMAGES = {"image_id": np.arange(4), "width": np.full(4, 1024.0), "height": np.full(4, 768.0)}


@pytest.fixture
def files(tmp_path):
    paths = {}
    for name, table in (("gt", GT), ("pred", PRED), ("images", IMAGES)):
        paths[name] = str(tmp_path / f"{name}.parquet")
        pq.write_table(pa.table(table), paths[name])
    return paths


def warnings_of(**options):
    options = {"images": IMAGES, "device": "cpu", **options}
    gt, pred = options.pop("gt", GT), options.pop("pred", PRED)
    return pointscore.evaluate(gt, pred, **options).summary["warnings"]


def test_data_that_fits_its_options_has_no_warning():
    assert warnings_of(thresholds=[4, 8]) == []
    assert warnings_of(normalize="wh") == []


def test_fractions_on_pixels_warn_with_the_fix():
    [line] = warnings_of()  # the contract's defaults: 0.01..0.10 in the data's units
    assert "1/1000 of the ground truth's median image extent" in line
    assert "pass normalize wh, or thresholds in pixels such as thresholds 4,8" in line.lower()


def test_a_threshold_at_the_thousandth_of_the_extent_does_not_warn():
    extent = np.median([max(np.ptp(X[IDS == i]), np.ptp(Y[IDS == i])) for i in range(4)])
    assert warnings_of(thresholds=[extent / 1000]) == []
    assert len(warnings_of(thresholds=[extent / 1000 * 0.999])) == 1


@pytest.mark.parametrize("normalize", ["wh", "diag"])
def test_pixel_thresholds_on_normalized_distances_warn(normalize):
    [line] = warnings_of(normalize=normalize, thresholds=[4, 8])
    assert "half an image apart match" in line
    assert warnings_of(normalize=normalize, thresholds=[0.49, 8]) == []


def test_per_point_scales_never_warn_about_units():
    gt = {**GT, "sigma": np.full(IDS.size, 8.0)}
    assert warnings_of(gt=gt, radius="sigma", thresholds=[0.5, 1]) == []
    assert warnings_of(normalize="knn", thresholds=[0.001]) == []


@pytest.mark.parametrize("alias", ["confidence", "conf", "prob"])
def test_a_score_under_another_name_warns(alias):
    pred = {k: v for k, v in PRED.items() if k != "score"} | {alias: PRED["score"]}
    [line] = warnings_of(pred=pred, thresholds=[4])
    assert f"one named '{alias}'" in line and "rename it to 'score'" in line


def test_swapped_files_warn():
    gt = {**GT, "score": np.ones(IDS.size)}
    pred = {k: v for k, v in PRED.items() if k != "score"}
    [line] = warnings_of(gt=gt, pred=pred, thresholds=[4])
    assert "are the files swapped?" in line


def test_no_images_table_warns():
    [line] = warnings_of(images=None, thresholds=[4])
    assert line.startswith("no images table") and "pass images" in line


def test_the_command_line_names_flags_and_strict_makes_warnings_errors(files, tmp_path,
                                                                       capsys):
    argv = ["evaluate", "--device", "cpu", "--gt", files["gt"], "--pred", files["pred"],
            "--images", files["images"]]
    assert main([*argv, "--json", "-"]) == 0
    out, err = capsys.readouterr()
    [line] = json.loads(out)["warnings"]
    assert "Pass --normalize wh, or thresholds in pixels such as --thresholds 4,8" in line
    assert err == f"pointscore: warning: {line}\n"
    summary = tmp_path / "summary.json"
    assert main([*argv, "--strict", "--json", str(summary)]) == 2
    out, err = capsys.readouterr()
    assert err == f"pointscore: {line}\n" and not summary.exists()


@pytest.mark.parametrize("gt_in_memory", [False, True])
def test_every_path_warns_alike(gt_in_memory, files, tmp_path):
    # fractions on pixels, and the score under another name; the ground truth's extents
    # come from the checking pass over Parquet, or from the table in memory
    pred = tmp_path / "renamed.parquet"
    pq.write_table(pa.table(PRED).rename_columns(["image_id", "x", "y", "confidence"]), pred)
    gt = GT if gt_in_memory else files["gt"]
    expected = pointscore.evaluate(gt, pred, files["images"], device="cpu").summary
    streamed = pointscore.evaluate_stream(gt, pred, files["images"], device="cpu",
                                          shard_points=60)
    assert len(expected["warnings"]) == 2 and streamed.summary == expected


def test_coordinates_in_units_of_the_image_with_pixel_thresholds_warn():
    gt = {**GT, "x": X / 1024, "y": Y / 768}
    [line] = warnings_of(gt=gt, pred={**PRED, "x": gt["x"], "y": gt["y"]}, thresholds=[4, 8])
    assert "points half an image apart match" in line


def test_a_nested_ground_truth_lists_its_images_so_needs_no_images_table():
    point = pa.struct([("x", pa.float64()), ("y", pa.float64())])
    nested = pa.table({"image_id": [0, 1], "points": pa.array(
        [[{"x": 1.0, "y": 2.0}, {"x": 900.0, "y": 700.0}], []], pa.list_(point))})
    assert warnings_of(gt=nested, images=None, thresholds=[4]) == []


def test_strict_writes_no_row_before_refusing(files, capsys):
    # streamed, with the per-image rows to stdout: nothing may reach it
    argv = ["evaluate", "--device", "cpu", "--gt", files["gt"], "--pred", files["pred"],
            "--images", files["images"], "--shard-points", "60", "--per-image", "-"]
    assert main([*argv, "--strict"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1


def test_compare_names_the_submission_and_strict_refuses(files, capsys):
    argv = ["compare", "--device", "cpu", "--gt", files["gt"], "--pred", files["pred"],
            files["pred"], "--names", "a,b", "--images", files["images"], "--bootstrap", "0"]
    assert main([*argv, "--json", "-"]) == 0
    out, err = capsys.readouterr()
    lines = json.loads(out)["warnings"]
    assert [line[:5] for line in lines] == ["'a': ", "'b': "]
    assert err.splitlines() == [f"pointscore: warning: {line}" for line in lines]
    assert main([*argv, "--strict"]) == 4  # each submission invalid, its warning its message
    err = capsys.readouterr().err
    assert "invalid submission 'a': every threshold" in err and "--normalize wh" in err
    without_images = [a for a in argv if a not in ("--images", files["images"])]
    assert main([*without_images, "--json", "-"]) == 0
    assert json.loads(capsys.readouterr().out)["warnings"][0].startswith("no images table")


def test_bounding_boxes_merged_from_parts_equal_the_whole():
    from pointscore.extents import bounding_boxes, merge_boxes
    ids = pa.array(IDS)
    whole = bounding_boxes(ids, X, Y).sort_by("image_id")
    cut = [0, 37, 120, IDS.size]  # parts that split images
    parts = [bounding_boxes(ids[a:b], X[a:b], Y[a:b]) for a, b in itertools.pairwise(cut)]
    assert merge_boxes(parts).sort_by("image_id").equals(whole)
