"""The HTML report (pointscore.html_report): rendered by headless chromium (overlays of
the worst images too), self-contained, streamed reports without per-image tables,
ranking with and without `pointscore compare`, atomic writing, and the message when
matplotlib is missing. tests/test_overlays.py tests the overlays themselves."""
import dataclasses
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import pointscore
from bench.data import crowd
from pointscore import InputError, html_report
from pointscore.cli import main
from pointscore.cli.parsers import flag
from pointscore.html_report import write_report
from pointscore.overlays import Sources

HEADINGS = ["Configuration", "Ranking", "Summary", "Precision-recall curves",
            "Precision, recall and F1 against d", "Predicted against true counts",
            "Count error against density", "Worst images"]
# PR curves, per-class PR curves (two classes), P/R/F1 against d, count scatter, error
# against density
FIGURES = 5


@pytest.fixture(scope="module")
def reports():
    """Two submissions on one small two-class crowd: B misses a quarter of A's points
    and is less precise."""
    gt, pred, images = crowd(n_images=12, target_gt=400, max_per_image=100, n_classes=2,
                             seed=1)
    rng = np.random.default_rng(2)
    keep = rng.random(pred["x"].size) > 0.25
    worse = {key: value[keep] for key, value in pred.items()}
    worse["x"] = worse["x"] + rng.normal(0, 4, keep.sum())
    return {name: pointscore.evaluate(gt, p, images, normalize="wh", device="cpu")
            for name, p in (("model-a", pred), ("model-b", worse))}


@pytest.fixture(scope="module")
def page(reports, tmp_path_factory):
    directory = tmp_path_factory.mktemp("out") / "report"
    path = write_report(directory, reports)
    return path, open(path, encoding="utf-8").read()


def headings(text):
    return re.findall(r"<h2[^>]*>([^<]*)</h2>", text)


# ---- in a browser ------------------------------------------------------------------------

def chromium(tmp_path, *args):
    binary = shutil.which("chromium")
    if binary is None:
        if os.environ.get("POINTSCORE_REQUIRE_BROWSER") == "1":
            pytest.fail("chromium is not installed and POINTSCORE_REQUIRE_BROWSER=1")
        pytest.skip("chromium is not installed")
    # virtual time lets the load handler run before the DOM is dumped
    return subprocess.run(
        [binary, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,4000",
         "--virtual-time-budget=5000", f"--user-data-dir={tmp_path / 'profile'}", *args],
        capture_output=True, text=True, timeout=120, check=True).stdout


def test_browser_decodes_every_figure_and_draws_the_page(page, tmp_path):
    path, text = page
    url = "file://" + os.path.abspath(path)
    dom = chromium(tmp_path, "--dump-dom", url)
    body = re.search(r"<body[^>]*>", dom).group(0)
    assert re.search(r'data-figures="(\d+)"', body).group(1) == str(FIGURES)
    assert re.search(r'data-figures-loaded="(\d+)"', body).group(1) == str(FIGURES)
    assert headings(dom) == HEADINGS
    # config, ranking, summary, per-threshold and worst images for each submission
    assert dom.count("<table>") == 3 + 2 * 2

    shot = tmp_path / "shot.png"
    chromium(tmp_path, f"--screenshot={shot}", url)
    from matplotlib.image import imread
    pixels = imread(shot)[..., :3]
    assert pixels.shape[:2] == (4000, 1280)
    assert pixels.std() > 0.05                          # not one flat colour
    assert (pixels.min(axis=2) < 0.9).mean() > 0.02     # and not nearly all white


def test_browser_decodes_every_overlay(tmp_path):
    """A report with the worst images drawn over real files (PNG and JPEG) and over a
    blank canvas: every <img> the page holds has decoded (naturalWidth > 0)."""
    from PIL import Image
    gt, pred, images = crowd(n_images=5, target_gt=200, max_per_image=80, seed=3)
    root = tmp_path / "images"
    root.mkdir()
    ids = images["image_id"].tolist()
    for i, (image_id, width, height) in enumerate(zip(ids[:-1], images["width"],
                                                      images["height"])):
        # the last image has no file: a blank canvas
        Image.new("RGB", (int(width), int(height)), (90 + 30 * i, 120, 150)).save(
            root / f"{image_id}.{'png' if i % 2 else 'jpg'}")
        if i % 2:  # the pattern names .jpg: a PNG under that name decodes too
            (root / f"{image_id}.png").rename(root / f"{image_id}.jpg")
    report = pointscore.evaluate(gt, pred, images, normalize="wh", thresholds=[0.01, 0.02],
                                 device="cpu")
    path = write_report(tmp_path / "report", {"model": report},
                        sources=Sources(gt, {"model": pred}, images), image_root=root)
    text = open(path, encoding="utf-8").read()
    overlays = text.count('src="data:image/jpeg;base64,')
    assert overlays == len(ids)
    dom = chromium(tmp_path, "--dump-dom", "file://" + os.path.abspath(path))
    body = re.search(r"<body[^>]*>", dom).group(0)
    total = FIGURES - 1 + overlays  # one class: no per-class figure
    assert re.search(r'data-figures="(\d+)"', body).group(1) == str(total)
    assert re.search(r'data-figures-loaded="(\d+)"', body).group(1) == str(total)
    assert headings(dom) == HEADINGS + ["Worst images drawn"]


