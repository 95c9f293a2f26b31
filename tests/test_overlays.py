"""The HTML report's worst images drawn with their points (pointscore.overlays): markers
at the right places in the right colours over real image files, blank canvases, image
ids that could leave the image root, file-name patterns, every input layout, the
rescored matches equal to the run's, bounded size, and per-class PR panels."""
import base64
import io
import os
import re

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

import pointscore
from bench.data import crowd
from pointscore import InputError, overlay_drawing, overlays
from pointscore.cli import main
from pointscore.errors import shown
from pointscore.html_report import write_report
from pointscore.overlay_drawing import MARKERS, MAX_SIDE
from pointscore.overlay_matches import read_rows, rescore
from pointscore.overlays import Sources
from pointscore.report_figures import worst_order

PIL = pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

GREY = (128, 128, 128)
THRESHOLDS = [4.0, 8.0, 16.0]  # the middle one, 8, is drawn by default


def drawn_thumbnails(text):
    """(alt, decoded thumbnail, caption) of every overlay of a page."""
    found = re.findall(r'<img alt="([^"]*)" width=(\d+) height=(\d+) '
                       r'src="data:image/jpeg;base64,([^"]*)"><figcaption>(.*?)</figcaption>',
                       text)
    out = []
    for alt, width, height, data, caption in found:
        image = Image.open(io.BytesIO(base64.b64decode(data)))
        image.load()
        assert image.size == (int(width), int(height))
        out.append((alt, image.convert("RGB"), caption))
    return out


def has_colour(image, xy, rgb, radius, tolerance=40):
    """Whether a pixel within ``radius`` of ``xy`` has about the colour ``rgb``."""
    pixels = np.asarray(image).astype(int)
    x, y = (round(v) for v in xy)
    window = pixels[max(y - radius, 0):y + radius + 1, max(x - radius, 0):x + radius + 1]
    return bool((np.abs(window - np.array(rgb)).max(axis=2) <= tolerance).any())


def colour(kind):
    return MARKERS[kind].rgb


# One image of each kind of point, the worst by count error (7), and one without error (8).
GT = {"image_id": [7, 7, 7, 8], "x": [400.0, 1600.0, 2000.0, 50.0],
      "y": [400.0, 1200.0, 600.0, 50.0]}
PRED = {"image_id": [7, 7, 8], "x": [406.0, 1400.0, 50.0], "y": [400.0, 1000.0, 50.0],
        "score": [0.9, 0.8, 0.7]}
IMAGES = {"image_id": [7, 8], "width": [2560, 200], "height": [1920, 150]}


@pytest.fixture
def photos(tmp_path):
    root = tmp_path / "images"
    root.mkdir()
    Image.new("RGB", (2560, 1920), GREY).save(root / "7.jpg", quality=95)
    Image.new("RGB", (200, 150), GREY).save(root / "8.png")  # a PNG named by the pattern
    (root / "8.png").rename(root / "8.jpg")
    return root


def report_of(gt=GT, pred=PRED, images=IMAGES, **options):
    return pointscore.evaluate(gt, pred, images, thresholds=THRESHOLDS, device="cpu",
                               **options)


def test_markers_over_image_files_at_their_places_and_colours(photos, tmp_path):
    report = report_of()
    path = write_report(tmp_path / "r", {"m": report}, sources=Sources(GT, {"m": PRED}, IMAGES),
                        image_root=photos)
    text = open(path, encoding="utf-8").read()
    every = re.findall(r'src="data:image/(?:png|jpeg);base64,([^"]*)"', text)
    for data in every:  # every figure of the page decodes
        Image.open(io.BytesIO(base64.b64decode(data))).load()
    (alt7, big, caption7), (alt8, small, caption8) = drawn_thumbnails(text)
    assert (alt7, alt8) == ("image 7 of m with its points", "image 8 of m with its points")
    assert "7: true 3, predicted 2 (-1); at d=8: TP 1, FP 1, missed 2." in caption7
    assert "blank canvas" not in text[text.index("id=overlays"):]
    # 2560x1920 is drawn at 640x480, 200x150 enlarged to 320x240: markers stay legible
    assert big.size == (640, 480) and small.size == (320, 240)
    assert max(big.size) <= MAX_SIDE
    assert has_colour(big, (20, 20), GREY, 0, tolerance=6)  # the photo under the points
    r = overlay_drawing.marker_radius(big.size) + 2
    s = 0.25
    tp, matched, fp = (406 * s, 400 * s), (400 * s, 400 * s), (1400 * s, 1000 * s)
    missed = [(1600 * s, 1200 * s), (2000 * s, 600 * s)]
    assert has_colour(big, tp, colour("tp"), r) and has_colour(big, matched,
                                                                colour("matched_gt"), r)
    assert has_colour(big, fp, colour("fp"), r)
    assert all(has_colour(big, xy, colour("missed"), r) for xy in missed)
    # and no marker of another kind where there is none of it
    assert not has_colour(big, tp, colour("fp"), r) and not has_colour(big, fp, colour("tp"), r)
    assert not has_colour(big, missed[0], colour("tp"), r)
    assert not has_colour(big, (320, 20), colour("fp"), r)
    # image 8: one true positive, at the scale of the enlarged thumbnail
    assert has_colour(small, (50 * 1.6, 50 * 1.6), colour("tp"), r)
    assert "TP 1, FP 0, missed 0" in caption8


