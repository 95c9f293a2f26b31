"""--protocol against each benchmark's own computation.

Each protocol is run from data in its benchmark's own file format (NWPU-Crowd's txt,
UCF-QNRF's and ShanghaiTech's .mat with FIDTM's point files, JHU-Crowd++'s gt folder
and image labels, P2PNet's ShanghaiTech .mat with scored points), converted with
``pointscore convert`` and scored with ``pointscore evaluate --protocol``; the
expected table is computed here from the files themselves, as the published scripts
compute it (scipy's maximum bipartite matching, the scripts' 1e-20 guards), never by
pointscore.

The generated crowds place predictions so that the matchings are unique where the
scripts' own choice of a maximum matching would show (NWPU-Crowd's per-level recall):
ground truth on a grid, at most one prediction near each point.
"""
import json
import math

import numpy as np
import pytest
import reference
import scipy.io
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import maximum_bipartite_matching
from scipy.spatial import distance_matrix

import pointscore
import pointscore.compare
from pointscore.cli import main

EPS = 1e-20


def grid(n, spacing):
    """n ground-truth points on a square grid, whole pixels."""
    side = max(math.ceil(math.sqrt(n)), 1)
    k = np.arange(n)
    return np.column_stack([(k % side + 1) * spacing, (k // side + 1) * spacing]).astype(float)


def crowd(rng, counts, spacing=40):
    """Per image: ground truth on a grid, sigma_s (2..6 px), sigma_l (8..15 px) and a
    level (0..5) per point, and predictions: per ground-truth point none, one within
    sigma_s (on it, or 1 px off in x and y), one between sigma_s and sigma_l, or one
    beyond sigma_l (at most 19 px off, nearer no other point than spacing - 19), and
    false positives at cell centres."""
    images = []
    for n in counts:
        gt = grid(n, spacing)
        sigma_s = rng.integers(2, 7, n).astype(float)
        sigma_l = rng.integers(8, 16, n).astype(float)
        level = rng.integers(0, 6, n)
        pred = []
        for (x, y), s, big in zip(gt, sigma_s, sigma_l):
            kind = rng.integers(0, 5)
            if kind == 4:
                pred.append((x, y))
            elif kind == 1:
                pred.append((x + 1, y + 1))                              # within sigma_s
            elif kind == 2:
                pred.append((x + rng.integers(int(s) + 1, int(big) + 1), y))  # within sigma_l
            elif kind == 3:
                pred.append((x, y + rng.integers(int(big) + 1, 20)))    # beyond sigma_l
        for x, y in gt[:rng.integers(0, 3)]:
            pred.append((x + spacing / 2, y + spacing / 2))                 # false positives
        images.append({"gt": gt, "sigma_s": sigma_s, "sigma_l": sigma_l, "level": level,
                       "pred": np.array(pred, float).reshape(-1, 2)})
    return images


def max_matching(pred, gt, radius):
    """The matched ground truth of a maximum matching of the pairs within each gt's
    radius (the scripts' dist <= sigma), as scipy finds it."""
    if not len(pred) or not len(gt):
        return np.zeros(0, np.int64)
    within = distance_matrix(pred, gt) <= radius[None, :]
    matched = maximum_bipartite_matching(csr_matrix(within), perm_type="column")
    return matched[matched >= 0]


def unique_matching(pred, gt, radius):
    """Whether every maximum matching matches the same ground truth: each prediction
    and each point has at most one partner within reach."""
    if not len(pred) or not len(gt):
        return True
    within = distance_matrix(pred, gt) <= radius[None, :]
    return within.sum(0).max() <= 1 and within.sum(1).max() <= 1


def rates(tp, fp, fn):
    """P, R, F1 as the scripts compute them (F1 None where they divide 0 by 0)."""
    precision, recall = tp / (tp + fp + EPS), tp / (tp + fn + EPS)
    return {"precision": precision, "recall": recall,
            "f1": 2 * precision * recall / (precision + recall) if tp else None}


def counting(true, found):
    errors = [f - t for t, f in zip(true, found)]
    return {"mae": math.fsum(abs(e) for e in errors) / len(errors),
            "mse": math.sqrt(math.fsum(e * e for e in errors) / len(errors))}


def scored(capsys, gt, pred, images, protocol):
    """The JSON summary ``pointscore evaluate --protocol`` prints for the files."""
    capsys.readouterr()
    assert main(["evaluate", "--device", "cpu", "--json", "-", "--gt", str(gt),
                 "--pred", str(pred), "--images", str(images), "--protocol", protocol]) == 0
    return json.loads(capsys.readouterr().out)


def convert(*argv):
    assert main(["convert", *map(str, argv)]) == 0


# -- NWPU-Crowd ------------------------------------------------------------------------------

def write_nwpu(path, images, role, first_id):
    """NWPU-Crowd's localisation txt: 'id count' then x y sigma_s sigma_l level per
    point (ground truth) or x y (predictions), whole numbers."""
    lines = []
    for k, image in enumerate(images):
        if role == "gt":
            values = [f"{x:.0f} {y:.0f} {s:.0f} {big:.0f} {v}" for (x, y), s, big, v in zip(
                image["gt"], image["sigma_s"], image["sigma_l"], image["level"])]
        else:
            values = [f"{x:.0f} {y:.0f}" for x, y in image[role]]
        lines.append(" ".join([str(first_id + k), str(len(values)), *values]))
    path.write_text("\n".join(lines) + "\n")


def nwpu_expected(images, luminance):
    """NWPU-Crowd's eval.py, from the generated points: TP/FP/FN and TP per level at
    sigma_s and sigma_l (6 levels), P/R/F1 with its guards, AR per level and their
    mean; MAE, MSE, NAE; MAE per scene level (S0: 0, S1: (0, 100], ..., S4: > 5000)
    and per luminance label, and their means."""
    out = {}
    for name in ("sigma_s", "sigma_l"):
        tp = fp = fn = 0
        tp_c, gt_c = np.zeros(6), np.zeros(6)
        for image in images:
            assert unique_matching(image["pred"], image["gt"], image[name])
            matched = max_matching(image["pred"], image["gt"], image[name])
            tp += matched.size
            fp += len(image["pred"]) - matched.size
            fn += len(image["gt"]) - matched.size
            np.add.at(tp_c, image["level"][matched], 1)
            np.add.at(gt_c, image["level"], 1)
        recall_c = tp_c / (gt_c + EPS)
        out[name] = {**rates(tp, fp, fn),
                     "level_recall": {str(v): float(r) for v, r in enumerate(recall_c)},
                     "level_recall_mean": float(recall_c.mean())}
    true = [len(image["gt"]) for image in images]
    found = [len(image["pred"]) for image in images]
    out.update(counting(true, found))
    out["nae"] = math.fsum(abs(f - t) / t for t, f in zip(true, found) if t) / \
        sum(1 for t in true if t)
    scene = np.searchsorted([0, 100, 500, 5000], true, side="left")
    out["scene_mae"] = {f"S{b}": (counting([t for t, s in zip(true, scene) if s == b],
                                           [f for f, s in zip(found, scene) if s == b])["mae"]
                                  if b in scene else None) for b in range(5)}
    out["scene_mae_mean"] = float(np.mean([v for v in out["scene_mae"].values()
                                           if v is not None]))
    out["luminance_mae"] = {
        str(label): counting([t for t, lum in zip(true, luminance) if lum == label],
                             [f for f, lum in zip(found, luminance) if lum == label])["mae"]
        for label in sorted(set(luminance))}
    out["luminance_mae_mean"] = float(np.mean(list(out["luminance_mae"].values())))
    return out


def test_nwpu_from_its_txt_files(tmp_path, capsys):
    rng = np.random.default_rng(7)
    images = crowd(rng, [0, 3, 25, 144, 60, 9, 1])
    luminance = [0, 1, 2, 0, 1, 2, 2]
    write_nwpu(tmp_path / "val_gt_loc.txt", images, "gt", 3098)
    write_nwpu(tmp_path / "loc_pred.txt", images, "pred", 3098)
    convert("--from", "nwpu-txt", "--role", "gt", tmp_path / "val_gt_loc.txt",
            "--out", tmp_path / "gt.parquet")
    convert("--from", "nwpu-txt", "--role", "pred", tmp_path / "loc_pred.txt",
            "--out", tmp_path / "pred.parquet")
    (tmp_path / "images.csv").write_text("image_id,luminance\n" + "".join(
        f"{3098 + k},{lum}\n" for k, lum in enumerate(luminance)))
    summary = scored(capsys, tmp_path / "gt.parquet", tmp_path / "pred.parquet",
                     tmp_path / "images.csv", "nwpu")
    assert summary["protocol"]["name"] == "nwpu"
    assert summary["protocol"]["results"] == nwpu_expected(images, luminance)
    # The summary keeps pointscore's names: sigma_l's pass, per level and per label.
    assert summary["config"]["radius"] == "sigma_l" and summary["config"]["thresholds"] == [1]
    assert summary["breakdown_by"]["column"] == "luminance"
    assert set(summary["levels"]) <= {str(v) for v in range(6)}


def test_nwpu_counting_submissions_get_the_counting_table(tmp_path, capsys):
    """NWPU-Crowd's counting track: a submission file of 'id count' lines (counts such
    as 100.0000), no points to match."""
    images = crowd(np.random.default_rng(8), [0, 5, 120])
    write_nwpu(tmp_path / "gt.txt", images, "gt", 3610)
    (tmp_path / "counts.txt").write_text("3610 1.5000\n3611 4.2500\n3612 130.0000\n")
    convert("--from", "nwpu-txt", "--role", "gt", tmp_path / "gt.txt",
            "--out", tmp_path / "gt.parquet", "--images-out", tmp_path / "images.parquet")
    convert("--from", "nwpu-counts", tmp_path / "counts.txt", "--out", tmp_path / "counts.parquet")
    results = scored(capsys, tmp_path / "gt.parquet", tmp_path / "counts.parquet",
                     tmp_path / "images.parquet", "nwpu")["protocol"]["results"]
    assert results["sigma_s"] is None and results["sigma_l"] is None
    assert results["mae"] == (1.5 + 0.75 + 10.0) / 3
    assert results["scene_mae"] == {"S0": 1.5, "S1": 0.75, "S2": 10.0, "S3": None, "S4": None}


def test_nwpu_counting_files_are_checked(tmp_path, capsys):
    (tmp_path / "counts.txt").write_text("3610 1.5\n3611 -2\n36x2 4\n3613\n")
    assert main(["convert", "--from", "nwpu-counts", str(tmp_path / "counts.txt"),
                 "--out", str(tmp_path / "counts.parquet")]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines == [f"pointscore: {tmp_path / 'counts.txt'}: line 4: expected "
                     "'image_id count', got 1 value"]
    (tmp_path / "counts.txt").write_text("3610 1.5\n3611 -2\n36x2 4\n3610 nan\n")
    assert main(["convert", "--from", "nwpu-counts", str(tmp_path / "counts.txt"),
                 "--out", str(tmp_path / "counts.parquet")]) == 2
    assert [line.split(": ", 2)[2] for line in capsys.readouterr().err.splitlines()] == [
        "line 3: image id '36x2' is not an integer",
        "line 2: count '-2' is not a finite number >= 0",
        "line 4: count 'nan' is not a finite number >= 0"]


# -- FIDTM: UCF-QNRF and ShanghaiTech --------------------------------------------------------------

def localisation(images, thresholds, floor=True):
    """FIDTM's eval.py per threshold: the ground truth floored, TP of a maximum matching
    within the threshold, P/R/F1 with its guards."""
    out = []
    for d in thresholds:
        tp = fp = fn = 0
        for image in images:
            gt = np.floor(image["gt"]) if floor else image["gt"]
            matched = max_matching(image["pred"], gt, np.full(len(gt), float(d)))
            tp += matched.size
            fp += len(image["pred"]) - matched.size
            fn += len(gt) - matched.size
        out.append(rates(tp, fp, fn))
    return out


def write_fidtm_pred(path, images):
    """FIDTM's point files: one line per image, numbered from 1 in file order."""
    path.write_text("".join(
        " ".join([str(k + 1), str(len(image["pred"])),
                  *(f"{x:.0f} {y:.0f}" for x, y in image["pred"])]) + "\n"
        for k, image in enumerate(images)))


def write_shanghaitech(directory, images):
    """ShanghaiTech's ground truth: GT_IMG_<n>.mat, image_info a 1x1 cell holding a
    struct(location, number)."""
    directory.mkdir()
    for k, image in enumerate(images):
        struct = {"location": image["gt"], "number": np.array([[float(len(image["gt"]))]])}
        scipy.io.savemat(directory / f"GT_IMG_{k + 1}.mat",
                         {"image_info": np.array([[struct]], dtype=object)})


def scored_from_mats(tmp_path, capsys, mats, images, protocol):
    """The summary of the .mat ground truth and FIDTM's point file of the predictions,
    both converted, under the protocol."""
    write_fidtm_pred(tmp_path / "pred_fidt.txt", images)
    convert("--from", "mat", mats, "--out", tmp_path / "gt.parquet",
            "--images-out", tmp_path / "images.parquet")
    convert("--from", "nwpu-txt", "--role", "pred", tmp_path / "pred_fidt.txt",
            "--out", tmp_path / "pred.parquet")
    return scored(capsys, tmp_path / "gt.parquet", tmp_path / "pred.parquet",
                  tmp_path / "images.parquet", protocol)


def test_qnrf_from_its_mat_files_and_fidtm_points(tmp_path, capsys):
    images = crowd(np.random.default_rng(9), [40, 12, 90, 0, 30])
    mats = tmp_path / "Test"
    mats.mkdir()
    for k, image in enumerate(images):
        scipy.io.savemat(mats / f"img_{k + 1:04d}_ann.mat", {"annPoints": image["gt"]})
    summary = scored_from_mats(tmp_path, capsys, mats, images, "qnrf")
    per = localisation(images, range(1, 101))
    expected = {name: float(np.mean([r[name] for r in per]))
                for name in ("precision", "recall", "f1")}
    expected.update(counting([len(i["gt"]) for i in images], [len(i["pred"]) for i in images]))
    assert summary["protocol"]["results"] == expected
    assert summary["config"]["thresholds"] == list(range(1, 101))


def test_shanghaitech_from_its_mat_files_and_fidtm_points(tmp_path, capsys):
    images = crowd(np.random.default_rng(10), [33, 7, 150, 61])
    write_shanghaitech(tmp_path / "ground_truth", images)
    summary = scored_from_mats(tmp_path, capsys, tmp_path / "ground_truth", images,
                               "shanghaitech")
    small, large = localisation(images, (4, 8))
    assert summary["protocol"]["results"] == {
        "sigma_s": small, "sigma_l": large,
        **counting([len(i["gt"]) for i in images], [len(i["pred"]) for i in images])}


def test_fractional_ground_truth_is_not_floored(capsys):
    """FIDTM floors the ground truth; pointscore scores coordinates as given
    (docs/protocols.md): a prediction 4 px from (10.9, 0) is 4.9 px from (10, 0)."""
    gt = {"image_id": [1], "x": [10.9], "y": [0.0]}
    pred = {"image_id": [1], "x": [14.9], "y": [0.0]}
    results = pointscore.evaluate(gt, pred, protocol="shanghaitech").summary["protocol"]
    images = [{"gt": np.array([[10.9, 0.0]]), "pred": np.array([[14.9, 0.0]])}]
    assert results["results"]["sigma_s"] == localisation(images, (4,), floor=False)[0]
    assert results["results"]["sigma_s"] != localisation(images, (4,), floor=True)[0]


# -- JHU-Crowd++ -------------------------------------------------------------------------------

def test_jhu_from_its_gt_folder_and_image_labels(tmp_path, capsys):
    rng = np.random.default_rng(11)
    true = [0, 12, 50, 51, 499, 501, 900, 30]
    weather = [0, 1, 2, 3, 0, 1, 0, 3]
    split = tmp_path / "test"
    (split / "gt").mkdir(parents=True)
    labels = []
    for k, (n, w) in enumerate(zip(true, weather)):
        xy = rng.integers(0, 1000, (n, 2))
        (split / "gt" / f"{k + 1:04d}.txt").write_text("".join(
            f"{x} {y} 8 8 {rng.integers(0, 3)} {rng.integers(0, 2)}\n" for x, y in xy))
        labels.append(f"{k + 1:04d}.jpg,{n},street,{w},0\n")
    (split / "image_labels.txt").write_text("".join(labels))
    convert("--from", "jhu", split, "--out", tmp_path / "gt.parquet",
            "--images-out", tmp_path / "images.parquet")
    found = list(np.round(np.array(true) * rng.uniform(0.7, 1.3, len(true)), 2))
    (tmp_path / "counts.csv").write_text("image_id,count\n" + "".join(
        f"{k + 1},{c}\n" for k, c in enumerate(found)))
    summary = scored(capsys, tmp_path / "gt.parquet", tmp_path / "counts.csv",
                     tmp_path / "images.parquet", "jhu")

    def cell(keep):
        chosen = [k for k in range(len(true)) if keep(k)]
        if not chosen:
            return {"images": 0, "mae": None, "mse": None}
        return {"images": len(chosen), **counting([true[k] for k in chosen],
                                                  [found[k] for k in chosen])}

    expected = counting(true, found)
    expected["count_range"] = {"low": cell(lambda k: true[k] <= 50),
                               "medium": cell(lambda k: 50 < true[k] <= 500),
                               "high": cell(lambda k: true[k] > 500)}
    expected["weather"] = {str(w): cell(lambda k, w=w: weather[k] == w) for w in range(4)}
    expected["weather_degraded"] = cell(lambda k: weather[k] != 0)
    assert summary["protocol"]["results"] == expected


# -- P2PNet ------------------------------------------------------------------------------------

def test_p2pnet_nap_from_shanghaitech_mats_and_scored_points(tmp_path, capsys):
    """nAP@delta: a prediction is a TP when within delta times its ground truth's mean
    distance to the 3 nearest other points; AP as COCO's 101-point interpolation."""
    rng = np.random.default_rng(12)
    images = crowd(rng, [16, 30, 9, 42], spacing=60)
    mats = tmp_path / "ground_truth"
    write_shanghaitech(mats, images)
    rows = ["image_id,x,y,score"]
    for k, image in enumerate(images):
        image["score"] = np.round(rng.uniform(0, 1, len(image["pred"])), 6)
        rows += [f"{k + 1},{x:.0f},{y:.0f},{s}" for (x, y), s in zip(image["pred"],
                                                                    image["score"])]
    (tmp_path / "pred.csv").write_text("\n".join(rows) + "\n")
    convert("--from", "mat", mats, "--out", tmp_path / "gt.parquet",
            "--images-out", tmp_path / "images.parquet")
    summary = scored(capsys, tmp_path / "gt.parquet", tmp_path / "pred.csv",
                     tmp_path / "images.parquet", "p2pnet")
    nap = {}
    for delta in (0.05, 0.25, 0.5):
        scores, is_tp = [], []
        for image in images:
            gt = image["gt"]
            dist = distance_matrix(gt, gt)
            scale = np.sort(dist, axis=1)[:, 1:4].mean(axis=1)
            reach = delta * scale
            assert unique_matching(image["pred"], gt, reach)
            within = distance_matrix(image["pred"], gt) <= reach[None, :]
            scores += list(image["score"])
            is_tp += list(within.any(axis=1))
        nap[repr(delta)] = reference.coco101_ap(scores, is_tp, sum(len(i["gt"]) for i in images))
    results = summary["protocol"]["results"]
    assert results["nap"] == pytest.approx(nap, abs=0, rel=1e-15)
    assert results["mae"] == counting([len(i["gt"]) for i in images],
                                      [len(i["pred"]) for i in images])["mae"]


# -- the options -------------------------------------------------------------------------------

def test_explicit_options_override_the_protocol():
    gt = {"image_id": [1, 1], "x": [0.0, 50.0], "y": [0.0, 0.0]}
    pred = {"image_id": [1], "x": [5.0], "y": [0.0]}
    summary = pointscore.evaluate(gt, pred, protocol="shanghaitech", thresholds=[6],
                                  match="greedy").summary
    assert summary["config"]["thresholds"] == [6] and summary["config"]["match"] == "greedy"
    with pytest.raises(pointscore.InputError, match="protocol must be one of nwpu, qnrf"):
        pointscore.evaluate(gt, pred, protocol="ucf")


def test_protocols_lists_each_with_what_it_sets(capsys):
    assert main(["protocols"]) in (0, None)
    out = capsys.readouterr().out
    for name in ("nwpu", "qnrf", "shanghaitech", "jhu", "p2pnet"):
        assert f"\n{name}: " in f"\n{out}"
    assert "--radius-column sigma_l" in out and "a second pass with --radius-column sigma_s" in out
    assert "--thresholds 1:100:1" in out


def test_compare_prints_the_protocol_table_per_submission(tmp_path, capsys):
    images = crowd(np.random.default_rng(13), [20, 35])
    paths = {}
    for name, table in (("gt", "gt"), ("a", "pred"), ("b", "gt")):
        xy = np.concatenate([i[table] for i in images])
        ids = np.repeat([1, 2], [len(i[table]) for i in images])
        paths[name] = tmp_path / f"{name}.csv"
        paths[name].write_text("image_id,x,y\n" + "".join(
            f"{i},{x},{y}\n" for i, (x, y) in zip(ids, xy)))
    code = main(["compare", "--gt", str(paths["gt"]), "--pred", str(paths["a"]),
                 str(paths["b"]), "--protocol", "shanghaitech", "--bootstrap", "0",
                 "--device", "cpu"])
    out = capsys.readouterr().out
    assert code == 0
    assert "ranked by mae" in out
    table = out[out.index("ShanghaiTech localisation"):].splitlines()
    assert table[1].split() == ["b", "a"]  # the ground truth as a submission ranks first
    assert table[-2].split()[:2] == ["MAE", "0.0000"]


def test_nwpu_levels_follow_the_scripts_matching_where_it_is_not_unique():
    """Dense points, where many maximum matchings exist: which points are matched, and so
    the recall per level, is the script's (NWPU-Crowd's augmenting paths in row order,
    written independently in bench.peers), not hungarian's."""
    from bench.protocols import script_table
    rng = np.random.default_rng(14)
    gt_txt, pred_txt, tables = {}, {}, {"gt": [], "pred": []}
    for image in range(6):
        n, m = rng.integers(20, 60), rng.integers(20, 60)
        points = np.column_stack([rng.integers(0, 60, (n, 2)), rng.integers(2, 5, n),
                                  rng.integers(5, 12, n), rng.integers(0, 6, n)]).astype(float)
        found = rng.integers(0, 60, (m, 2)).astype(float)
        gt_txt[image], pred_txt[image] = points, found
        tables["gt"].append({"image_id": np.full(n, image), "x": points[:, 0],
                             "y": points[:, 1], "sigma_s": points[:, 2],
                             "sigma_l": points[:, 3], "level": points[:, 4].astype(int)})
        tables["pred"].append({"image_id": np.full(m, image), "x": found[:, 0],
                               "y": found[:, 1]})
    gt, pred = ({k: np.concatenate([t[k] for t in tables[role]]) for k in tables[role][0]}
                for role in ("gt", "pred"))
    results = pointscore.evaluate(gt, pred, protocol="nwpu").summary["protocol"]["results"]
    expected = script_table(gt_txt, pred_txt)
    assert {k: results[k] for k in expected} == expected
    hungarian = pointscore.evaluate(gt, pred, protocol="nwpu", match="hungarian").summary
    assert hungarian["protocol"]["results"]["sigma_l"]["f1"] == expected["sigma_l"]["f1"]
    assert hungarian["protocol"]["results"]["sigma_l"]["level_recall"] != \
        expected["sigma_l"]["level_recall"]


def test_compare_lines_up_count_only_and_point_submissions(tmp_path, capsys):
    """A count-only submission has no localisation rows: every row is labelled once, and
    each column shows its own value, '-' where it has none."""
    images = crowd(np.random.default_rng(15), [20, 35])
    gt = tmp_path / "gt.csv"
    gt.write_text("image_id,x,y,sigma_s,sigma_l,level\n" + "".join(
        f"{k + 1},{x},{y},{s},{big},{v}\n" for k, image in enumerate(images)
        for (x, y), s, big, v in zip(image["gt"], image["sigma_s"], image["sigma_l"],
                                      image["level"])))
    points, counts = tmp_path / "points.csv", tmp_path / "counts.csv"
    points.write_text("image_id,x,y\n" + "".join(
        f"{k + 1},{x},{y}\n" for k, image in enumerate(images) for x, y in image["pred"]))
    counts.write_text("image_id,count\n1,20.5\n2,30\n")
    code = main(["compare", "--gt", str(gt), "--pred", str(counts), str(points),
                 "--protocol", "nwpu", "--bootstrap", "0", "--device", "cpu"])
    out = capsys.readouterr().out
    assert code == 0
    lines = out[out.index("NWPU-Crowd localisation"):].splitlines()
    names = lines[1].split()
    rows = {line.rsplit(maxsplit=2)[0]: dict(zip(names, line.rsplit(maxsplit=2)[1:]))
            for line in lines[2:]}
    expected = pointscore.evaluate(str(gt), str(points), protocol="nwpu").summary
    results = expected["protocol"]["results"]
    assert sorted(names) == ["counts", "points"]
    assert rows["AP_large"] == {"counts": "-",
                                "points": f"{results['sigma_l']['precision']:.4f}"}
    assert rows["MAE"]["points"] == f"{results['mae']:.4f}"
    assert rows["MAE"]["counts"] != "-"


def test_an_explicit_breakdown_leaves_the_protocols_bins_alone():
    """--breakdown density is per megapixel: NWPU-Crowd's scene levels (by count) are
    then not in the table; --bins of one's own replace JHU-Crowd++'s count ranges."""
    gt = {"image_id": [1, 1, 2], "x": [0.0, 50.0, 3.0], "y": [0.0, 0.0, 3.0],
          "sigma_s": [3.0] * 3, "sigma_l": [8.0] * 3, "level": [0, 1, 2]}
    pred = {"image_id": [1, 2], "x": [1.0, 3.0], "y": [0.0, 4.0]}
    images = {"image_id": [1, 2], "width": [100.0, 100.0], "height": [100.0, 100.0]}
    nwpu = pointscore.evaluate(gt, pred, images, protocol="nwpu", breakdown="density").summary
    assert nwpu["breakdown"]["by"] == "density"
    assert nwpu["protocol"]["results"]["scene_mae"] is None
    jhu = pointscore.evaluate(gt, pred, images, protocol="jhu", bins=[1, 10, 100]).summary
    assert jhu["breakdown"]["edges"] == [1, 10, 100]
    assert jhu["protocol"]["results"]["count_range"] is None
    ranked = pointscore.compare.compare(gt, [pred, pred], names=["a", "b"], protocol="nwpu",
                                        thresholds=[2], n_resamples=0)
    assert ranked.summary["config"]["rank_by"] == "mae"  # f1@1 is not a threshold here
