"""pointscore.bootstrap and `pointscore compare`: hand-computed rankings, intervals and
p-values, reproducibility, replicates equal to pointscore.evaluate on the literally
duplicated dataset, and the command line's outputs and errors."""
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pointscore
from pointscore import InputError, bootstrap
from pointscore.cli import main
from pointscore.compare import compare, default_names
from pointscore.kernels.ap import pack_tp, precision_at_recall_points_cpu

# Images 1, 2, 3; image 3 has no ground truth. A is perfect; B misses image 2's point
# and puts one, scored highest, on image 3.
GT = {"image_id": [1, 1, 2], "x": [0.0, 10.0, 5.0], "y": [0.0, 10.0, 5.0]}
IMAGES = {"image_id": [1, 2, 3]}
A = {"image_id": [1, 1, 2], "x": [0.0, 10.0, 5.0], "y": [0.0, 10.0, 5.0],
     "score": [0.9, 0.8, 0.7]}
B = {"image_id": [1, 1, 3], "x": [0.0, 10.0, 1.0], "y": [0.0, 10.0, 1.0],
     "score": [0.9, 0.8, 0.95]}
THRESHOLDS = [1.0, 2.0]
R = 300


def weights(n_images, n_resamples, seed):
    return next(bootstrap.draws(n_images, n_resamples, seed, n_resamples))


def hand_comparison(**options):
    return compare(GT, [A, B], IMAGES, **{"names": ["a", "b"], "thresholds": THRESHOLDS,
                                          "device": "cpu", "n_resamples": R, **options})


def test_two_submissions_by_hand():
    result = hand_comparison().summary
    assert [row["name"] for row in result["ranking"]] == ["a", "b"]
    b = result["submissions"]["b"]["summary"]
    assert b["counting"]["mae"] == 2 / 3 and b["micro"]["f1"] == [4 / 6, 4 / 6]
    w1, w2, w3 = weights(3, R, 0).T
    # A's count errors are 0; B's are 1 on images 2 and 3: A is better unless neither is
    # drawn. On mAP, B ties A (all of its predictions true) when image 2 is not drawn
    # and either image 3 is not (nothing false) or image 1 is not (no ground truth).
    count_ties = np.count_nonzero((w2 == 0) & (w3 == 0))
    map_ties = np.count_nonzero((w2 == 0) & ((w3 == 0) | (w1 == 0)))
    p = result["ranking"][0]["p_beats_next"]
    assert p["mae"] == p["rmse"] == (1 + count_ties) / (1 + R)
    assert p["f1"] == [(1 + count_ties) / (1 + R)] * 2
    assert p["map"] == (1 + map_ties) / (1 + R)
    assert result["ranking"][1]["p_beats_next"] is None
    assert result["pairs"][1] == {"a": "b", "b": "a",
                                  "p": {"mae": 1.0, "rmse": 1.0, "f1": [1.0, 1.0], "map": 1.0}}
    intervals = result["submissions"]["b"]["intervals"]
    assert intervals["mae"] == np.percentile((w2 + w3) / 3, [2.5, 97.5]).tolist()
    assert result["submissions"]["a"]["intervals"]["mae"] == [0.0, 0.0]


def test_identical_images_give_degenerate_intervals():
    def three_copies(table):
        return {k: np.tile(v, 3) if k != "image_id" else np.repeat([1, 2, 3], len(v))
                for k, v in table.items()}
    gt = three_copies({"image_id": [0, 0], "x": [0.0, 5.0], "y": [0.0, 5.0]})
    pred = three_copies({"image_id": [0, 0], "x": [0.5, 50.0], "y": [0.0, 50.0],
                         "score": [0.5, 0.9]})
    report = pointscore.evaluate(gt, pred, thresholds=THRESHOLDS, device="cpu")
    summary, found = report.summary, bootstrap.intervals(report, n_resamples=50)
    for metric, value in (("mae", summary["counting"]["mae"]),
                          ("rmse", summary["counting"]["rmse"]), ("map", summary["map"])):
        assert found[metric] == [value, value]
    assert found["f1"] == [[v, v] for v in summary["micro"]["f1"]]


