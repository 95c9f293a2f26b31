"""pointscore.evaluate_stream: Parquet datasets scored shard by shard equal pointscore.evaluate bit for bit."""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datasets import datasets
from hypothesis import given, settings
from hypothesis import strategies as st

import pointscore
from bench import data
from pointscore import InputError, evaluate_stream
from pointscore.cli import main
from pointscore.cli.commands import streams
from pointscore.cli.parsers import flag
from pointscore.limits import TRUSTED

LAYOUTS = ("sorted", "scattered", "hive")


def write_dataset(table, directory, layout, seed=0):
    """One table as a Parquet dataset directory: 'sorted' (rows in image order, cut into
    files of small row groups), 'scattered' (rows dealt at random to 4 files, so every
    row group spans many images) or 'hive' (partitioned on class, rows dealt at random)."""
    table = pa.table(table)
    os.makedirs(directory, exist_ok=True)
    if layout == "sorted":
        for i, start in enumerate(range(0, max(len(table), 1), 4000)):
            pq.write_table(table.slice(start, 4000), f"{directory}/part-{i:03d}.parquet",
                           row_group_size=1000)
    else:
        deal = np.random.default_rng(seed).integers(0, 4, len(table))
        if layout == "hive":
            table = table.append_column("part", pa.array(deal))
            pq.write_to_dataset(table.drop_columns("part"), directory, partition_cols=["class"])
            return directory
        for i in range(4):
            pq.write_table(table.filter(pa.array(deal == i)), f"{directory}/part-{i:03d}.parquet",
                           row_group_size=1500)
    return directory


@pytest.fixture(scope="module")
def crowd():
    """About 24,000 points over 50 images and 3 classes: far more than the shard budget."""
    return data.crowd(n_images=50, target_gt=12_000, max_per_image=1500, n_classes=3, seed=5)


@pytest.fixture(scope="module")
def layouts(crowd, tmp_path_factory):
    gt, pred, images = crowd
    root = tmp_path_factory.mktemp("layouts")
    return {layout: (write_dataset(gt, f"{root}/{layout}/gt", layout),
                     write_dataset(pred, f"{root}/{layout}/pred", layout, seed=1))
            for layout in LAYOUTS}


def assert_same(streamed, expected):
    assert streamed.summary == expected.summary
    assert streamed.per_image.equals(expected.per_image)


