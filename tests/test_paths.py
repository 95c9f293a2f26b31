"""Every scoring option gives the same results on every path.

The README promises that a run in memory (``pointscore.evaluate``), streamed shard by
shard (``evaluate_stream``) and on a Dask cluster (``evaluate_distributed``) give the
same summary bit for bit. The other test files check that promise for a few options
each; here every scoring option runs on all three paths over the same generated data,
and the summary, the per-image table and the match table must be equal. The in-memory
run reads one Parquet file per table; the other runs read the same rows, in the same
order, as a dataset directory of several files, so that the match tables' row numbers
and the rules' tie-breaks by row mean the same thing on every path.
"""
import logging
import re
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import pointscore
from bench import data
from pointscore.cli import main
from pointscore.outputs import summary_json

PIXELS = [4.0, 8.0, 16.0]   # thresholds in pixels, the crowd generator's units
FILES = 4                   # files per dataset directory
ROW_GROUP = 20              # rows per row group: tens of groups per file
SHARDS = 8                  # shard_points = points // SHARDS: shards begin and end mid-file


@dataclass
class Case:
    """One option set: which generated tables it scores (see ``generated``), how their
    rows lie in the dataset directories, whether it passes the images table, and its
    options besides the defaults of ``options_of``."""
    tables: str = "points"
    layout: str = "sorted"
    images: bool = False
    options: dict = field(default_factory=dict)

    @property
    def count_only(self):
        return self.tables == "counts"


CASES = {
    "greedy": Case(),
    "nearest": Case(options={"match": "nearest"}),
    "hungarian": Case(options={"match": "hungarian"}),
    "kuhn": Case(options={"match": "kuhn"}),
    "score_threshold": Case(options={"score_threshold": 0.5}),
    "normalize_wh": Case(images=True, options={"normalize": "wh",
                                               "thresholds": [0.005, 0.01, 0.02]}),
    "radius": Case(options={"radius": "r", "thresholds": [0.5, 1.0, 2.0]}),
    "knn": Case(options={"normalize": "knn", "knn_k": 3, "thresholds": [0.5, 1.0]}),
    "game": Case(images=True, options={"game": 2}),
    "breakdown_count": Case(options={"breakdown": "count"}),
    "breakdown_density": Case(images=True, options={"breakdown": "density"}),
    "classes": Case(tables="classes"),
    "count_only": Case(tables="counts", images=True),
    "levels_labels": Case(images=True, options={"level_column": "level",
                                                "breakdown_by": "scene"}),
    "count_only_levels_labels": Case(tables="counts", images=True,
                                     options={"level_column": "level",
                                              "breakdown_by": "scene"}),
    "protocol_nwpu": Case(images=True, options={"protocol": "nwpu", "thresholds": None}),
    "string_ids": Case(tables="strings", images=True),
    **{f"ties_{rule}": Case(tables="grid", options={"match": rule})
       for rule in ("greedy", "nearest", "hungarian", "kuhn")},
    "scattered_partition": Case(layout="scattered", images=True,
                                options={"normalize": "wh", "match": "hungarian",
                                         "thresholds": [0.005, 0.01, 0.02]}),
}


def options_of(case):
    """The case's scoring options: pixel thresholds and the CPU unless it says otherwise."""
    return {"thresholds": PIXELS, "device": "cpu", **case.options}