def test_same_seed_same_output_other_seed_other():
    first, again = hand_comparison(seed=7).summary, hand_comparison(seed=7).summary
    assert json.dumps(first) == json.dumps(again)
    other = hand_comparison(seed=8).summary
    assert other["ranking"][0]["p_beats_next"] != first["ranking"][0]["p_beats_next"]


def test_compare_agrees_with_intervals_and_paired():
    comparison = hand_comparison(seed=3, confidence=0.9)
    a, b = comparison.reports["a"], comparison.reports["b"]
    expected = bootstrap.intervals(b, n_resamples=R, seed=3, confidence=0.9)
    found = comparison.summary["submissions"]["b"]["intervals"]
    assert found == {k: v for k, v in expected.items() if k in found}
    assert comparison.summary["pairs"][0]["p"] == bootstrap.paired(a, b, R, seed=3)["p"]


def test_a_against_itself_is_never_better():
    report = pointscore.evaluate(GT, B, IMAGES, thresholds=THRESHOLDS, device="cpu")
    assert bootstrap.paired(report, report, n_resamples=100)["p"] == \
        {"mae": 1.0, "rmse": 1.0, "f1": [1.0, 1.0], "map": 1.0}


def test_paired_needs_the_same_images():
    a = pointscore.evaluate(GT, A, thresholds=THRESHOLDS, device="cpu")  # images 1, 2
    b = pointscore.evaluate(GT, B, thresholds=THRESHOLDS, device="cpu")  # images 1, 2, 3
    with pytest.raises(InputError, match="same images"):
        bootstrap.paired(a, b, n_resamples=10)


def test_without_images_every_submission_gets_every_image():
    comparison = compare(GT, [A, B], thresholds=THRESHOLDS, device="cpu", n_resamples=20)
    assert [s["summary"]["images"] for s in comparison.summary["submissions"].values()] \
        == [3, 3]
    assert list(comparison.summary["submissions"]) == ["submission-1", "submission-2"]


def test_no_bootstrap_no_intervals():
    result = hand_comparison(n_resamples=0, rank_by="mae").summary
    assert result["pairs"] == [] and result["submissions"]["a"]["intervals"] is None
    assert [row["p_beats_next"] for row in result["ranking"]] == [None, None]


def test_rank_by_f1_and_ties_by_name():
    result = compare(GT, [B, A, B], IMAGES, names=["y", "a", "x"], thresholds=THRESHOLDS,
                     device="cpu", n_resamples=0, rank_by="f1@2").summary
    assert [row["name"] for row in result["ranking"]] == ["a", "x", "y"]


@pytest.mark.parametrize("options, fragment", [
    (dict(rank_by="f1@0.5"), "rank_by must be"),
    (dict(rank_by="recall"), "rank_by must be"),
    (dict(names=["a", "a"]), "each name must be given once"),
    (dict(names=["a"]), "1 names for 2"),
    (dict(n_resamples=-1), "n_resamples"),
    (dict(confidence=1.0), "confidence"),
])
def test_bad_options(options, fragment):
    with pytest.raises(InputError, match=fragment):
        compare(GT, [A, B], IMAGES, thresholds=THRESHOLDS, device="cpu",
                **{"names": ["a", "b"], **options})


def test_default_names_are_stems_made_unique():
    assert default_names(["/r/x/pred.parquet", "/r/y/pred.parquet", "m.csv.gz", "m.csv.gz"]) \
        == ["x/pred", "y/pred", "m", "m-2"]


# ---- replicates are pointscore.evaluate on the duplicated dataset ---------------------------

