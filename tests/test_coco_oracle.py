"""AP against an external oracle: pycocotools' keypoint evaluation mapped to distances (bench.peers)."""
import importlib.util

import numpy as np
import pytest

from bench import peers

DEFAULT_THRESHOLDS = [round(0.01 * i, 10) for i in range(1, 11)]
HAS_FASTER_COCO_EVAL = importlib.util.find_spec("faster_coco_eval") is not None


def random_case(seed):
    """Random multi-class float data exercising the edge cases of docs/metrics.md section 5.

    Classes 0 and 1 appear on both sides; class 2 only in GT (even seeds, AP 0) or only
    in predictions (odd seeds, AP null).  Image 100 has only GT, image 101 only
    predictions; image ids are not contiguous and rows are shuffled across images.
    """
    rng = np.random.default_rng(seed)
    one_sided_class = 2
    shared_images = rng.choice(np.arange(1000, 2000), size=8, replace=False)

    def points(image_ids, classes, max_per_group):
        counts = rng.integers(0, max_per_group + 1, size=(len(image_ids), len(classes)))
        image = np.repeat(np.repeat(image_ids, len(classes)), counts.ravel())
        cls = np.repeat(np.tile(classes, len(image_ids)), counts.ravel())
        # dense enough (~0.08 apart) that the thresholds 0.01..0.10 compete for GT points
        return {"image_id": image, "x": 0.4 * rng.random(image.size), "y": 0.4 * rng.random(image.size),
                "class": cls}

    gt_classes = [0, 1, one_sided_class] if seed % 2 == 0 else [0, 1]
    gt = points(np.append(shared_images, 100), gt_classes, 25)

    # predictions: jittered copies of most GT points (not of the GT-only image or class) plus false positives
    copyable = (gt["image_id"] != 100) & (gt["class"] != one_sided_class)
    copied = np.flatnonzero(copyable & (rng.random(gt["x"].size) < 0.85))
    pred_classes = [0, 1, one_sided_class] if seed % 2 == 1 else [0, 1]
    false_positives = points(np.append(shared_images, 101), pred_classes, 8)
    pred = {key: np.concatenate([gt[key][copied], false_positives[key]]) for key in gt}
    pred["x"][: copied.size] += rng.normal(0, 0.03, copied.size)
    pred["y"][: copied.size] += rng.normal(0, 0.03, copied.size)
    pred["score"] = rng.random(pred["x"].size)

    def shuffled(table):
        order = rng.permutation(table["x"].size)
        return {key: value[order] for key, value in table.items()}

    return shuffled(gt), shuffled(pred)


def test_oracle_hand_computed_case():
    # GT (0,0), (1,0); predictions by score: (0.1,0) hits GT 0; (0,0.3) finds GT 0 taken and
    # GT 1 too far; (0.7,0) is 0.3 from GT 1.  At d=0.2 the ranked list is TP FP FP: precision 1
    # up to recall 0.5 (51 of the 101 recall points).  At d=0.5 it is TP FP TP: precision 2/3
    # interpolated over the 50 recall points above 0.5.
    gt = {"image_id": np.array([7, 7]), "x": np.array([0.0, 1.0]), "y": np.array([0.0, 0.0])}
    pred = {"image_id": np.array([7, 7, 7]), "x": np.array([0.1, 0.0, 0.7]), "y": np.array([0.0, 0.3, 0.0]),
            "score": np.array([0.9, 0.8, 0.7])}
    expected = np.array([[51 / 101, (51 + 50 * 2 / 3) / 101]])  # thresholds ascending: 0.2, 0.5
    for backend in ["pycocotools"] + (["faster_coco_eval"] if HAS_FASTER_COCO_EVAL else []):
        np.testing.assert_allclose(peers.coco_ap(gt, pred, [0.5, 0.2], backend), expected, rtol=0, atol=1e-12)