@pytest.mark.parametrize("strategy", ["auto", "filter", "partition"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_stream_equals_evaluate(layouts, crowd, layout, strategy):
    gt, pred = layouts[layout]
    images = pa.table(crowd[2])
    expected = pointscore.evaluate(gt, pred, images, normalize="wh", device="cpu")
    streamed = evaluate_stream(gt, pred, images, normalize="wh", device="cpu",
                               shard_points=2500, strategy=strategy)
    assert_same(streamed, expected)


@pytest.mark.parametrize("match", ["nearest", "hungarian"])
def test_other_policies_and_score_threshold(layouts, match):
    gt, pred = layouts["scattered"]
    kwargs = dict(thresholds=[2.0, 4.0], match=match, score_threshold=0.3, device="cpu")
    assert_same(evaluate_stream(gt, pred, shard_points=3000, **kwargs),
                pointscore.evaluate(gt, pred, **kwargs))


def test_auto_filters_sorted_data_and_partitions_scattered(layouts, caplog):
    caplog.set_level("INFO", logger="pointscore")
    for layout in ("sorted", "scattered"):
        evaluate_stream(*layouts[layout], device="cpu", shard_points=2500)
    chosen = [r.getMessage().rsplit(" ", 1)[-1] for r in caplog.records
              if "shards" in r.getMessage()]
    assert chosen == ["filter", "partition"]


def test_string_ids_and_nested_layout(crowd, tmp_path):
    gt, pred, _ = crowd

    def nested(table):
        """One row per image (string id), its points a list<struct>, image order shuffled."""
        ids = table["image_id"].astype(str)
        order = np.argsort(ids, kind="stable")
        ids, starts = np.unique(ids[order], return_index=True)
        names = [c for c in table if c != "image_id"]
        points = pa.StructArray.from_arrays([pa.array(table[c][order]) for c in names], names)
        offsets = pa.array(np.append(starts, order.size).astype(np.int32))
        shuffle = np.random.default_rng(0).permutation(ids.size)
        nested = pa.table({"image_id": ids, "points": pa.ListArray.from_arrays(offsets, points)})
        return nested.take(shuffle)

    paths = []
    for name, table in (("gt", gt), ("pred", pred)):
        paths.append(str(tmp_path / f"{name}.parquet"))
        pq.write_table(nested(table), paths[-1], row_group_size=7)
    assert_same(evaluate_stream(*paths, device="cpu", shard_points=2000),
                pointscore.evaluate(*paths, device="cpu"))


@pytest.mark.parametrize("strategy", ["filter", "partition"])
def test_nested_images_without_points_count_in_every_shard_cut(tmp_path, strategy):
    point = pa.struct([("x", pa.float64()), ("y", pa.float64())])
    gt = pa.table({"image_id": [1, 2, 3],
                   "points": pa.array([[{"x": 0.0, "y": 0.0}], [], [{"x": 1.0, "y": 1.0}]],
                                      pa.list_(point))})
    pred = pa.table({"image_id": [1, 3], "points": pa.array(
        [[{"x": 0.0, "y": 0.5}], [{"x": 1.0, "y": 1.0}]], pa.list_(point))})
    paths = [str(tmp_path / "gt.parquet"), str(tmp_path / "pred.parquet")]
    pq.write_table(gt, paths[0], row_group_size=1)
    pq.write_table(pred, paths[1], row_group_size=1)
    expected = pointscore.evaluate(*paths, thresholds=[1.0], device="cpu")
    assert expected.summary["images"] == 3
    assert_same(evaluate_stream(*paths, thresholds=[1.0], device="cpu", shard_points=1,
                                strategy=strategy), expected)


@pytest.mark.parametrize("images_ids", [["a", "b"], None])
def test_id_types_that_differ_across_tables_are_one_line(tmp_path, images_ids):
    gt = {"image_id": np.array([1, 2]), "x": [0.0, 1.0], "y": [0.0, 1.0]}
    pred = {"image_id": np.array(["1", "2"]) if images_ids is None else np.array([1, 2]),
            "x": [0.0, 1.0], "y": [0.0, 1.0]}
    paths = [str(tmp_path / "gt.parquet"), str(tmp_path / "pred.parquet")]
    pq.write_table(pa.table(gt), paths[0])
    pq.write_table(pa.table(pred), paths[1])
    images = None if images_ids is None else {"image_id": np.array(images_ids)}
    with pytest.raises(InputError) as in_memory:
        pointscore.evaluate(*paths, images, device="cpu")
    with pytest.raises(InputError) as streamed:
        evaluate_stream(*paths, images, device="cpu", shard_points=1)
    assert streamed.value.problems == in_memory.value.problems


def test_per_image_written_shard_by_shard(layouts, tmp_path):
    gt, pred = layouts["scattered"]
    out = tmp_path / "per_image.parquet"
    report = evaluate_stream(gt, pred, device="cpu", shard_points=2500, per_image_path=str(out))
    assert report.per_image is None
    assert pq.read_table(out).equals(pointscore.evaluate(gt, pred, device="cpu").per_image)
    assert os.listdir(tmp_path) == ["per_image.parquet"]


def test_bad_rows_anywhere_are_reported_before_scoring(crowd, tmp_path):
    """Messages name the file and count rows within it: for a single file they are
    pointscore.evaluate's own; a failed run leaves no output."""
    gt, pred, images = crowd
    bad = {**pred, "score": pred["score"].copy()}
    bad["score"][[3, len(bad["score"]) - 1]] = [np.nan, -1.0]
    pq.write_table(pa.table(gt), tmp_path / "gt.parquet")
    pq.write_table(pa.table(bad), tmp_path / "pred.parquet", row_group_size=1000)
    paths = (str(tmp_path / "gt.parquet"), str(tmp_path / "pred.parquet"))
    with pytest.raises(InputError) as expected:
        pointscore.evaluate(*paths, device="cpu")
    out = tmp_path / "per_image.parquet"
    with pytest.raises(InputError) as streamed:
        evaluate_stream(*paths, device="cpu", shard_points=1000, per_image_path=str(out))
    assert streamed.value.problems == expected.value.problems
    assert not out.exists()

    table = pa.table(bad)
    write = tmp_path / "pred_dir"
    write.mkdir()
    pq.write_table(table.slice(0, 10), write / "a.parquet")
    pq.write_table(table.slice(10), write / "b.parquet")
    with pytest.raises(InputError) as streamed:
        evaluate_stream(paths[0], str(write), device="cpu", shard_points=1000)
    assert [line.split(":")[0] for line in streamed.value.problems] == \
        [str(write / "a.parquet"), str(write / "b.parquet")]
    assert f"rows {len(table) - 11}" not in streamed.value.problems[1]  # counted within b


def test_unknown_image_ids_as_engine_evaluate(crowd, tmp_path):
    gt, pred, images = crowd
    fewer = pa.table(images).slice(0, 45)
    for name, table in (("gt", gt), ("pred", pred)):
        pq.write_table(pa.table(table), tmp_path / f"{name}.parquet", row_group_size=500)
    paths = (str(tmp_path / "gt.parquet"), str(tmp_path / "pred.parquet"))
    with pytest.raises(InputError) as expected:
        pointscore.evaluate(*paths, fewer, device="cpu")
    with pytest.raises(InputError) as streamed:
        evaluate_stream(*paths, fewer, device="cpu", shard_points=1000)
    assert streamed.value.problems == expected.value.problems


def test_images_without_points_and_no_images(tmp_path):
    empty = {"image_id": np.zeros(0, np.int64), "x": np.zeros(0), "y": np.zeros(0)}
    for name in ("gt", "pred"):
        pq.write_table(pa.table(empty), tmp_path / f"{name}.parquet")
    paths = (str(tmp_path / "gt.parquet"), str(tmp_path / "pred.parquet"))
    images = {"image_id": np.arange(5)}
    for imgs in (None, images):
        for strategy in ("filter", "partition"):
            assert_same(evaluate_stream(*paths, imgs, device="cpu", shard_points=1,
                                        strategy=strategy),
                        pointscore.evaluate(*paths, imgs, device="cpu"))


def _write_split(table, directory, cuts):
    """A table's rows, in order, cut into files at the given row numbers."""
    table = pa.table(table)
    os.makedirs(directory)
    bounds = [0, *sorted(c % (len(table) + 1) for c in cuts), len(table)]
    for i, (begin, end) in enumerate(zip(bounds[:-1], bounds[1:])):
        pq.write_table(table.slice(begin, end - begin), f"{directory}/part-{i:02d}.parquet",
                       row_group_size=3)
    return directory


@settings(max_examples=30, deadline=None)
@given(data=datasets(), shard_points=st.integers(1, 30),
       strategy=st.sampled_from(["filter", "partition"]),
       cuts=st.lists(st.integers(0, 40), max_size=3),
       match=st.sampled_from(["greedy", "nearest", "hungarian"]))
def test_any_split_into_shards_merges_exactly(data, shard_points, strategy, cuts, match):
    gt, pred, images, thresholds = data
    kwargs = dict(thresholds=thresholds, match=match, device="cpu")
    with tempfile.TemporaryDirectory() as root:
        paths = [_write_split(t, f"{root}/{n}", cuts) for n, t in (("gt", gt), ("pred", pred))]
        try:
            expected = pointscore.evaluate(*paths, images, **kwargs)
        except InputError as exc:  # e.g. a class column on one side only
            with pytest.raises(InputError) as streamed:
                evaluate_stream(*paths, images, shard_points=shard_points, strategy=strategy,
                                **kwargs)
            assert streamed.value.problems == exc.problems
            return
        assert_same(evaluate_stream(*paths, images, shard_points=shard_points,
                                    strategy=strategy, **kwargs), expected)


def test_cli_streams_directories_and_writes_per_image_rows_shard_by_shard(layouts, tmp_path,
                                                                         capsys):
    gt, pred = layouts["sorted"]
    assert streams(gt, pred, 2_000_000, TRUSTED)
    assert not streams(gt + "/part-000.parquet", pred + "/part-000.parquet", 2_000_000,
                       TRUSTED)
    out = tmp_path / "per_image.parquet"
    code = main(["evaluate", "--gt", gt, "--pred", pred, "--thresholds", "4,8", "--device",
                 "cpu", "--per-image", str(out), "--shard-points", "5000", "--json", "-"])
    assert code == 0
    expected = pointscore.evaluate(gt, pred, thresholds=[4.0, 8.0], device="cpu")
    # the command line names options by their flags in warnings
    assert json.loads(capsys.readouterr().out) == {**expected.summary,
                                                   "warnings": expected.warning_lines(flag)}
    assert pq.read_table(out).equals(expected.per_image)


def test_a_nested_file_of_few_rows_and_many_points_streams(tmp_path):
    # the decision counts points: three rows holding 3,000 points are three images, not
    # three points
    point = pa.struct([("x", pa.float64()), ("y", pa.float64())])
    rows = pa.table({"image_id": [1, 2, 3],
                     "points": pa.array([[{"x": 0.0, "y": 0.0}] * 1_000] * 3, pa.list_(point))})
    nested = tmp_path / "nested.parquet"
    pq.write_table(rows, nested)
    long = tmp_path / "long.parquet"
    pq.write_table(pa.table({"image_id": [1], "x": [0.0], "y": [0.0]}), long)
    assert streams(long, nested, 2_000, TRUSTED)
    assert not streams(long, nested, 4_000, TRUSTED)


PEAK_RSS = """
import json, sys
import pointscore
from pointscore import evaluate_stream

def peak_mib():
    with open("/proc/self/status") as status:
        return next(int(l.split()[1]) for l in status if l.startswith("VmHWM")) / 1024

gt, pred, how = sys.argv[1:]
tiny = {"image_id": [0], "x": [0.0], "y": [0.0]}
pointscore.evaluate(tiny, tiny, device="cpu")  # load the compiled kernels first
with open("/proc/self/clear_refs", "w") as refs:
    refs.write("5")  # reset the peak
before = peak_mib()
if how == "stream":
    evaluate_stream(gt, pred, device="cpu", shard_points=20_000)
else:
    pointscore.evaluate(gt, pred, device="cpu")
print(json.dumps(peak_mib() - before))
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux /proc")
def test_peak_memory_follows_the_shard_budget(tmp_path):
    """Streaming 800,000 points in shards of 20,000 needs far less memory than reading
    them whole (peak RSS in fresh processes, after their imports). Without scores: the
    AP lists are what grows with the data (about 26 bytes per scored prediction)."""
    gt, pred, _ = data.crowd(n_images=400, target_gt=400_000, max_per_image=3000, seed=2)
    paths = [write_dataset({k: t[k] for k in ("image_id", "x", "y")}, str(tmp_path / n), "sorted")
             for n, t in (("gt", gt), ("pred", pred))]
    growth = {}
    for how in ("whole", "stream"):
        done = subprocess.run([sys.executable, "-c", PEAK_RSS, *paths, how], check=True,
                              capture_output=True, text=True, cwd=os.path.dirname(__file__))
        growth[how] = json.loads(done.stdout.strip().splitlines()[-1])
    assert growth["stream"] < 0.5 * growth["whole"], growth


def test_progress_bar_counts_every_image_and_point(layouts, crowd, capsys):
    gt, pred = layouts["sorted"]
    evaluate_stream(gt, pred, thresholds=[4.0], device="cpu", shard_points=5000, progress=True)
    last = capsys.readouterr().err.strip().split("\r")[-1]
    n_points = len(crowd[0]["x"]) + len(crowd[1]["x"])
    assert last.startswith("[" + "#" * 30 + "] 50/50 images") and "points/s" in last
    assert n_points > 5000


def test_row_groups_read_in_the_inputs_order(tmp_path):
    # pyarrow's make_fragment(row_groups=[7, 8]) reads group 8 before 7: rows must still
    # get their input rows, and ties their row order, when a shard reads such a run.
    pred = pa.table({"image_id": [0, 1, 2, 3, 4, 5, 6, 7, 7], "x": [0.0] * 7 + [1.0, -1.0],
                     "y": [0.0] * 9})
    gt = pa.table({"image_id": [7, 7], "x": [0.0, 2.0], "y": [0.0, 0.0]})
    pq.write_table(pred, tmp_path / "pred.parquet", row_group_size=1)
    pq.write_table(gt, tmp_path / "gt.parquet")
    paths = str(tmp_path / "gt.parquet"), str(tmp_path / "pred.parquet")
    whole = pointscore.evaluate(*paths, thresholds=[1.5], device="cpu", matches=True)
    streamed = evaluate_stream(*paths, thresholds=[1.5], device="cpu", matches=True,
                               shard_points=7)
    assert streamed.summary == whole.summary and streamed.summary["micro"]["tp"] == [1]
    assert streamed.matches.equals(whole.matches)