def test_overlay_threshold_chooses_the_matching_drawn(tmp_path):
    report = report_of()
    path = write_report(tmp_path / "r", {"m": report}, sources=Sources(GT, {"m": PRED}, IMAGES),
                        overlay_threshold=4)
    text = open(path, encoding="utf-8").read()
    (_, _, caption), _ = drawn_thumbnails(text)
    assert "at d=4: TP 0, FP 2, missed 3" in caption  # 6 px off: no match within 4
    with pytest.raises(InputError, match=r"overlay_threshold 5 is not one of the run's "
                                         r"thresholds \(4, 8, 16\)"):
        write_report(tmp_path / "s", {"m": report}, sources=Sources(GT, {"m": PRED}),
                     overlay_threshold=5)
    assert not (tmp_path / "s").exists()


def test_blank_canvas_of_the_images_size_when_the_file_is_missing(photos, tmp_path):
    os.unlink(photos / "7.jpg")
    report = report_of()
    text = open(write_report(tmp_path / "r", {"m": report}, image_root=photos,
                             sources=Sources(GT, {"m": PRED}, IMAGES)), encoding="utf-8").read()
    (_, blank, caption), (_, photo, _) = drawn_thumbnails(text)
    assert "7.jpg: no such file; drawn over a blank canvas." in caption
    assert "Blank canvas of 2560x1920 (its size in the images table)." in caption
    assert blank.size == (640, 480) and has_colour(blank, (20, 20), overlay_drawing.BLANK, 0, 6)
    assert has_colour(blank, (1400 / 4, 1000 / 4), colour("fp"), 9)
    assert has_colour(photo, (5, 5), GREY, 0, tolerance=6)


def test_blank_canvases_without_an_image_root(tmp_path):
    report = report_of()
    text = open(write_report(tmp_path / "r", {"m": report},
                             sources=Sources(GT, {"m": PRED}, IMAGES)), encoding="utf-8").read()
    assert "over a blank canvas of its size" in text
    (_, blank, caption), _ = drawn_thumbnails(text)
    assert blank.size == (640, 480) and "no such file" not in caption
    # no images table: the canvas spans the points
    report = report_of(images=None)
    text = open(write_report(tmp_path / "s", {"m": report}, sources=Sources(GT, {"m": PRED})),
                encoding="utf-8").read()
    (_, blank, caption), _ = drawn_thumbnails(text)
    assert "the points&#x27; extent" in caption
    assert blank.size == (640, round(640 * 1224 / 2040))  # 2000 x 1200, 2% more