@pytest.mark.skipif(not HAS_FASTER_COCO_EVAL, reason="faster-coco-eval not installed")
def test_oracle_backends_agree():
    for seed in range(2):
        inputs = peers.to_coco(*random_case(seed), DEFAULT_THRESHOLDS)
        np.testing.assert_array_equal(peers.evaluate_coco(inputs, "pycocotools"),
                                      peers.evaluate_coco(inputs, "faster_coco_eval"))


@pytest.mark.parametrize("seed", range(4))
def test_engine_ap_matches_pycocotools(seed):
    import pointscore

    gt, pred = random_case(seed)
    summary = pointscore.evaluate(gt, pred, thresholds=DEFAULT_THRESHOLDS, match="greedy").summary
    classes = np.unique(np.concatenate([gt["class"], pred["class"]]))
    oracle = peers.coco_ap(gt, pred, DEFAULT_THRESHOLDS)  # [class, threshold], NaN where no GT

    assert summary["config"]["thresholds"] == DEFAULT_THRESHOLDS
    for k, cls in enumerate(classes):
        engine_ap = summary["classes"][str(cls)]["ap"]
        if np.isnan(oracle[k]).all():
            assert engine_ap == [None] * len(DEFAULT_THRESHOLDS), f"class {cls} has no GT: AP must be null"
        else:
            np.testing.assert_allclose(engine_ap, oracle[k], rtol=0, atol=1e-9, err_msg=f"class {cls}")
    macro = np.nanmean(oracle, axis=0)
    np.testing.assert_allclose(summary["macro"]["ap"], macro, rtol=0, atol=1e-9)
    assert summary["map"] == pytest.approx(macro.mean(), rel=0, abs=1e-9)


TIE_THRESHOLDS = [1.2, 1.7, 2.5, 3.3]  # no distance between integer points equals one


def tie_case(seed, n_images=25):
    """Integer points on a coarse board, scores quantised to a few values, three classes:
    equal distances and equal scores everywhere, as in NWPU-Crowd's integer annotations."""
    rng = np.random.default_rng(seed)

    def points(n, scored):
        table = {"image_id": rng.integers(0, n_images, n), "x": rng.integers(0, 8, n) * 1.0,
                 "y": rng.integers(0, 8, n) * 1.0, "class": rng.integers(0, 3, n)}
        if scored:
            table["score"] = rng.choice([0.25, 0.5, 0.75, 1.0], n)
        return table

    return points(400, False), points(450, True)


@pytest.mark.parametrize("seed", range(3))
def test_ap_equals_pycocotools_to_the_last_bit_when_distances_tie(seed):
    # pycocotools keeps the last of equally good gts (`if ious[dind, gind] < iou:
    # continue`); so does pointscore's AP matching. Equal, not close.
    import pointscore

    gt, pred = tie_case(seed)
    summary = pointscore.evaluate(gt, pred, thresholds=TIE_THRESHOLDS, device="cpu").summary
    oracle = peers.coco_ap(gt, pred, TIE_THRESHOLDS)
    for k in range(3):
        assert summary["classes"][str(k)]["ap"] == oracle[k].tolist(), f"class {k}"


def test_tie_rule_is_the_same_on_every_path(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    import pointscore

    gt, pred = tie_case(7, n_images=6)
    kwargs = dict(thresholds=TIE_THRESHOLDS, device="cpu")
    expected = pointscore.evaluate(gt, pred, **kwargs).summary
    on_gpu = pointscore.evaluate(gt, pred, thresholds=TIE_THRESHOLDS, device="gpu").summary
    assert on_gpu["config"].pop("device") == "gpu"
    assert on_gpu == dict(expected, config={k: v for k, v in expected["config"].items()
                                            if k != "device"})
    paths = []
    for name, table in (("gt", gt), ("pred", pred)):
        pq.write_table(pa.table(table), tmp_path / f"{name}.parquet", row_group_size=37)
        paths.append(str(tmp_path / f"{name}.parquet"))
    assert pointscore.evaluate_stream(*paths, shard_points=150, **kwargs).summary == expected
    pytest.importorskip("distributed")
    assert pointscore.evaluate_distributed(*paths, workers=2, shard_points=150,
                                           **kwargs).summary == expected