def random_dataset(seed, n_images=6, n_classes=2):
    rng = np.random.default_rng(seed)
    n_gt, n_pred = rng.integers(5, 30), rng.integers(5, 40)

    def points(n):
        return {"image_id": rng.integers(0, n_images, n), "x": rng.uniform(0, 8, n),
                "y": rng.uniform(0, 8, n), "class": rng.integers(0, n_classes, n)}
    pred = points(n_pred)
    pred["score"] = rng.permutation(n_pred) / n_pred + 0.01  # distinct
    return points(n_gt), pred, {"image_id": np.arange(n_images)}


def duplicated(table, image_weight, stride):
    """Image i drawn w times: w copies with ids i * stride + k, each copy right after
    the one before in id order (so a prediction's copies are adjacent among ties)."""
    ids = np.asarray(table["image_id"])
    rows = np.repeat(np.arange(ids.size), image_weight[ids])
    copy = np.arange(rows.size) - np.repeat(np.cumsum(image_weight[ids]) - image_weight[ids],
                                            image_weight[ids])
    return {**{k: np.asarray(v)[rows] for k, v in table.items()},
            "image_id": ids[rows] * stride + copy}


def replicates_and_evaluated(gt, pred, images, n_resamples, seed, **options):
    """Each replicate's bootstrap values with evaluate's summary of the duplicated
    dataset it stands for: (values, [(r, summary)])."""
    report = pointscore.evaluate(gt, pred, images, device="cpu", **options)
    values = bootstrap.replicates([report], n_resamples=n_resamples, seed=seed)[0]
    n, stride = len(images["image_id"]), len(images["image_id"]) + 1
    evaluated = []
    for r, image_weight in enumerate(weights(n, n_resamples, seed)):
        ids = np.repeat(np.arange(n), image_weight) * stride \
            + np.concatenate([np.arange(w) for w in image_weight])
        evaluated.append((r, pointscore.evaluate(duplicated(gt, image_weight, stride),
                                                 duplicated(pred, image_weight, stride),
                                                 {"image_id": ids}, device="cpu",
                                                 **options).summary))
    return values, evaluated