# ---- the page itself ---------------------------------------------------------------------

def test_page_is_self_contained(page):
    _, text = page
    assert not re.search(r"https?://", text)
    assert "<link" not in text and "<script src" not in text
    sources = re.findall(r'<img [^>]*src="([^"]*)"', text)
    assert len(sources) == FIGURES
    assert all(src.startswith("data:image/png;base64,") for src in sources)


def test_worst_images_come_largest_error_first(page, reports):
    _, text = page
    worst = text[text.index("Worst images"):]
    first_row = re.search(r"<tbody>\s*<tr>(.*?)</tr>", worst).group(1)
    image, true, pred, error = re.findall(r"<td[^>]*>([^<]*)</td>", first_row)[:4]
    table = reports["model-a"].per_image.group_by("image_id") \
        .aggregate([("gt_count", "sum"), ("pred_count", "sum")])
    errors = np.abs(table["pred_count_sum"].to_numpy() - table["gt_count_sum"].to_numpy())
    assert abs(int(error)) == errors.max() == abs(int(pred) - int(true))


def test_report_of_runs_that_wrote_their_per_image_rows_to_files(reports, tmp_path):
    # A streamed run keeps its per-image rows in a file, and its images summed in memory.
    streamed = {name: dataclasses.replace(r, per_image=None) for name, r in reports.items()}
    text = open(write_report(tmp_path / "all", streamed), encoding="utf-8").read()
    assert f'data-figures="{FIGURES}"' in text and "Worst images" in text


def test_without_scores_the_pr_curves_are_left_out(tmp_path):
    gt = {"image_id": np.array([1, 1, 2]), "x": np.array([0.0, 5.0, 1.0]),
          "y": np.array([0.0, 5.0, 1.0])}
    pred = {"image_id": np.array([1, 2, 2]), "x": np.array([0.5, 1.0, 9.0]),
            "y": np.array([0.0, 1.0, 9.0])}
    report = pointscore.evaluate(gt, pred, thresholds=[1, 2], device="cpu")
    text = open(write_report(tmp_path / "r", {"plain": report}), encoding="utf-8").read()
    assert "No submission has scores" in text
    assert 'data-figures="3"' in text


def test_ranking_by_map_then_name(reports, tmp_path):
    tied = {"b": reports["model-b"], "z": reports["model-a"], "a": reports["model-a"]}
    text = open(write_report(tmp_path / "r", tied, worst=1), encoding="utf-8").read()
    ranking = text[text.index("id=ranking"):text.index("id=summary")]
    assert re.findall(r"<tr><td>\d+</td><td>([^<]*)</td>", ranking) == ["a", "z", "b"]


def test_ranking_from_comparison_shows_intervals_and_p_values(reports, tmp_path):
    n_t = len(reports["model-a"].summary["config"]["thresholds"])
    comparison = {
        "config": {"resamples": 200, "level": 0.95, "seed": 0},
        "submissions": {
            "model-b": {"intervals": {"map": [0.6, 0.7], "mae": [9.5, 11.25],
                                      "rmse": [10.0, 13.0], "f1": [[0.75, 0.85]] * n_t}},
            "model-a": {"intervals": {"map": None, "mae": [1.0, 3.0], "rmse": [2.0, 3.0],
                                      "f1": [[0.9, 0.95]] * n_t}}},
        # deliberately not the mAP order: the comparison's ranking is shown as it is
        "ranking": [
            {"rank": 1, "name": "model-b", "map": 0.6835, "mae": 10.3, "rmse": 11.9,
             "f1": [0.8] * n_t,
             "p_beats_next": {"map": 0.975, "mae": 0.125, "rmse": 0.5, "f1": [0.625] * n_t}},
            {"rank": 2, "name": "model-a", "map": 0.9, "mae": 2.0, "rmse": 2.5,
             "f1": [0.92] * n_t, "p_beats_next": None}]}
    text = open(write_report(tmp_path / "r", reports, comparison), encoding="utf-8").read()
    ranking = text[text.index("id=ranking"):text.index("id=summary")]
    assert re.findall(r"<tr><td>\d+</td><td>([^<]*)</td>", ranking) == ["model-b", "model-a"]
    for cell in ("0.6835 [0.6000, 0.7000]", "10.3000 [9.5000, 11.2500]",
                 "0.8000 [0.7500, 0.8500]", "0.975", "0.125", "0.625", ">0.9000<"):
        assert cell in ranking
    assert "resamples" in text


# ---- writing -----------------------------------------------------------------------------

@pytest.fixture
def quick(monkeypatch):
    """Writing tests need no figures: a fixed page."""
    monkeypatch.setattr(html_report, "_page", lambda *args: "<p>new</p>")