def generated():
    """The tables the cases draw on, by name: (gt, pred, images) as pyarrow Tables.

    About 6,000 points over 30 images of very different sizes (6 to 400 ground-truth
    points), so that a shard holds one image or several. 'points' has one class and a
    positive per-point radius 'r'; 'classes' has 3 classes; 'strings' has string image
    ids, not zero-padded, so that their order ('img10' < 'img2') is not the numbers';
    'grid' has whole-pixel coordinates and scores of one decimal, so that distances
    and scores tie and the rules' tie-breaks by row (docs/metrics.md) decide; 'counts'
    has count-only predictions: fractional counts, and no row for some images (a
    predicted count of 0). The ground truth has NWPU-Crowd's per-point columns too
    (sigma_s, sigma_l, level), and the images table a label (scene) and a luminance level.
    """
    gt, pred, images = (pa.table(t) for t in data.crowd(
        n_images=30, target_gt=3000, max_per_image=400, n_classes=3, seed=11))
    rng = np.random.default_rng(3)
    gt = gt.append_column("r", pa.array(rng.uniform(2.0, 12.0, len(gt))))
    for name, values in (("sigma_s", rng.uniform(2.0, 6.0, len(gt))),
                         ("sigma_l", rng.uniform(6.0, 16.0, len(gt))),
                         ("level", rng.integers(0, 6, len(gt)))):
        gt = gt.append_column(name, pa.array(values))
    images = images.append_column("scene", pa.array(
        np.array(["street", "stadium", "station"])[rng.integers(0, 3, len(images))]))
    images = images.append_column("luminance", pa.array(rng.integers(0, 3, len(images))))
    points = (gt.drop_columns("class"), pred.drop_columns("class"), images)

    def replaced(table, name, values):
        return table.set_column(table.schema.get_field_index(name), name, pa.array(values))

    def named(table):
        return replaced(table, "image_id", [f"img{i}" for i in table["image_id"].to_pylist()])

    def on_grid(table):
        for name, decimals in (("x", 0), ("y", 0), ("score", 1)):
            if name in table.column_names:
                table = replaced(table, name, np.round(table[name].to_numpy(), decimals))
        return table

    per_image = np.bincount(pred["image_id"].to_numpy(), minlength=len(images))
    listed = np.flatnonzero(rng.random(per_image.size) < 0.8)
    counts = pa.table({"image_id": listed,
                       "count": per_image[listed] * rng.uniform(0.8, 1.2, listed.size)})
    return {"points": points,
            "classes": (gt.drop_columns("r"), pred, images),
            "strings": tuple(named(t) for t in points),
            "grid": tuple(on_grid(t) for t in points),
            "counts": (points[0], counts, images)}