@pytest.mark.parametrize("seed, score_threshold", [(0, None), (1, None), (2, 0.5), (3, None)])
def test_replicates_equal_evaluate_on_the_duplicated_dataset(seed, score_threshold):
    gt, pred, images = random_dataset(seed)
    values, evaluated = replicates_and_evaluated(gt, pred, images, 6, seed,
                                                 thresholds=[1.0, 2.5],
                                                 score_threshold=score_threshold)
    for r, expected in evaluated:
        assert values["mae"][r] == expected["counting"]["mae"]
        assert values["rmse"][r] == expected["counting"]["rmse"]
        assert values["f1"][r].tolist() == expected["micro"]["f1"]
        assert (np.isnan(values["map"][r]) and expected["map"] is None) \
            or values["map"][r] == expected["map"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_count_only_replicates_equal_evaluate_on_the_duplicated_dataset(seed):
    # Fractional counts over two classes: float errors, whose replicate sums must be the
    # exact sums evaluate makes of the duplicated dataset, not weights times errors.
    gt, _, images = random_dataset(seed)
    ids, klass = np.divmod(np.arange(12), 2)
    counts = {"image_id": ids, "class": klass,
              "count": np.random.default_rng(seed).uniform(0, 9, 12) / 3}
    values, evaluated = replicates_and_evaluated(gt, counts, images, 8, seed)
    for r, expected in evaluated:
        assert values["mae"][r] == expected["counting"]["mae"]
        assert values["rmse"][r] == expected["counting"]["rmse"]
    assert np.isnan(values["f1"]).all() and np.isnan(values["map"]).all()


def test_count_only_submissions_get_intervals_and_paired_tests_for_counting():
    gt = {"image_id": np.repeat(np.arange(8), 3), "x": np.arange(24.0), "y": np.zeros(24)}
    exact = {"image_id": np.arange(8), "count": np.full(8, 3.0)}
    off = {"image_id": np.arange(8), "count": np.full(8, 3.0) + np.arange(1, 9) / 4}
    summary = compare(gt, [off, exact], names=["off", "exact"], rank_by="mae",
                      n_resamples=50, thresholds=[1.0]).summary
    assert [row["name"] for row in summary["ranking"]] == ["exact", "off"]
    intervals = summary["submissions"]["exact"]["intervals"]
    assert intervals["mae"] == intervals["rmse"] == [0.0, 0.0]
    assert intervals["map"] is None and intervals["f1"] == [None]
    lo, hi = summary["submissions"]["off"]["intervals"]["mae"]
    mae = summary["submissions"]["off"]["summary"]["counting"]["mae"]
    assert 0.25 <= lo <= mae <= hi <= 2.0
    # "exact" beats "off" in every replicate: the smallest p-value 50 resamples allow
    assert summary["ranking"][0]["p_beats_next"]["mae"] == 1 / 51
    assert summary["ranking"][0]["p_beats_next"]["map"] is None


def weighted_ap(image_weight, pred_image, is_tp, n_gt):
    """sampled_precision of one class in replicates with the given image weights."""
    n, n_t = is_tp.shape
    positions, runs = bootstrap.true_runs(is_tp)
    return bootstrap.sampled_precision(
        image_weight, pred_image, np.array([0, n]), positions, np.array([0, positions.size]),
        np.concatenate([b for b, _ in runs]), np.concatenate([e for _, e in runs]),
        np.cumsum([0] + [b.size for b, _ in runs]), n_t, n_gt, 2)[:, 0]


def expanded_ap(image_weight, pred_image, is_tp, n_gt):
    """The one-pass kernel on the predictions repeated, each one's copies adjacent."""
    rows = np.repeat(np.arange(pred_image.size), image_weight[pred_image])
    return precision_at_recall_points_cpu(pack_tp(is_tp[rows].T), is_tp.shape[1],
                                          np.arange(rows.size), int(n_gt))


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_weighted_ap_kernel_equals_the_expanded_one_pass_kernel(data):
    """Each prediction w times, copies adjacent, whatever the pattern of true positives
    (ties included: the kernel never looks at scores) and however many ground truths
    (above 100, recall point 0.01 needs several)."""
    n, n_t, n_images = (data.draw(st.integers(0, 40)), data.draw(st.integers(1, 3)),
                        data.draw(st.integers(1, 4)))
    is_tp = np.array(data.draw(st.lists(st.lists(st.booleans(), min_size=n_t, max_size=n_t),
                                        min_size=n, max_size=n)), bool).reshape(n, n_t)
    pred_image = np.array(data.draw(st.lists(st.integers(0, n_images - 1), min_size=n,
                                             max_size=n)), np.int32)
    image_weight = np.array([data.draw(st.lists(st.integers(0, 4), min_size=n_images,
                                                max_size=n_images))])
    n_gt = data.draw(st.integers(1, 400))
    assert np.array_equal(weighted_ap(image_weight, pred_image, is_tp, np.array([[n_gt]]))[0],
                          expanded_ap(image_weight[0], pred_image, is_tp, n_gt))


def test_weighted_ap_kernel_on_long_lists():
    rng = np.random.default_rng(0)
    for _ in range(30):
        n, n_images = rng.integers(100, 2000), rng.integers(1, 50)
        is_tp = rng.random((n, 3)) < rng.random(3)
        pred_image = rng.integers(0, n_images, n).astype(np.int32)
        image_weight = rng.poisson(1.0, (4, n_images))
        n_gt = rng.integers(1, 3 * n, (4, 1))
        found = weighted_ap(image_weight, pred_image, is_tp, n_gt)
        for r in range(4):
            assert np.array_equal(found[r], expanded_ap(image_weight[r], pred_image, is_tp,
                                                        n_gt[r, 0]))


# ---- command line -----------------------------------------------------------------------

@pytest.fixture
def files(tmp_path):
    paths = {}
    for name, data in (("gt", GT), ("images", IMAGES), ("a", A), ("b", B)):
        paths[name] = str(tmp_path / f"{name}.parquet")
        pq.write_table(pa.table(data), paths[name])
    return paths


def run(capsys, files, *argv):
    code = main(["compare", "--gt", files["gt"], "--images", files["images"],
                 "--thresholds", "1,2", "--device", "cpu", "--bootstrap", "200", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_table(files, capsys):
    code, out, err = run(capsys, files, "--pred", files["b"], files["a"])
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[2].split()[:3] == ["rank", "name", "mAP"] and "p vs next (map)" in lines[2]
    assert lines[3].split()[:3] == ["1", "a", "1.0000"]
    assert lines[4].split()[:2] == ["2", "b"] and lines[4].endswith("-")


def test_cli_json_to_stdout_and_to_a_file(files, capsys, tmp_path):
    code, out, _ = run(capsys, files, "--pred", files["a"], files["b"], "--names", "x,y",
                       "--rank-by", "mae", "--json", "-")
    result = json.loads(out)  # nothing but the JSON
    assert code == 0 and [row["name"] for row in result["ranking"]] == ["x", "y"]
    assert result["config"]["rank_by"] == "mae" and result["config"]["n_resamples"] == 200
    assert result["submissions"]["x"]["source"] == files["a"]
    path = tmp_path / "out.json"
    code, out, _ = run(capsys, files, "--pred", files["a"], files["b"], "--names", "x,y",
                       "--rank-by", "mae", "--json", str(path))
    assert code == 0 and out.startswith("pointscore") and json.loads(path.read_text()) == result


@pytest.mark.parametrize("argv, fragments", [
    (["--pred", "{a}", "{b}", "--names", "x,x"], ["each name must be given once"]),
    (["--pred", "{a}", "{b}", "--rank-by", "speed"], ["--rank-by must be", "'speed'"]),
    (["--pred", "{a}", "--bootstrap", "-5"], ["usage error", "--bootstrap"]),
    (["--pred", "{a}", "--json", "{dir}/no/such/dir/out.json"], ["--json", "does not exist"]),
])
def test_cli_bad_input_exits_2_with_one_line(files, capsys, tmp_path, argv, fragments):
    argv = [arg.format(dir=tmp_path, **files) for arg in argv]
    code, out, err = run(capsys, files, *argv)
    assert code == 2 and out == ""
    [line] = err.splitlines()
    assert line.startswith("pointscore: ") and all(f in line for f in fragments)


def test_default_names_tell_clashing_files_apart():
    from pointscore.compare import default_names
    assert default_names(["/t/x/pred.parquet", "/t/y/pred.parquet"]) == ["x/pred", "y/pred"]
    assert default_names(["/t/a/pred.parquet", "/t/a/pred.csv"]) == ["pred.parquet", "pred.csv"]
    assert default_names(["/t/p.csv", "/t/p.csv", {"x": []}]) == ["p", "p-2", "submission-3"]


def test_bad_submissions_are_listed_as_invalid_and_the_others_ranked(files, capsys, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("image_id,x,y,score\n0,1,1,-1\n")
    out_json = tmp_path / "c.json"
    code, out, err = run(capsys, files, "--pred", files["a"], str(tmp_path / "nope.parquet"),
                         str(bad), files["b"], "--json", str(out_json))
    assert code == 4
    summary = json.loads(out_json.read_text())
    status = {name: s["status"] for name, s in summary["submissions"].items()}
    assert status == {"a": "ok", "nope": "invalid", "bad": "invalid", "b": "ok"}
    assert [row["name"] for row in summary["ranking"]] == ["a", "b"]
    assert "no such file" in summary["submissions"]["nope"]["message"]
    assert "negative" in summary["submissions"]["bad"]["message"]
    assert "invalid  nope: " in out and "invalid  bad: " in out
    assert len(err.splitlines()) == 2 and all(" invalid submission " in line
                                              for line in err.splitlines())


def test_no_bootstrap_with_a_report(files, capsys, tmp_path):
    code, out, err = run(capsys, files, "--pred", files["a"], files["b"], "--bootstrap", "0",
                         "--report", str(tmp_path / "report"))
    assert code == 0, err
    assert (tmp_path / "report" / "index.html").is_file()


def test_the_p_value_and_its_label_agree(tmp_path, capsys):
    # 'best' finds every point of every image, 'worst' none: 'best' beats 'worst' in every
    # resample, so p vs next is (1 + 0) / (1 + 200); an identical copy never beats it: 1
    ids = np.repeat(np.arange(8), 5)
    xy = {"image_id": ids, "x": np.arange(40.0) * 10, "y": np.zeros(40)}
    paths = {}
    for name, table in (("gt", xy), ("images", {"image_id": np.arange(8)}),
                        ("best", {**xy, "score": np.full(40, 0.9)}),
                        ("copy", {**xy, "score": np.full(40, 0.9)}),
                        ("worst", {**xy, "y": np.full(40, 50.0), "score": np.full(40, 0.9)})):
        paths[name] = str(tmp_path / f"{name}.parquet")
        pq.write_table(pa.table(table), paths[name])
    report = tmp_path / "report"
    code = main(["compare", "--gt", paths["gt"], "--images", paths["images"], "--device",
                 "cpu", "--thresholds", "1,2", "--bootstrap", "200", "--pred", paths["best"],
                 paths["copy"], paths["worst"], "--names", "best,copy,worst", "--report",
                 str(report), "--json", str(tmp_path / "c.json")])
    assert code == 0
    ranking = json.loads((tmp_path / "c.json").read_text())["ranking"]
    assert [(r["rank"], r["tied"], r["name"]) for r in ranking] == [
        (1, True, "best"), (1, True, "copy"), (3, False, "worst")]  # equal mAPs share a rank
    assert ranking[0]["p_beats_next"]["map"] == 1.0          # best vs its copy: never better
    assert ranking[1]["p_beats_next"]["map"] == 1 / 201      # copy vs worst: always better
    table = capsys.readouterr().out
    assert "p vs next (map)" in table and "small: it beats it" in table
    assert [line.split()[0] for line in table.splitlines()[3:6]] == ["1=", "1=", "3"]
    assert "=: exactly equal on the ranking metric" in table
    html = (report / "index.html").read_text()
    assert "p vs next mAP" in html and "small when it beats it" in html
    assert "P(&gt; next)" not in html and "probability that" not in html


def test_csv_ranking_for_a_leaderboard_site(files, tmp_path, capsys):
    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"image_id": [1], "x": [float("nan")], "y": [0.0],
                             "score": [0.5]}), bad)
    code, out, _ = run(capsys, files, "--pred", files["b"], files["a"], str(bad),
                       "--names", "b,a,bad", "--csv", "-")
    assert code == 4  # ranked, with an invalid submission
    rows = out.splitlines()  # the CSV alone on stdout
    assert rows[0].split(",")[:5] == ["rank", "tied", "name", "status", "map"]
    assert rows[0].split(",")[13:] == ["f1@1", "f1@1_low", "f1@1_high", "p_vs_next", "message"]
    ranked = [row.split(",") for row in rows[1:3]]
    assert [row[:4] for row in ranked] == [["1", "false", "a", "ok"], ["2", "false", "b", "ok"]]
    assert float(ranked[0][4]) == 1.0 and 0 < float(ranked[0][16]) <= 1  # mAP, p vs next
    assert rows[3].startswith(",,bad,invalid,") and "bad.parquet" in rows[3]
    assert len(rows) == 4
