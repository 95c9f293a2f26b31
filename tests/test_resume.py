"""--resume: a streamed run killed after some shards goes on from the shards it kept,
and gives the summary and tables of an uninterrupted run, bit for bit; a changed input
or option is refused."""
import json
import os
import signal
import subprocess
import sys
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import pointscore
from bench import data
from pointscore import InputError, pipeline, resume
from pointscore.cli import main

SHARD_POINTS = 600


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    gt, pred, images = data.crowd(n_images=120, target_gt=9000, max_per_image=400, seed=8)
    paths = {}
    for name, table in (("gt", gt), ("pred", pred), ("images", images)):
        paths[name] = str(root / f"{name}.parquet")
        pq.write_table(pa.table(table), paths[name], row_group_size=2000)
    return paths


OPTIONS = {"thresholds": [4.0, 8.0], "match": "hungarian", "device": "cpu"}


def streamed(files, scratch, **extra):
    return pointscore.evaluate_stream(files["gt"], files["pred"], files["images"],
                                      shard_points=SHARD_POINTS, scratch_dir=str(scratch),
                                      **OPTIONS, **extra)


def test_an_interrupted_run_goes_on_from_its_kept_shards(files, tmp_path, monkeypatch):
    expected = streamed(files, tmp_path)
    scored = []
    real = pipeline.score_shard

    def failing(shard, settings):  # the run dies while scoring shard 5
        if shard.number == 5 and not scored.count("resumed"):
            raise KeyboardInterrupt
        scored.append(shard.number)
        return real(shard, settings)
    monkeypatch.setattr(pipeline, "score_shard", failing)
    with pytest.raises(KeyboardInterrupt):
        streamed(files, tmp_path, resume=True)
    (folder,) = tmp_path.glob(f"{resume.FOLDER}-*")  # one job, one folder
    assert resume.Checkpoints(str(folder)).finished() == {0, 1, 2, 3, 4}
    scored.clear()
    scored.append("resumed")
    again = streamed(files, tmp_path, resume=True)
    assert 0 not in scored and 5 in scored  # only the shards it had not kept
    assert again.summary == expected.summary
    assert again.per_image.equals(expected.per_image)
    assert not list(tmp_path.glob(f"{resume.FOLDER}-*"))  # complete: the checkpoints go


def test_a_killed_command_resumes_bit_for_bit(files, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    argv = ["evaluate", "--gt", files["gt"], "--pred", files["pred"], "--images",
            files["images"], "--thresholds", "4,8", "--match", "hungarian", "--device", "cpu",
            "--shard-points", str(SHARD_POINTS), "--scratch-dir", str(scratch), "--resume",
            "--json", str(out / "summary.json"), "--per-image", str(out / "per_image.parquet")]
    command = subprocess.Popen([sys.executable, "-m", "pointscore", *argv],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and command.poll() is None:
        folders = list(scratch.glob(f"{resume.FOLDER}-*"))
        if folders and len([n for n in os.listdir(folders[0]) if n.endswith(".npz")]) >= 3:
            break
        time.sleep(0.01)
    (folder,) = folders
    command.send_signal(signal.SIGKILL)
    command.wait()
    assert command.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert not (out / "summary.json").exists()  # nothing half-written
    kept = len([n for n in os.listdir(folder) if n.endswith(".npz")])
    assert kept >= 3
    assert main(argv) == 0
    assert not folder.exists()
    resumed = (json.loads((out / "summary.json").read_text()),
               pq.read_table(out / "per_image.parquet"))
    for name in os.listdir(out):
        os.unlink(out / name)
    assert main([a for a in argv if a != "--resume"]) == 0
    assert resumed[0] == json.loads((out / "summary.json").read_text())
    assert resumed[1].equals(pq.read_table(out / "per_image.parquet"))


def test_a_changed_input_or_option_is_refused(files, tmp_path, monkeypatch):
    def stop(shard, settings):
        raise KeyboardInterrupt
    real = pipeline.score_shard
    monkeypatch.setattr(pipeline, "score_shard", stop)
    with pytest.raises(KeyboardInterrupt):
        streamed(files, tmp_path, resume=True)
    monkeypatch.setattr(pipeline, "score_shard", real)
    with pytest.raises(InputError, match="holds a run with other scoring: remove it"):
        pointscore.evaluate_stream(files["gt"], files["pred"], files["images"],
                                   shard_points=SHARD_POINTS, scratch_dir=str(tmp_path),
                                   resume=True, **{**OPTIONS, "match": "greedy"})
    os.utime(files["pred"])  # touched: perhaps rewritten
    with pytest.raises(InputError, match="holds a run with other input pred"):
        streamed(files, tmp_path, resume=True)
    with pytest.raises(InputError, match="resume needs inputs that are files"):
        pointscore.evaluate_stream(pq.read_table(files["gt"]), files["pred"], resume=True,
                                   **OPTIONS)


def test_jobs_sharing_a_scratch_directory_keep_apart_and_bad_inputs_leave_nothing(
        files, tmp_path):
    with pytest.raises(InputError, match="no such file"):
        pointscore.evaluate_stream(files["gt"], str(tmp_path / "missing.parquet"),
                                   scratch_dir=str(tmp_path), resume=True, **OPTIONS)
    assert not list(tmp_path.glob(f"{resume.FOLDER}-*"))  # checked inputs first
    first = resume.Checkpoints.open(str(tmp_path), {"gt": files["gt"], "pred": files["pred"]},
                                    {"match": "greedy"}, SHARD_POINTS, False)
    other = resume.Checkpoints.open(str(tmp_path), {"gt": files["gt"], "pred": files["images"]},
                                    {"match": "greedy"}, SHARD_POINTS, False)
    assert first.folder != other.folder