def test_failed_write_leaves_nothing(quick, reports, tmp_path, monkeypatch):
    def fail(*args):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(html_report.os, "rename", fail)
    with pytest.raises(InputError, match="cannot write: No space left on device"):
        write_report(tmp_path / "report", reports)
    assert os.listdir(tmp_path) == []


def test_existing_report_is_replaced_only_on_success(quick, reports, tmp_path, monkeypatch):
    target = tmp_path / "report"
    target.mkdir()
    (target / "index.html").write_text("old")
    rename = os.rename
    calls = []

    def second_rename_fails(src, dst):  # the new report into place, after the old moved aside
        calls.append(dst)
        if len(calls) == 2:
            raise OSError(5, "Input/output error")
        rename(src, dst)
    monkeypatch.setattr(html_report.os, "rename", second_rename_fails)
    with pytest.raises(InputError, match="cannot write"):
        write_report(target, reports)
    assert os.listdir(tmp_path) == ["report"] and (target / "index.html").read_text() == "old"

    monkeypatch.setattr(html_report.os, "rename", rename)
    write_report(target, reports)
    assert os.listdir(tmp_path) == ["report"] and (target / "index.html").read_text() == \
        "<p>new</p>"


@pytest.mark.parametrize("setup, message", [
    (lambda d: None, "does not exist"),
    (lambda d: d.parent.mkdir() or d.write_text("x"), "exists and is not a directory"),
    (lambda d: d.mkdir(parents=True) or (d / "data.csv").write_text("x"),
     "holds other files than a report"),
])
def test_unusable_directory_is_an_input_error(quick, reports, tmp_path, setup, message):
    target = tmp_path / "parent" / "report"
    setup(target)
    with pytest.raises(InputError, match=message):
        write_report(target, reports)


def test_missing_matplotlib_is_an_input_error(reports, tmp_path, monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # also when never imported
    with pytest.raises(InputError) as info:
        write_report(tmp_path / "report", reports)
    assert str(info.value) == "report needs matplotlib: pip install 'pointscore[plot]'"
    assert info.value.lines(flag) == ["--report needs matplotlib: pip install 'pointscore[plot]'"]
    assert not (tmp_path / "report").exists()


def test_command_line_writes_reports_for_evaluate_and_compare(tmp_path, capsys):
    gt, pred, _ = crowd(n_images=6, target_gt=300, max_per_image=100, seed=1)
    paths = {}
    for name, table in (("gt", gt), ("a", pred), ("b", {**pred, "x": pred["x"] + 3.0})):
        paths[name] = str(tmp_path / f"{name}.parquet")
        pq.write_table(pa.table(table), paths[name])
    assert main(["evaluate", "--gt", paths["gt"], "--pred", paths["a"], "--thresholds", "8",
                 "--report", str(tmp_path / "one")]) == 0
    assert "<h2 id=ranking>Ranking</h2>" in (tmp_path / "one" / "index.html").read_text()
    assert main(["compare", "--gt", paths["gt"], "--pred", paths["a"], paths["b"],
                 "--thresholds", "8", "--bootstrap", "50", "--report",
                 str(tmp_path / "two")]) == 0
    text = (tmp_path / "two" / "index.html").read_text()
    assert ">a<" in text and ">b<" in text
    (tmp_path / "file").write_text("not a directory")
    assert main(["evaluate", "--gt", paths["gt"], "--pred", paths["a"], "--report",
                 str(tmp_path / "file"), "--json", str(tmp_path / "s.json")]) == 2
    assert not (tmp_path / "s.json").exists()


def test_count_only_predictions_have_a_report(tmp_path):
    gt = {"image_id": [1, 1, 2], "x": [0.0, 1.0, 2.0], "y": [0.0, 0.0, 0.0]}
    counts = pointscore.evaluate(gt, {"image_id": [1, 2], "count": [2.5, 1.0]}, thresholds=[1.0])
    points = pointscore.evaluate(gt, {"image_id": [1, 2], "x": [0.0, 2.0], "y": [0.0, 0.0],
                                  "score": [0.9, 0.5]}, thresholds=[1.0])
    text = open(write_report(tmp_path / "r", {"counts": counts, "points": points})).read()
    assert "<td class=n>+0.5</td>" in text and "<td class=n>2.5</td>" in text
    # No empty panels or tables of theirs: one PR panel, P/R/F1 lines and per-threshold
    # table for the points alone, and a note naming the submission without curves.
    assert 'data-figures="4"' in text
    assert "Without scores, so without curves: counts." in text
    tables = text[text.index("<h2 id=summary>"):text.index("<h2 id=pr>")]
    assert "<h3>points</h3>" in tables and "<h3>counts</h3>" not in tables
    alone = open(write_report(tmp_path / "c", {"counts": counts})).read()
    assert 'data-figures="2"' in alone  # the counts' scatter and error against density
    assert "precision, recall and F1 are undefined" in alone
