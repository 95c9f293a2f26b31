"""pointscore.evaluate_distributed: shards scored on a Dask cluster equal the single-process run, and
survive a worker that dies."""
import json
import logging
import os
from contextlib import contextmanager

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

distributed = pytest.importorskip("distributed")

from test_stream import write_dataset  # noqa: E402

import pointscore  # noqa: E402
from bench import data  # noqa: E402
from pointscore import DistributedError, evaluate_distributed  # noqa: E402
from pointscore.cli import main  # noqa: E402

OPTIONS = dict(normalize="wh", thresholds=[4.0, 8.0, 16.0], device="cpu", shard_points=1500)


class ExitOnScoring(distributed.WorkerPlugin):
    """Kills its worker's process as a scoring task starts while the file ``armed``
    exists; with ``once``, the worker that removes the file is the only one to die.
    The file, not the plugin's registration, decides: a worker that the nanny restarts
    while the plugin is being unregistered may still get it."""

    def __init__(self, armed, once=False):
        self.armed, self.once = armed, once

    def transition(self, key, start, finish, **kwargs):
        if finish != "executing" or not str(key).startswith("pointscore-score-"):
            return
        if self.once:
            try:
                os.unlink(self.armed)
            except FileNotFoundError:
                return
        elif not os.path.exists(self.armed):
            return
        os._exit(1)


@contextmanager
def killing(client, tmp_path, once=False):
    """ExitOnScoring on every worker for the block; returns the arming file."""
    armed = tmp_path / "armed"
    armed.touch()
    client.register_plugin(ExitOnScoring(str(armed), once), name="exit-on-scoring")
    try:
        yield armed
    finally:
        if armed.exists():
            armed.unlink()  # first: from here on every copy of the plugin is inert
        try:
            client.unregister_worker_plugin("exit-on-scoring")
        except distributed.comm.core.CommClosedError:
            # The scheduler dropped the plugin, then its broadcast met a worker the plugin
            # had just stopped (seen on a loaded machine); copies left are disarmed.
            pass


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, silence_logs=logging.CRITICAL,
                                  env={"NUMBA_NUM_THREADS": "1"}) as local, \
            distributed.Client(local) as client:
        yield local, client


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    gt, pred, images = data.crowd(n_images=24, target_gt=4000, max_per_image=600, n_classes=2,
                                  seed=7)
    root = tmp_path_factory.mktemp("distributed")
    paths = {layout: (write_dataset(gt, f"{root}/{layout}/gt", layout),
                      write_dataset(pred, f"{root}/{layout}/pred", layout, seed=1))
             for layout in ("sorted", "scattered")}
    images = pa.table(images)
    expected = pointscore.evaluate(*paths["scattered"], images, **{k: v for k, v in OPTIONS.items()
                                                             if k != "shard_points"})
    return paths, images, expected


def assert_same(report, expected):
    assert report.summary == expected.summary
    assert report.per_image.equals(expected.per_image)


def test_local_cluster_of_two_workers_equals_one_process(dataset):
    paths, images, expected = dataset
    assert_same(evaluate_distributed(*paths["scattered"], images, workers=2, **OPTIONS), expected)


@pytest.mark.parametrize("layout,strategy", [("sorted", "filter"), ("scattered", "partition")])
def test_cluster_at_a_scheduler_address(cluster, dataset, tmp_path, layout, strategy):
    paths, images, expected = dataset
    report = evaluate_distributed(*paths[layout], images, scheduler=cluster[0].scheduler_address,
                                  strategy=strategy, scratch_dir=str(tmp_path), **OPTIONS)
    assert_same(report, expected)
    assert os.listdir(tmp_path) == []  # the partition files are gone


def test_a_worker_that_dies_mid_run_is_replaced(cluster, dataset, tmp_path):
    local, client = cluster
    paths, images, expected = dataset
    with killing(client, tmp_path, once=True) as armed:
        report = evaluate_distributed(*paths["scattered"], images,
                                      scheduler=local.scheduler_address, **OPTIONS)
        assert not armed.exists()  # a worker died
    assert_same(report, expected)


def test_a_run_that_cannot_finish_says_so_and_writes_nothing(cluster, dataset, tmp_path):
    local, client = cluster
    paths, images, _ = dataset
    allowed = local.scheduler.allowed_failures
    local.scheduler.allowed_failures = 0  # give up at the first death, to keep this quick
    out = tmp_path / "out"
    out.mkdir()
    try:
        with killing(client, tmp_path), pytest.raises(DistributedError) as error:
            evaluate_distributed(*paths["sorted"], images, scheduler=local.scheduler_address,
                                 per_image_path=str(out / "per_image.parquet"), **OPTIONS)
    finally:
        local.scheduler.allowed_failures = allowed
    assert "\n" not in str(error.value) and "died" in str(error.value)
    assert os.listdir(out) == []


def test_an_unreachable_scheduler_is_a_clear_error(dataset, monkeypatch):
    paths, images, _ = dataset
    monkeypatch.setattr("pointscore.runners.CONNECT_TIMEOUT_S", 1)
    with pytest.raises(DistributedError, match="cannot reach the Dask scheduler"):
        evaluate_distributed(*paths["sorted"], scheduler="tcp://127.0.0.1:9", **OPTIONS)


def test_the_command_line_on_a_cluster(cluster, dataset, tmp_path, capsys):
    local, client = cluster
    (gt, pred), images, expected = dataset[0]["scattered"], dataset[1], dataset[2]
    pq.write_table(images, tmp_path / "images.parquet")
    out = tmp_path / "out"
    out.mkdir()
    argv = ["evaluate", "--gt", gt, "--pred", pred, "--images", str(tmp_path / "images.parquet"),
            "--normalize", "wh", "--thresholds", "4,8,16", "--device", "cpu",
            "--shard-points", "1500", "--json", str(out / "summary.json"),
            "--per-image", str(out / "per_image.parquet")]
    assert main(argv + ["--scheduler", local.scheduler_address]) == 0
    assert json.loads((out / "summary.json").read_text())["map"] == expected.summary["map"]
    assert pq.read_table(out / "per_image.parquet").equals(expected.per_image)

    for name in os.listdir(out):
        os.unlink(out / name)
    allowed = local.scheduler.allowed_failures
    local.scheduler.allowed_failures = 0
    try:
        with killing(client, tmp_path):
            assert main(argv + ["--scheduler", local.scheduler_address]) == 1
    finally:
        local.scheduler.allowed_failures = allowed
    err = [line for line in capsys.readouterr().err.strip().splitlines()
           if not line.startswith("pointscore: warning:")]  # pixel thresholds on wh
    assert len(err) == 1 and err[0].startswith("pointscore: the Dask run cannot finish")
    assert os.listdir(out) == []
    assert main(argv + ["--scheduler", "tcp://x:1", "--workers", "2"]) == 2