@pytest.mark.parametrize("bad", ["../secret", "a/b", "x\\y", "..", "nul\0"])
def test_an_id_that_would_leave_the_root_is_refused(bad, tmp_path, capsys, monkeypatch):
    root = tmp_path / "images"
    root.mkdir()
    Image.new("RGB", (10, 10)).save(tmp_path / "secret.jpg")
    opened = []
    monkeypatch.setattr(Image, "open", lambda *args, **kw: opened.append(args))
    gt = pa.table({"image_id": [bad, bad], "x": [1.0, 2.0], "y": [1.0, 2.0]})
    pred = pa.table({"image_id": [bad], "x": [1.0], "y": [1.0], "score": [0.5]})
    pq.write_table(gt, tmp_path / "gt.parquet")
    pq.write_table(pred, tmp_path / "pred.parquet")
    code = main(["evaluate", "--gt", str(tmp_path / "gt.parquet"), "--pred",
                 str(tmp_path / "pred.parquet"), "--thresholds", "2", "--report",
                 str(tmp_path / "report"), "--image-root", str(root),
                 "--json", str(tmp_path / "s.json")])
    assert code == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if "image id" in line]
    assert len(lines) == 1 and "refused" in lines[0] and shown(bad) in lines[0]
    assert opened == [] and not (tmp_path / "report").exists()
    assert not (tmp_path / "s.json").exists()
    # without an image root no file is named: drawn over a blank canvas
    report = pointscore.evaluate(gt, pred, thresholds=[2.0], device="cpu")
    write_report(tmp_path / "blank", {"m": report}, sources=Sources(gt, {"m": pred}))
    assert opened == []


def test_a_link_out_of_the_root_is_refused(tmp_path, monkeypatch):
    root = tmp_path / "images"
    root.mkdir()
    Image.new("RGB", (10, 10)).save(tmp_path / "secret.jpg")
    os.symlink(tmp_path / "secret.jpg", root / "7.jpg")
    opened = []
    monkeypatch.setattr(Image, "open", lambda *args, **kw: opened.append(args))
    with pytest.raises(InputError) as info:
        write_report(tmp_path / "r", {"m": report_of()}, image_root=root,
                     sources=Sources(GT, {"m": PRED}, IMAGES))
    assert info.value.problems == ["image id 7: its file '7.jpg' is outside image_root; refused"]
    assert opened == [] and not (tmp_path / "r").exists()


def test_zero_padded_file_names(tmp_path):
    root = tmp_path / "nwpu"
    root.mkdir()
    colours = {7: (200, 60, 60), 8: (60, 60, 200)}
    for image_id, rgb in colours.items():
        Image.new("RGB", (400, 300), rgb).save(root / f"{image_id:04d}.jpg", quality=95)
    for name, table in (("gt", GT), ("pred", PRED)):
        pq.write_table(pa.table(table), tmp_path / f"{name}.parquet")
    code = main(["evaluate", "--gt", str(tmp_path / "gt.parquet"), "--pred",
                 str(tmp_path / "pred.parquet"), "--thresholds", "4,8,16", "--report",
                 str(tmp_path / "report"), "--image-root", str(root), "--image-pattern",
                 "{image_id:04d}.jpg"])
    assert code == 0
    text = (tmp_path / "report" / "index.html").read_text()
    drawn = drawn_thumbnails(text)
    assert [alt for alt, _, _ in drawn] == ["image 7 of pred with its points",
                                            "image 8 of pred with its points"]
    for (_, image, caption), rgb in zip(drawn, colours.values()):
        assert has_colour(image, (image.size[0] - 3, image.size[1] - 3), rgb, 0, 12)
        assert "no such file" not in caption
    # a pattern naming another field, or used without --image-root, is a usage error;
    # so are the overlay flags without --report
    inputs = ["--gt", str(tmp_path / "gt.parquet"), "--pred", str(tmp_path / "pred.parquet")]
    report = ["--report", str(tmp_path / "other")]
    for flags in ([*report, "--image-root", str(root), "--image-pattern", "{image_id.real}.jpg"],
                  [*report, "--image-pattern", "{image_id:04d}.jpg"],
                  ["--overlay-threshold", "8"], ["--image-root", str(root)]):
        assert main(["evaluate", *inputs, *flags]) == 2
    assert not (tmp_path / "other").exists()


def test_unreadable_and_oversized_files_are_drawn_blank_with_a_note(photos, tmp_path,
                                                                     monkeypatch):
    (photos / "7.jpg").write_bytes(b"not an image at all")
    with monkeypatch.context() as patched:
        patched.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)  # 8.jpg: 200x150 is above it
        path = write_report(tmp_path / "r", {"m": report_of()}, image_root=photos,
                            sources=Sources(GT, {"m": PRED}, IMAGES))
    text = open(path, encoding="utf-8").read()
    (_, seven, caption7), (_, eight, caption8) = drawn_thumbnails(text)
    assert "7.jpg: cannot decode it" in caption7 and "blank canvas" in caption7
    assert "8.jpg: refused" in caption8 and "decompression bomb" in caption8.lower()
    assert has_colour(eight, (3, 3), overlay_drawing.BLANK, 0, 6)


