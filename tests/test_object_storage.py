"""Object storage: inputs, outputs and history stores on a real S3-compatible server
(moto in server mode, started here), through pyarrow's S3 client and the endpoint in
AWS_ENDPOINT_URL, as a job on MinIO or S3 would run. A partitioned dataset on it scores
as the same dataset on disk, bit for bit."""
import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

import pointscore
from bench import data
from pointscore import history
from pointscore.cli import main

pytest.importorskip("moto.server")

BUCKET = "crowd"


@pytest.fixture(scope="module")
def s3():
    """A moto S3 server, the environment pointing at it, and a bucket."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    environment = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                   "AWS_DEFAULT_REGION": "us-east-1",
                   "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}
    saved = {name: os.environ.get(name) for name in environment}
    os.environ.update(environment)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        filesystem = pafs.S3FileSystem(endpoint_override=f"127.0.0.1:{port}", scheme="http",
                                       allow_bucket_creation=True)
        filesystem.create_dir(BUCKET)
        yield filesystem
    finally:
        server.terminate()
        server.wait()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="module")
def dataset(s3, tmp_path_factory):
    """The same crowd on disk and on S3: ground truth and predictions as datasets of
    several files, images as one file."""
    root = tmp_path_factory.mktemp("local")
    gt, pred, images = data.crowd(n_images=60, target_gt=6000, max_per_image=400, seed=2)
    for name, table in (("gt", gt), ("pred", pred)):
        ds.write_dataset(pa.table(table), root / name, format="parquet",
                         max_rows_per_file=2500, max_rows_per_group=800)
    pq.write_table(pa.table(images), root / "images.parquet")
    pafs.copy_files(str(root), f"{BUCKET}/data", source_filesystem=pafs.LocalFileSystem(),
                    destination_filesystem=s3)
    local = {name: str(root / name) for name in ("gt", "pred")}
    local["images"] = str(root / "images.parquet")
    on_s3 = {name: f"s3://{BUCKET}/data/{os.path.basename(path)}"
             for name, path in local.items()}
    return local, on_s3


OPTIONS = {"thresholds": [4.0, 8.0], "device": "cpu"}


def test_a_dataset_on_s3_scores_as_on_disk(dataset):
    local, on_s3 = dataset
    expected = pointscore.evaluate(local["gt"], local["pred"], local["images"], **OPTIONS)
    read_whole = pointscore.evaluate(on_s3["gt"], on_s3["pred"], on_s3["images"], **OPTIONS)
    streamed = pointscore.evaluate_stream(on_s3["gt"], on_s3["pred"], on_s3["images"],
                                          shard_points=2000, **OPTIONS)
    for report in (read_whole, streamed):
        assert report.summary == expected.summary
        assert report.per_image.equals(expected.per_image)


def test_the_command_reads_and_writes_s3(dataset, s3, tmp_path, capsys):
    local, on_s3 = dataset
    out = f"s3://{BUCKET}/out"
    argv = ["evaluate", "--gt", on_s3["gt"], "--pred", on_s3["pred"], "--images",
            on_s3["images"], "--thresholds", "4,8", "--device", "cpu", "--shard-points", "2000"]
    assert main([*argv, "--json", f"{out}/summary.json", "--per-image",
                 f"{out}/per_image.parquet"]) == 0
    with s3.open_input_stream(f"{BUCKET}/out/summary.json") as file:
        summary = json.loads(file.read())
    expected = pointscore.evaluate(local["gt"], local["pred"], local["images"], **OPTIONS)
    assert summary == {**expected.summary, "warnings": []}
    assert pq.read_table(f"{BUCKET}/out/per_image.parquet", filesystem=s3).equals(
        expected.per_image)
    capsys.readouterr()
    assert main([*argv[:2], f"s3://{BUCKET}/nothing.parquet", *argv[3:]]) == 2
    assert "s3://crowd/nothing.parquet: no such file or directory" in capsys.readouterr().err
    assert main([*argv, "--json", f"{on_s3['gt']}/summary.json"]) == 2  # inside an input
    assert "would write over the input --gt" in capsys.readouterr().err


def test_a_history_store_on_s3_gates_runs(dataset, s3):
    local, on_s3 = dataset
    store = f"s3://{BUCKET}/history"
    worse = pq.read_table(local["pred"]).to_pydict()
    moved = np.random.default_rng(0).random(len(worse["x"])) < 0.3
    worse["x"] = list(np.where(moved, np.array(worse["x"]) + 30, worse["x"]))
    pq.write_table(pa.table(worse), f"{BUCKET}/data/worse.parquet", filesystem=s3)
    argv = ["evaluate", "--gt", on_s3["gt"], "--images", on_s3["images"], "--thresholds",
            "4,8", "--device", "cpu", "--history", store, "--fail-if", "map drop > 0.005"]
    assert main([*argv, "--pred", on_s3["pred"], "--name", "model"]) == 0
    assert main([*argv, "--pred", f"s3://{BUCKET}/data/worse.parquet", "--name",
                 "worse"]) == 3
    runs = history.runs(store)
    assert [(r["name"], r["gate"]) for r in runs] == [("model", None), ("worse", "failed")]
    assert history.load(store, runs[0]["run_id"]).summary["map"] == runs[0]["map"]