def write(table, root, layout, seed):
    """``table`` as one Parquet file ``root.parquet`` and, with the same rows in the same
    order, as a dataset directory ``root`` of FILES files: 'sorted' by image id, or
    'scattered' (rows shuffled, so that every row group spans many images and the run
    must partition). Returns (file, directory)."""
    if layout == "sorted":
        table = table.sort_by("image_id")
    else:
        table = table.take(np.random.default_rng(seed).permutation(len(table)))
    pq.write_table(table, f"{root}.parquet", row_group_size=ROW_GROUP)
    root.mkdir()
    step = -(-len(table) // FILES)
    for i in range(FILES):
        pq.write_table(table.slice(i * step, step), root / f"part-{i}.parquet",
                       row_group_size=ROW_GROUP)
    return f"{root}.parquet", str(root)


@dataclass
class Inputs:
    files: tuple       # (gt, pred) as one Parquet file each: the in-memory run
    dataset: tuple     # (gt, pred) as dataset directories: streamed and distributed runs
    images: str        # the images table's Parquet file
    points: int        # rows of gt and pred together


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Each case's Inputs, each of the generated tables written once per layout."""
    root = tmp_path_factory.mktemp("paths")
    written = {}
    for name, (gt, pred, images) in generated().items():
        for layout in {c.layout for c in CASES.values() if c.tables == name}:
            base = root / f"{name}-{layout}"
            base.mkdir()
            gt_file, gt_dir = write(gt, base / "gt", layout, seed=0)
            pred_file, pred_dir = write(pred, base / "pred", layout, seed=1)
            pq.write_table(images, base / "images.parquet")
            written[name, layout] = Inputs((gt_file, pred_file), (gt_dir, pred_dir),
                                           str(base / "images.parquet"), len(gt) + len(pred))
    return {name: written[case.tables, case.layout] for name, case in CASES.items()}


def in_memory(name, inputs):
    """The reference: the case scored by pointscore.evaluate from single Parquet files."""
    case, given = CASES[name], inputs[name]
    return pointscore.evaluate(*given.files, given.images if case.images else None,
                               matches=not case.count_only, **options_of(case))


def sharded(name, inputs, tmp_path):
    """The keyword arguments of a streamed or distributed run of the case: its scoring
    options, shards of an eighth of the points, and the partition strategy for
    scattered rows (auto, which must choose filtered reads, for sorted ones)."""
    case = CASES[name]
    return dict(shard_points=inputs[name].points // SHARDS,
                strategy="partition" if case.layout == "scattered" else "auto",
                scratch_dir=str(tmp_path), **options_of(case))


def plans(caplog):
    """(shards, strategy) of each sharded run logged so far: an in-memory run logs none."""
    return [(int(m[1]), m[2]) for r in caplog.records
            if (m := re.match(r"pointscore: (\d+) shards; .*: (\w+)$", r.getMessage()))]


def assert_plan(caplog, case):
    """One run (two for a protocol of two passes), each cut into at least 3 shards and
    read as its layout wants: filtered by id range when sorted, partitioned when
    scattered."""
    runs = plans(caplog)
    assert len(runs) == (2 if case.options.get("protocol") == "nwpu" else 1)
    for shards, strategy in runs:
        assert shards >= 3
        assert strategy == ("partition" if case.layout == "scattered" else "filter")


def assert_same(report, expected, per_image=None, matches=None):
    """Summary equal bit for bit (as a dict and as the JSON text written), per-image and
    match tables equal; ``per_image``/``matches``: the report's tables when None."""
    assert report.summary == expected.summary
    assert summary_json(report.summary) == summary_json(expected.summary)
    assert_tables_equal(report.per_image if per_image is None else per_image,
                        expected.per_image)
    matches = report.matches if matches is None else matches
    if expected.matches is None:
        assert matches is None
    else:
        assert_tables_equal(matches, expected.matches)


def assert_tables_equal(table, expected):
    """``Table.equals``, failing with the first column that differs and its first row."""
    assert table is not None
    assert table.schema.equals(expected.schema), f"{table.schema}\n!=\n{expected.schema}"
    assert table.num_rows == expected.num_rows
    for name in expected.column_names:
        got, want = table[name].to_pylist(), expected[name].to_pylist()
        row = next((i for i, (g, w) in enumerate(zip(got, want)) if g != w), None)
        assert row is None, f"column {name!r}, row {row}: {got[row]!r} != {want[row]!r}"
    assert table.equals(expected)


@pytest.fixture(scope="module")
def scheduler():
    """The address of one local cluster of 2 single-threaded worker processes, shared by
    the module (a cluster per run would cost seconds each)."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, silence_logs=logging.CRITICAL,
                                  env={"NUMBA_NUM_THREADS": "1"}) as cluster:
        yield cluster.scheduler_address


@pytest.fixture
def log(caplog):
    """caplog with pointscore's INFO lines, which tell how a run was cut and read."""
    caplog.set_level(logging.INFO, logger="pointscore")
    return caplog


@pytest.mark.parametrize("name", CASES)
def test_streamed_equals_in_memory(name, inputs, tmp_path, log):
    """Streamed, with the rows written to files shard by shard as the CLI does."""
    case, given = CASES[name], inputs[name]
    per_image, matches = tmp_path / "per_image.parquet", tmp_path / "matches.parquet"
    report = pointscore.evaluate_stream(
        *given.dataset, given.images if case.images else None, per_image_path=str(per_image),
        matches_path=None if case.count_only else str(matches), **sharded(name, inputs, tmp_path))
    assert_plan(log, case)
    assert report.per_image is None and report.matches is None
    assert_same(report, in_memory(name, inputs), pq.read_table(per_image),
                None if case.count_only else pq.read_table(matches))


@pytest.mark.parametrize("name", CASES)
def test_distributed_equals_in_memory(name, inputs, scheduler, tmp_path, log):
    """On the cluster, with the rows kept in the Report."""
    case, given = CASES[name], inputs[name]
    report = pointscore.evaluate_distributed(
        *given.dataset, given.images if case.images else None, scheduler=scheduler,
        matches=not case.count_only, **sharded(name, inputs, tmp_path))
    assert_plan(log, case)
    assert_same(report, in_memory(name, inputs))


def test_command_line_streamed_equals_in_memory(inputs, tmp_path, capsys, log):
    """``pointscore evaluate`` on single files: in memory by default, streamed with a
    small --shard-points; the printed JSON and the --per-image/--matches files equal."""
    given = inputs["normalize_wh"]
    outputs = []
    for run, shard in (("memory", []),
                       ("streamed", ["--shard-points", str(given.points // SHARDS)])):
        out = tmp_path / run
        out.mkdir()
        argv = ["evaluate", "--gt", given.files[0], "--pred", given.files[1],
                "--images", given.images, "--normalize", "wh", "--thresholds", "0.005,0.01,0.02",
                "--device", "cpu", "--json", "-", "--per-image", str(out / "per_image.parquet"),
                "--matches", str(out / "matches.parquet"), *shard]
        assert main(argv) == 0
        outputs.append((capsys.readouterr().out, pq.read_table(out / "per_image.parquet"),
                        pq.read_table(out / "matches.parquet")))
        assert len(plans(log)) == (1 if run == "streamed" else 0)
    assert_plan(log, CASES["normalize_wh"])
    (json_memory, *tables_memory), (json_streamed, *tables_streamed) = outputs
    assert json_streamed == json_memory
    for table, expected in zip(tables_streamed, tables_memory):
        assert_tables_equal(table, expected)