def test_count_only_predictions_have_no_overlays(tmp_path):
    counts = {"image_id": [7, 8], "count": [2.5, 1.0]}
    report = pointscore.evaluate(GT, counts, thresholds=[8.0], device="cpu")
    text = open(write_report(tmp_path / "r", {"c": report}, sources=Sources(GT, {"c": counts})),
                encoding="utf-8").read()
    assert "c: count-only predictions, no points to draw." in text
    assert drawn_thumbnails(text) == []


# ---- the rescored matches are the run's --------------------------------------------------

@pytest.fixture(scope="module")
def crowded():
    gt, pred, images = crowd(n_images=30, target_gt=1500, max_per_image=200, seed=5)
    return gt, pred, images


@pytest.mark.parametrize("options", [dict(normalize="wh", thresholds=[0.005, 0.01, 0.02]),
                                     dict(thresholds=[4.0, 8.0], score_threshold=0.3)])
def test_rescored_images_match_exactly_as_the_run_did(crowded, options):
    gt, pred, images = crowded
    run = pointscore.evaluate(gt, pred, images, device="cpu", matches=True, **options)
    ids = run.images.column("image_id").take(pa.array(worst_order(
        run.images["gt_count"].to_numpy(), run.images["pred_count"].to_numpy(), 5))).to_pylist()
    t = len(options["thresholds"]) - 1
    drawn = rescore(run, pred, read_rows(gt, "gt", ids), read_rows(images, "images", ids),
                    ids, t)
    d = float(options["thresholds"][t])
    matches = run.matches.to_pandas()
    for image_id in ids:
        rows = matches[(matches.image_id == image_id) & matches.kept].sort_values("pred_row")
        hit = rows[f"gt_row@{d!r}"].notna().to_numpy()
        assert drawn[image_id].pred_matched.tolist() == hit.tolist()
        assert np.array_equal(drawn[image_id].pred_xy[:, 0], pred["x"][rows.pred_row])
        gt_rows = np.flatnonzero(gt["image_id"] == image_id)
        matched = np.isin(gt_rows, rows[f"gt_row@{d!r}"].dropna().astype(int))
        assert drawn[image_id].gt_matched.tolist() == matched.tolist()
        assert not drawn[image_id].counts_differ


def nested(table):
    """The long layout as one row per image with a list of points."""
    ids = table["image_id"]
    order = np.argsort(ids, kind="stable")
    points = [dict(x=float(x), y=float(y), score=float(s), **{"class": int(c)})
              for x, y, s, c in zip(*(table[k][order] for k in ("x", "y", "score", "class")))]
    unique, starts = np.unique(ids[order], return_index=True)
    bounds = list(starts[1:]) + [len(points)]
    return pa.table({"image_id": unique,
                     "points": [points[a:b] for a, b in zip(starts, bounds)]})


def test_every_input_layout_draws_the_same(crowded, tmp_path):
    gt, pred, images = crowded
    report = pointscore.evaluate(gt, pred, images, normalize="wh", device="cpu",
                                 thresholds=[0.01, 0.02])
    layouts = {"memory": pred, "table": pa.table(pred)}
    pq.write_table(pa.table(pred), tmp_path / "pred.parquet", row_group_size=200)
    layouts["parquet"] = str(tmp_path / "pred.parquet")
    pq.write_table(nested(pred), tmp_path / "nested.parquet", row_group_size=4)
    layouts["nested"] = str(tmp_path / "nested.parquet")
    pq.write_to_dataset(pa.table(pred), tmp_path / "hive", partition_cols=["image_id"])
    layouts["hive"] = str(tmp_path / "hive")
    pacsv.write_csv(pa.table(pred), tmp_path / "pred.csv")
    layouts["csv"] = str(tmp_path / "pred.csv")
    captions = {}
    (tmp_path / "reports").mkdir()
    for name, source in layouts.items():
        text = open(write_report(tmp_path / "reports" / name, {"m": report}, worst=3,
                                 sources=Sources(gt, {"m": source}, images)),
                    encoding="utf-8").read()
        captions[name] = [caption for _, _, caption in drawn_thumbnails(text)]
    assert len(captions["memory"]) == 3
    assert all(found == captions["memory"] for found in captions.values()), captions
    assert not any("differ" in c for c in captions["memory"])


def test_compare_draws_each_submissions_own_worst(crowded, tmp_path):
    gt, pred, images = crowded
    paths = {}
    rng = np.random.default_rng(0)
    keep = rng.random(pred["x"].size) > 0.3
    worse = {k: v[keep] for k, v in pred.items()}
    for name, table in (("gt", gt), ("a", pred), ("b", worse), ("images", images)):
        paths[name] = str(tmp_path / f"{name}.parquet")
        pq.write_table(pa.table(table), paths[name])
    assert main(["compare", "--gt", paths["gt"], "--pred", paths["a"], paths["b"], "--images",
                 paths["images"], "--normalize", "wh", "--thresholds", "0.01,0.02",
                 "--bootstrap", "0", "--report", str(tmp_path / "r")]) == 0
    text = (tmp_path / "r" / "index.html").read_text()
    drawn = drawn_thumbnails(text)
    worst_tables = text[text.index("id=worst"):text.index("id=overlays")]
    for name in ("a", "b"):
        table = worst_tables[worst_tables.index(f"<h3>{name}</h3>"):]
        listed = re.findall(r"<tr><td>([^<]*)</td>", table)[:10]
        assert [alt.split()[1] for alt, _, _ in drawn if alt.endswith(f"of {name} with its "
                                                                      "points")] == listed


# ---- bounds ------------------------------------------------------------------------------

def test_a_report_of_2000_images_stays_small(tmp_path):
    gt, pred, images = crowd(n_images=2000, target_gt=60_000, max_per_image=800, seed=2)
    report = pointscore.evaluate(gt, pred, images, normalize="wh", device="cpu",
                                 thresholds=[0.01, 0.02])
    path = write_report(tmp_path / "r", {"m": report}, sources=Sources(gt, {"m": pred}, images))
    text = open(path, encoding="utf-8").read()
    drawn = drawn_thumbnails(text)
    assert len(drawn) == 10  # the worst listed, no more
    assert all(max(image.size) <= MAX_SIDE for _, image, _ in drawn)
    assert len(text) < 1_500_000, len(text)


def test_many_submissions_share_a_bounded_number_of_overlays(tmp_path, monkeypatch):
    monkeypatch.setattr(overlays, "MAX_OVERLAYS", 3)
    report = report_of()
    reports = {f"s{i}": report for i in range(5)}
    text = open(write_report(tmp_path / "r", reports, worst=10,
                             sources=Sources(GT, {n: PRED for n in reports}, IMAGES)),
                encoding="utf-8").read()
    assert [alt for alt, _, _ in drawn_thumbnails(text)] == [
        f"image 7 of s{i} with its points" for i in range(3)]  # one each, 3 in all
    assert "s3, s4: not drawn (at most 3 overlays in a report)." in text


# ---- per-class PR panels -----------------------------------------------------------------

def test_per_class_pr_panels(tmp_path):
    gt, pred, images = crowd(n_images=8, target_gt=600, max_per_image=200, n_classes=3, seed=4)
    report = pointscore.evaluate(gt, pred, images, normalize="wh", device="cpu",
                                 thresholds=[0.01, 0.02, 0.04])
    text = open(write_report(tmp_path / "r", {"m": report}), encoding="utf-8").read()
    assert "<h3 id=pr-classes>Per class at d=0.02</h3>" in text
    assert 'alt="precision-recall curves per class at d=0.02"' in text
    assert 'data-figures="5"' in text and "classes with ground truth drawn" not in text
    chosen = open(write_report(tmp_path / "s", {"m": report}, overlay_threshold=0.04),
                  encoding="utf-8").read()
    assert "<h3 id=pr-classes>Per class at d=0.04</h3>" in chosen

    gt, pred, images = crowd(n_images=8, target_gt=600, max_per_image=200, n_classes=14, seed=4)
    many = pointscore.evaluate(gt, pred, images, normalize="wh", device="cpu",
                               thresholds=[0.02])
    text = open(write_report(tmp_path / "t", {"m": many}), encoding="utf-8").read()
    with_gt = int((many.state.gt_points > 0).sum())
    assert with_gt > 12 and f"12 of {with_gt} classes with ground truth drawn" in text
    single = open(write_report(tmp_path / "u", {"m": report_of()}), encoding="utf-8").read()
    assert "pr-classes" not in single
