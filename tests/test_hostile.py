"""Hostile inputs, as a leaderboard gets them from strangers: every one ends with its exit
status (docs/metrics.md, section 8), one short, printable line per problem on stderr and no
traceback, nothing left behind (no temporary files, scratch directories emptied) and
nothing else harmed (devices stay devices, links stay links, inputs stay as they were).

Each test builds its own hostile files under tmp_path. Runs that could crash by a signal,
hang or need a real signal run in a subprocess; the rest run ``pointscore.cli.main`` in
process."""
import gzip
import json
import os
import re
import signal
import socketserver
import stat
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bench.hostile_files import constant_parquet, mat_bomb
from pointscore.cli import main

GT = {"image_id": [1, 1, 2, 3], "x": [0.0, 10.0, 5.0, 1.0], "y": [0.0, 10.0, 5.0, 1.0]}
PRED = {"image_id": [1, 2, 2, 3], "x": [0.25, 5.0, 50.0, 1.0], "y": [0.0, 5.5, 5.0, 1.75],
        "score": [0.875, 0.75, 0.25, 0.5]}
IMAGES = {"image_id": [1, 2, 3]}
POINTSCORE = [sys.executable, "-m", "pointscore"]
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
SHORT = 200     # a problem line, paths under tmp_path not counted
LONGEST = 300   # any line, whatever it quotes


# ---- helpers --------------------------------------------------------------------------------

def write(path, data, **options):
    """A dict as a Parquet file, text or bytes as they are; returns the path as text."""
    path = Path(path)
    if isinstance(data, bytes):
        path.write_bytes(data)
    elif isinstance(data, str):
        path.write_text(data)
    else:
        pq.write_table(data if isinstance(data, pa.Table) else pa.table(data), path, **options)
    return str(path)


@pytest.fixture
def files(tmp_path):
    return {"gt": write(tmp_path / "gt.parquet", GT),
            "pred": write(tmp_path / "pred.parquet", PRED),
            "images": write(tmp_path / "images.parquet", IMAGES)}


def cli(capsys, *argv):
    """``pointscore ARGV`` in process: (exit status, stdout, stderr)."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def sub(*argv, timeout=60, **options):
    """``python -m pointscore ARGV`` in a process of its own: a CompletedProcess with text
    (undecodable bytes escaped); a run past ``timeout`` fails the test, not hangs it."""
    args = [a if isinstance(a, bytes) else str(a) for a in argv]
    return subprocess.run([*POINTSCORE, *args], capture_output=True, text=True, check=False,
                          errors="backslashreplace", timeout=timeout, **options)


def problem_lines(err, n=1, *fragments, base=None, limit=SHORT):
    """stderr as exactly ``n`` lines 'pointscore: ...', short (paths under ``base`` not
    counted), without control characters, traceback or warning text; the first line holds
    every fragment."""
    shown = err if len(err) < 2000 else err[:1000] + " ... " + err[-1000:]
    assert "Traceback" not in err, shown
    assert "Warning" not in err and "warnings.warn" not in err, shown
    lines = err.splitlines()
    assert len(lines) == n, shown
    for line in lines:
        assert line.startswith("pointscore: "), shown
        assert not CONTROL.search(line), ascii(line[:500])
        assert len(line) <= LONGEST, f"{len(line)} characters: {line[:500]}..."
        bare = line.replace(str(base), "<tmp>") if base else line
        assert len(bare) <= limit, f"{len(bare)} characters: {line[:500]}..."
    for fragment in fragments:
        assert fragment in lines[0], shown
    return lines


def assert_no_signal(proc):
    assert proc.returncode >= 0, f"killed by signal {-proc.returncode}: {proc.stderr[-2000:]}"


def leftovers(*roots):
    """Temporary outputs left anywhere under the roots."""
    return [str(p) for root in roots for p in Path(root).rglob(".pointscore-*")]


def snapshot(root):
    """Every file under root with its bytes: to show that nothing changed."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(Path(root).rglob("*"))}


def strict_json(text):
    """JSON with NaN and infinities refused."""
    def refuse(constant):
        raise AssertionError(f"{constant} in JSON")
    return json.loads(text, parse_constant=refuse)


def nested(rows):
    """A nested-layout table: {image_id: [(x, y, score), ...]}."""
    point = pa.struct([("x", pa.float64()), ("y", pa.float64()), ("score", pa.float64())])
    return pa.table({
        "image_id": pa.array(list(rows), pa.int64()),
        "points": pa.array([[{"x": x, "y": y, "score": s} for x, y, s in points]
                            for points in rows.values()], pa.list_(point))})


# ---- 1. a corrupt Arrow IPC file ----------------------------------------------------------

@pytest.mark.parametrize("kind, suffix, offset", [("file", ".arrow", 0x7FFF0000),
                                                  ("file", ".feather", -8),
                                                  ("stream", ".ipc", 0x7FFF0000)])
def test_corrupt_arrow_string_offsets_exit_2_without_a_crash(kind, suffix, offset, tmp_path):
    ids = ["img-a", "img-b", "img-c", "img-d"]
    gt = write(tmp_path / "gt.parquet", {"image_id": ids, "x": [1.0] * 4, "y": [1.0] * 4})
    table = pa.table({"image_id": ids, "x": [1.0, 2.0, 3.0, 4.0], "y": [1.0] * 4,
                      "score": [0.5] * 4})
    pred = tmp_path / f"pred{suffix}"
    opener = pa.ipc.new_file if kind == "file" else pa.ipc.new_stream
    with opener(str(pred), table.schema) as writer:  # uncompressed: the offsets lie bare
        writer.write_table(table)
    data = bytearray(pred.read_bytes())
    offsets = struct.pack("<5i", 0, 5, 10, 15, 20)
    at = data.find(offsets)
    assert at >= 0 and data.find(offsets, at + 1) < 0
    data[at + 8:at + 12] = struct.pack("<i", offset)  # the third string far out of bounds
    pred.write_bytes(bytes(data))
    proc = sub("evaluate", "--device", "cpu", "--gt", gt, "--pred", pred, timeout=60)
    assert_no_signal(proc)
    assert (proc.returncode, proc.stdout) == (2, ""), proc.stderr[-2000:]
    problem_lines(proc.stderr, 1, str(pred), base=tmp_path)


# ---- 2. a point count beyond reason --------------------------------------------------------

@pytest.mark.parametrize("role", ["pred", "gt"])
def test_nwpu_txt_with_a_giant_point_count_exits_2(role, tmp_path):
    # 3689348814741910324 * 5 wraps around int64 to 4: "count * 5 numbers" looks right
    source = write(tmp_path / "pred.txt", "1 3689348814741910324 1 2 3 4\n2 1 5 6\n"
                   if role == "pred" else "1 3689348814741910324 1 2 3 4\n")
    out = tmp_path / "out.parquet"
    proc = sub("convert", "--from", "nwpu-txt", "--role", role, source, "--out", out,
               timeout=60)
    assert_no_signal(proc)
    assert proc.returncode == 2, proc.stderr[-2000:]
    problem_lines(proc.stderr, 1, str(source), base=tmp_path)
    assert not out.exists() and not leftovers(tmp_path)


# ---- 3. the untrusted mode and the images table ----------------------------------------------

def test_untrusted_needs_images(files, capsys):
    code, out, err = cli(capsys, "evaluate", "--device", "cpu", "--untrusted",
                         "--gt", files["gt"], "--pred", files["pred"])
    assert (code, out) == (2, ""), err[-2000:]
    problem_lines(err, 1, "--images")


@pytest.mark.parametrize("where", ["the path", "inside a dataset directory"])
def test_untrusted_follows_no_link_and_quotes_no_other_file(where, files, tmp_path, capsys):
    secret = write(tmp_path / "secret.csv", "image_id,x,y\nTOPSECRET,not-a-number,0\n")
    if where == "the path":
        pred = tmp_path / "sub.csv"
        pred.symlink_to(secret)
    else:
        pred = tmp_path / "sub"
        pred.mkdir()
        write(pred / "part-0.parquet", PRED)
        (pred / "part-1.parquet").symlink_to(secret)
    code, out, err = cli(capsys, "evaluate", "--device", "cpu", "--untrusted", "--gt",
                         files["gt"], "--pred", pred, "--images", files["images"])
    assert (code, out) == (2, ""), err[-2000:]
    problem_lines(err, 1, "link", base=tmp_path)
    assert "TOPSECRET" not in err and "not-a-number" not in err


@pytest.mark.parametrize("untrusted", [[], ["--untrusted"]])
@pytest.mark.parametrize("layout", ["nested", "counts"])
def test_an_empty_extra_image_of_the_submission_is_refused(layout, untrusted, files, tmp_path,
                                                           capsys):
    if layout == "nested":
        table = nested({1: [(0.25, 0.0, 0.875)], 2: [(5.0, 5.5, 0.75)], 3: [(1.0, 1.75, 0.5)],
                        99: []})
    else:
        table = pa.table({"image_id": [1, 2, 3, 99], "count": [1, 1, 1, 0]})
    pred = write(tmp_path / "sub.parquet", table)
    code, out, err = cli(capsys, "evaluate", "--device", "cpu", *untrusted, "--gt", files["gt"],
                         "--pred", pred, "--images", files["images"], "--json", "-")
    assert (code, out) == (2, ""), err[-2000:]
    problem_lines(err, 1, pred, base=tmp_path)


@pytest.mark.parametrize("layout", ["nested", "counts", "long"])
def test_a_valid_submission_counts_the_images_of_the_images_table(layout, files, tmp_path,
                                                                  capsys):
    images = write(tmp_path / "all_images.parquet", {"image_id": [1, 2, 3, 4, 5]})
    if layout == "nested":
        table = nested({1: [(0.25, 0.0, 0.875)], 2: [(5.0, 5.5, 0.75)], 4: []})
    elif layout == "counts":
        table = pa.table({"image_id": [1, 2, 4], "count": [1, 1, 0]})
    else:
        table = pa.table(PRED)
    pred = write(tmp_path / "sub.parquet", table)
    code, out, err = cli(capsys, "evaluate", "--device", "cpu", "--untrusted", "--gt",
                         files["gt"], "--pred", pred, "--images", images, "--json", "-")
    assert code == 0, err
    assert strict_json(out)["images"] == 5


# ---- 4. counts are bounded ---------------------------------------------------------------

def test_a_count_of_1e308_exits_2(files, tmp_path, capsys):
    pred = write(tmp_path / "counts.parquet", {"image_id": [1, 2, 3], "count": [1.0, 1e308, 1.0]})
    code, out, err = cli(capsys, "evaluate", "--device", "cpu", "--gt", files["gt"],
                         "--pred", pred, "--json", "-")
    assert (code, out) == (2, ""), err[-2000:]
    problem_lines(err, 1, pred, "'count'", base=tmp_path)


def test_compare_with_a_count_of_1e308_writes_no_nan(files, tmp_path, capsys):
    bad = write(tmp_path / "bad.parquet", {"image_id": [1, 2, 3], "count": [1.0, 1e308, 1.0]})
    big = write(tmp_path / "big.parquet", {"image_id": [1, 2, 3], "count": [1e9, 0.0, 1e9]})
    good = write(tmp_path / "good.parquet", {"image_id": [1, 2, 3], "count": [2, 1, 1]})
    out_json = tmp_path / "compare.json"
    code, out, err = cli(capsys, "compare", "--device", "cpu", "--gt", files["gt"],
                         "--images", files["images"],
                         "--pred", good, big, bad, "--bootstrap", "0", "--rank-by", "mae",
                         "--json", out_json)
    assert code == 4, err
    problem_lines(err, 1, "bad", base=tmp_path)
    text = out_json.read_text()
    assert "NaN" not in text and "Infinity" not in text
    strict_json(text)
    code, out, err = cli(capsys, "evaluate", "--device", "cpu", "--gt", files["gt"],
                         "--pred", big, "--json", "-")
    assert code == 0, err
    assert "NaN" not in out and "Infinity" not in out
    strict_json(out)


# ---- 5. outputs that are devices and links ---------------------------------------------------

def test_json_to_dev_null_keeps_it_a_device(files, capsys):
    if not os.path.exists("/dev/null"):
        pytest.skip("no /dev/null")
    code, _, err = cli(capsys, "evaluate", "--device", "cpu", "--gt", files["gt"],
                         "--pred", files["pred"], "--json", "/dev/null")
    assert code == 0, err
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_json_through_a_link_writes_the_file_and_keeps_the_link(files, tmp_path, capsys):
    target = tmp_path / "target.json"
    target.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    code, _, err = cli(capsys, "evaluate", "--device", "cpu", "--gt", files["gt"],
                         "--pred", files["pred"], "--json", link)
    assert code == 0, err
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert strict_json(target.read_text())["images"] == 3
    assert not leftovers(tmp_path)


@pytest.mark.parametrize("option", ["--json", "--per-image"])
def test_writing_to_dev_full_exits_1_with_one_line(option, files, tmp_path, capsys):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    code, out, err = cli(capsys, "evaluate", "--device", "cpu", "--gt", files["gt"],
                         "--images", files["images"], "--pred", files["pred"], option,
                         "/dev/full")
    assert (code, out) == (1, ""), err
    problem_lines(err, 1, "/dev/full")
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)
    assert not leftovers(tmp_path)


# ---- 6. outputs naming inputs ---------------------------------------------------------------

@pytest.mark.parametrize("which", ["gt", "pred", "inside the gt directory"])
def test_per_image_over_an_input_exits_2_before_any_work(which, tmp_path, capsys):
    gt_dir = tmp_path / "gt"
    gt_dir.mkdir()
    write(gt_dir / "part-0.parquet", GT)
    pred = write(tmp_path / "pred.parquet", PRED)
    target = {"gt": gt_dir / "part-0.parquet", "pred": pred,
              "inside the gt directory": gt_dir / "per_image.parquet"}[which]
    gt = str(gt_dir / "part-0.parquet") if which == "gt" else str(gt_dir)
    before = snapshot(tmp_path)
    start = time.perf_counter()
    code, out, err = cli(capsys, "evaluate", "--device", "cpu", "--gt", gt, "--pred", pred,
                         "--per-image", target)
    assert (code, out) == (2, ""), err[-2000:]
    problem_lines(err, 1, "--per-image", base=tmp_path)
    assert snapshot(tmp_path) == before
    assert time.perf_counter() - start < 5


@pytest.mark.parametrize("how", ["same file", "inside the input directory", "a link to it"])
def test_convert_out_over_an_input_exits_2(how, tmp_path, capsys):
    source_dir = tmp_path / "src"
    source_dir.mkdir()
    # a CSV named .parquet: a file given by name is read in the --from format
    source = write(source_dir / "points.parquet", "image_id,x,y\n1,0,0\n2,1,1\n")
    link = tmp_path / "link.parquet"
    link.symlink_to(source)
    given = source_dir if how == "inside the input directory" else source
    out = {"same file": source, "inside the input directory": source_dir / "out.parquet",
           "a link to it": link}[how]
    before = snapshot(tmp_path)
    code, _, err = cli(capsys, "convert", "--from", "csv", given, "--out", out)
    assert code == 2, err
    problem_lines(err, 1, "--out", base=tmp_path)
    assert snapshot(tmp_path) == before and link.is_symlink()


# ---- 7. a report directory that is not a report ----------------------------------------------

def test_report_where_index_html_is_a_directory_exits_2_and_deletes_nothing(files, tmp_path,
                                                                         capsys):
    report = tmp_path / "report"
    (report / "index.html").mkdir(parents=True)
    (report / "index.html" / "precious.txt").write_text("keep me")
    code, _, err = cli(capsys, "evaluate", "--device", "cpu", "--gt", files["gt"],
                         "--pred", files["pred"], "--report", report)
    assert code == 2, err
    problem_lines(err, 1, "--report", base=tmp_path)
    assert (report / "index.html" / "precious.txt").read_text() == "keep me"
    assert os.listdir(report) == ["index.html"]


# ---- 8. SIGTERM and SIGHUP clean up ----------------------------------------------------------

@pytest.fixture(scope="module")
def unsorted_crowd(tmp_path_factory):
    """About 400k points (GT and predictions) in Parquet files whose rows are shuffled,
    so that streaming partitions them under the scratch directory first."""
    from bench.data import crowd
    gt, pred, images = crowd(n_images=400, target_gt=200_000, max_per_image=2_000, seed=3)
    root = tmp_path_factory.mktemp("crowd")
    rng = np.random.default_rng(0)
    paths = {}
    for name, table in (("gt", gt), ("pred", pred)):
        order = rng.permutation(len(table["image_id"]))
        paths[name] = write(root / f"{name}.parquet", {k: np.asarray(v)[order]
                                                       for k, v in table.items()},
                            row_group_size=50_000)
    paths["images"] = write(root / "images.parquet", images)
    return paths


def _partitions(scratch):
    """Files under the scratch directory's pointscore-* directories."""
    return [f for p in scratch.glob("pointscore-*") for f in p.rglob("*") if f.is_file()]


@pytest.mark.parametrize("signum, when", [
    (signal.SIGTERM, "as the scratch directory appears"),   # the narrowest window
    (signal.SIGTERM, "while partitioning"),
    (signal.SIGHUP, "while partitioning")])
def test_a_signal_during_a_streamed_run_cleans_up(signum, when, unsorted_crowd, tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    outdir = tmp_path / "out"
    outdir.mkdir()
    argv = [*POINTSCORE, "evaluate", "--device", "cpu", "--gt", unsorted_crowd["gt"],
            "--pred", unsorted_crowd["pred"], "--images", unsorted_crowd["images"],
            "--shard-points", "20000", "--scratch-dir", str(scratch),
            "--per-image", str(outdir / "per_image.parquet"), "--json", str(outdir / "out.json")]
    started = (lambda: any(scratch.glob("pointscore-*"))) if when.startswith("as") else \
        (lambda: bool(_partitions(scratch)))
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not started():
            assert proc.poll() is None, f"finished before the signal: {proc.returncode}"
            assert time.monotonic() < deadline, "no scratch files within 60 s"
            time.sleep(0.002)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 128 + signum, err[-2000:]
    problem_lines(err, 1, signal.Signals(signum).name, base=tmp_path)
    assert os.listdir(outdir) == []
    assert os.listdir(scratch) == []


# ---- 9. classes multiplying with images -------------------------------------------------------

@pytest.fixture
def many_classes(tmp_path):
    """2,000 images with one GT point of class 0 each; the submission has those points and
    one point of each of 300 classes the GT lacks, spread over the images."""
    n_images, n_classes = 2_000, 300
    ids = np.arange(n_images)
    gt = write(tmp_path / "gt.parquet", {"image_id": ids, "x": ids * 1.0, "y": ids * 1.0,
                                         "class": np.zeros(n_images, np.int64)})
    extra = np.arange(n_classes)
    pred = write(tmp_path / "pred.parquet", {
        "image_id": np.concatenate([ids, extra * 6]), "x": np.concatenate([ids, extra]) * 1.0,
        "y": np.concatenate([ids, extra]) * 1.0, "score": np.full(n_images + n_classes, 0.5),
        "class": np.concatenate([np.zeros(n_images, np.int64), extra + 1])})
    images = write(tmp_path / "images.parquet", {"image_id": ids})
    return gt, pred, images, n_images + n_classes


def test_untrusted_refuses_classes_the_ground_truth_lacks(many_classes, tmp_path, capsys):
    gt, pred, images, _ = many_classes
    code, out, err = cli(capsys, "evaluate", "--device", "cpu", "--untrusted", "--gt", gt,
                         "--pred", pred, "--images", images, "--json", "-")
    assert (code, out) == (2, ""), err[-2000:]
    problem_lines(err, 1, "class", base=tmp_path)


def test_new_classes_grow_the_per_image_table_with_points_not_images_x_classes(many_classes,
                                                                             tmp_path, capsys):
    gt, pred, images, n_points = many_classes
    per_image = tmp_path / "per_image.parquet"
    start = time.perf_counter()
    code, out, err = cli(capsys, "evaluate", "--device", "cpu", "--gt", gt, "--pred", pred,
                         "--images", images, "--per-image", per_image, "--json", "-")
    assert code == 0, err
    assert time.perf_counter() - start < 60   # a JIT compile included
    assert pq.read_metadata(per_image).num_rows <= n_points + 10
    assert strict_json(out)["images"] == 2_000


# ---- 10. decompression bombs ------------------------------------------------------------------

def test_mat_bomb_helper_writes_a_file_scipy_reads(tmp_path):
    import scipy.io
    path = mat_bomb(tmp_path / "small.mat", 1 << 21)
    points = scipy.io.loadmat(path)["annPoints"]
    assert points.shape == (1 << 21, 2) and not points.any()


def test_parquet_of_60_million_constant_rows_exits_2_quickly(files, tmp_path):
    # constant null columns: written in a fraction of a second, 60 M rows in 300 kB; the
    # limit is found in the metadata before a value is read
    n, groups = 2_000_000, 30
    bomb = Path(constant_parquet(tmp_path / "bomb.parquet", n, groups))
    assert bomb.stat().st_size < 5_000_000 and pq.read_metadata(bomb).num_rows == n * groups
    start = time.monotonic()
    proc = sub("evaluate", "--device", "cpu", "--untrusted", "--gt", files["gt"],
               "--pred", bomb, "--images", files["images"], timeout=120)
    assert_no_signal(proc)
    assert proc.returncode == 2, proc.stderr[-2000:]
    problem_lines(proc.stderr, 1, "--max-points", base=tmp_path)
    assert time.monotonic() - start < 15


def test_nested_parquet_of_few_rows_and_many_points_exits_2(files, tmp_path, capsys):
    table = nested({1: [(0.0, 0.0, 0.5)] * 3_000, 2: [(1.0, 1.0, 0.5)] * 3_000,
                    3: [(2.0, 2.0, 0.5)] * 3_000})
    bomb = write(tmp_path / "nested.parquet", table)
    start = time.monotonic()
    code, out, err = cli(capsys, "evaluate", "--device", "cpu", "--untrusted", "--max-points",
                         "5000", "--gt", files["gt"], "--pred", bomb, "--images", files["images"])
    assert (code, out) == (2, ""), err[-2000:]
    problem_lines(err, 1, "--max-points", base=tmp_path)
    assert time.monotonic() - start < 5


def test_a_big_file_with_a_bad_row_is_named_a_row_group_at_a_time(files, tmp_path, capsys,
                                                                  monkeypatch):
    # naming the rows of a file with problems reads no more than one row group of it
    monkeypatch.setattr("pointscore.parquet.WHOLE_FILE_POINTS", 10)
    table = nested({1: [(0.0, 0.0, 0.5)] * 8, 2: [(1.0, 1.0, 0.5)] * 8,
                    3: [(2.0, 2.0, 0.5)] * 8, 7: [(3.0, 3.0, 0.5)]})
    pred = write(tmp_path / "nested.parquet", table, row_group_size=2)
    code, out, err = cli(capsys, "evaluate", "--device", "cpu", "--shard-points", "4",
                         "--gt", files["gt"], "--pred", pred, "--images", files["images"])
    assert (code, out) == (2, ""), err[-2000:]
    problem_lines(err, 1, f"{pred}: row group 1 (its rows from 0): column 'image_id' has 1 "
                  "ids not in the images table (row 1 (7))", base=tmp_path)


def test_csv_gz_of_more_rows_than_allowed_exits_2(files, tmp_path, capsys):
    bomb = tmp_path / "pred.csv.gz"
    with gzip.open(bomb, "wb", compresslevel=9) as out:
        out.write(b"image_id,x,y,score\n" + b"1,0,0,0.5\n" * 300_000)
    assert bomb.stat().st_size < 100_000
    start = time.monotonic()
    code, out, err = cli(capsys, "evaluate", "--device", "cpu", "--untrusted", "--max-points",
                         "100000", "--gt", files["gt"], "--pred", bomb, "--images",
                         files["images"])
    assert (code, out) == (2, ""), err[-2000:]
    problem_lines(err, 1, "--max-points", base=tmp_path)
    assert time.monotonic() - start < 5


@pytest.mark.parametrize("minor", [0, 7])
def test_mat_small_compressed_and_huge_decompressed_exits_2(minor, tmp_path):
    bomb = mat_bomb(tmp_path / "GT_IMG_1.mat", 1 << 26)   # 1 MiB holding 1 GiB of points
    with open(bomb, "r+b") as file:  # scipy reads any minor version of v5 as v5
        file.seek(124)
        file.write(bytes([minor]))
    assert os.path.getsize(bomb) < 2_000_000
    out = tmp_path / "out.parquet"
    start = time.monotonic()
    proc = sub("convert", "--from", "mat", bomb, "--out", out, timeout=120)
    assert_no_signal(proc)
    assert proc.returncode == 2, f"{proc.returncode}: {proc.stdout[-500:]} {proc.stderr[-2000:]}"
    [line] = problem_lines(proc.stderr, 1, bomb, base=tmp_path)
    assert "usage error" not in line
    assert not out.exists() and not leftovers(tmp_path)
    assert time.monotonic() - start < 15


def scipy_crasher(path):
    """A 248-byte MATLAB v5 file whose matrix data has the type 0x100: scipy 1.17's C
    reader (read_var_array) takes it for an index into its table of types and reads
    memory it does not own (a segmentation fault, nearly always)."""
    def padded(data):
        return data + bytes(-len(data) % 8)
    name = b"annPoints"
    body = (struct.pack("<IIII", 6, 8, 6, 0) + struct.pack("<IIii", 5, 8, 3, 2)
            + struct.pack("<II", 1, len(name)) + padded(name)
            + struct.pack("<II", 0x100, 48) + struct.pack("<6d", 10, 30, 7, 20, 40, 7))
    header = b"MATLAB 5.0 MAT-file".ljust(116) + bytes(8) + struct.pack("<H", 0x0100) + b"IM"
    Path(path).write_bytes(header + struct.pack("<II", 14, len(body)) + body)
    return str(path)


def test_mat_files_that_crash_scipy_exit_2_and_the_other_files_are_read(tmp_path):
    import scipy.io
    crashers = [scipy_crasher(tmp_path / f"img_{i:04d}_ann.mat") for i in range(1, 4)]
    valid = tmp_path / "img_0100_ann.mat"
    scipy.io.savemat(valid, {"annPoints": np.array([[1.0, 2.0]])})
    out = tmp_path / "out.parquet"
    proc = sub("convert", "--from", "mat", crashers[0], valid, *crashers[1:], "--out", out)
    assert_no_signal(proc)
    assert proc.returncode == 2, proc.stderr[-2000:]
    # one line per crasher, read on by a new reader after each crash; none for the valid
    # file. (scipy reads memory it does not own: it almost always dies, but may raise.)
    lines = problem_lines(proc.stderr, 3, crashers[0], base=tmp_path)
    assert all(path in line and "cannot read as a .mat file" in line
               for path, line in zip(crashers, lines, strict=True))
    assert not out.exists() and not leftovers(tmp_path)


def test_a_reader_that_dies_is_reported_and_replaced(tmp_path):
    import scipy.io

    from pointscore.convert import mat
    valid = tmp_path / "img_0001_ann.mat"
    scipy.io.savemat(valid, {"annPoints": np.array([[1.0, 2.0]])})
    reader = mat._Reader()
    try:
        array, messages = reader(valid, None)
        assert array.tolist() == [[1.0, 2.0]] and messages == []
        reader.child.kill()  # as a segmentation fault would end it
        reader.child.wait()
        assert reader(valid, None) == (None, [mat.CRASHED])
        array, messages = reader(valid, None)  # a new reader
        assert array.tolist() == [[1.0, 2.0]] and messages == []
    finally:
        reader.stop()


# ---- 11. what would hang or exhaust a machine ---------------------------------------------------

@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
@pytest.mark.parametrize("role, untrusted", [("gt", []), ("pred", ["--untrusted"])])
def test_a_fifo_input_exits_2_without_hanging(role, untrusted, suffix, files, tmp_path):
    fifo = tmp_path / f"{role}_fifo{suffix}"
    os.mkfifo(fifo)
    paths = {**files, role: str(fifo)}
    proc = sub("evaluate", "--device", "cpu", *untrusted, "--gt", paths["gt"],
               "--pred", paths["pred"], "--images", files["images"], timeout=30)
    assert_no_signal(proc)
    assert proc.returncode == 2, proc.stderr[-2000:]
    problem_lines(proc.stderr, 1, str(fifo), base=tmp_path)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_a_thousand_workers_exit_2(files, tmp_path):
    proc = sub("evaluate", "--device", "cpu", "--gt", files["gt"], "--pred", files["pred"],
               "--workers", "1000", timeout=60)
    assert_no_signal(proc)
    assert proc.returncode == 2, proc.stderr[-2000:]
    problem_lines(proc.stderr, 1, "--workers", base=tmp_path)


def test_more_row_groups_than_allowed_exit_2(files, tmp_path, capsys):
    pred = write(tmp_path / "groups.parquet",
                 {"image_id": [1, 2, 3] * 10, "x": [0.0] * 30, "y": [0.0] * 30}, row_group_size=1)
    assert pq.read_metadata(pred).num_row_groups == 30
    code, out, err = cli(capsys, "evaluate", "--device", "cpu", "--max-row-groups", "5",
                         "--gt", files["gt"], "--pred", pred)
    assert (code, out) == (2, ""), err[-2000:]
    problem_lines(err, 1, "--max-row-groups", base=tmp_path)


def test_a_parquet_footer_too_large_for_the_row_groups_allowed_is_not_parsed(files, tmp_path,
                                                                             capsys):
    pred = write(tmp_path / "groups.parquet", {"image_id": [1, 2, 3] * 100,
                                               "x": [0.0] * 300, "y": [0.0] * 300},
                 row_group_size=1)
    code, out, err = cli(capsys, "evaluate", "--device", "cpu", "--max-row-groups", "20",
                         "--gt", files["gt"], "--pred", pred)
    assert (code, out) == (2, ""), err[-2000:]
    problem_lines(err, 1, f"{pred}: a footer of", "--max-row-groups 20", base=tmp_path)


def test_ten_million_bootstrap_resamples_exit_2(files, tmp_path):
    start = time.monotonic()
    proc = sub("compare", "--device", "cpu", "--gt", files["gt"], "--pred", files["pred"],
               files["pred"], "--names", "a,b", "--bootstrap", "10000000", timeout=60)
    assert_no_signal(proc)
    assert (proc.returncode, proc.stdout) == (2, ""), proc.stderr[-2000:]
    problem_lines(proc.stderr, 1, "--bootstrap", base=tmp_path)
    assert time.monotonic() - start < 30


def test_ten_thousand_and_one_thresholds_exit_2(files, capsys):
    thresholds = ",".join(f"{0.001 * (i + 1):.3f}" for i in range(10_001))
    code, out, err = cli(capsys, "evaluate", "--device", "cpu", "--gt", files["gt"],
                         "--pred", files["pred"], "--thresholds", thresholds)
    assert (code, out) == (2, ""), err[-2000:]
    problem_lines(err, 1, "--thresholds", limit=LONGEST)


@pytest.mark.parametrize("flag, bound", [("--max-pairs", 1_000), ("--max-component", 1_000)])
def test_hungarian_past_its_budgets_exits_2_naming_the_flag(flag, bound, tmp_path, capsys):
    # 60 predictions on 60 coincident gts: 3,600 pairs, one component of 3,600 cells
    n = 60
    gt = write(tmp_path / "gt.parquet", {"image_id": np.zeros(n, np.int64),
                                         "x": np.zeros(n), "y": np.zeros(n)})
    pred = write(tmp_path / "pred.parquet", {"image_id": np.zeros(n, np.int64),
                                             "x": np.zeros(n), "y": np.zeros(n),
                                             "score": np.linspace(0, 1, n)})
    argv = ["evaluate", "--device", "cpu", "--match", "hungarian", "--thresholds", "1",
            "--gt", gt, "--pred", pred, "--json", "-"]
    code, out, err = cli(capsys, *argv, flag, str(bound))
    assert (code, out) == (2, ""), err[-2000:]
    problem_lines(err, 1, flag, "3,600")
    code, out, err = cli(capsys, *argv)
    assert code == 0 and strict_json(out)["micro"]["tp"] == [n], err


def test_kuhn_past_its_search_budget_exits_2_naming_the_flag(tmp_path, capsys):
    """Kuhn's augmenting paths (the protocols' matching) look at pairs again and again
    where points pile up: 300 predictions on 300 coincident gts take millions of steps,
    refused past --max-search; the untrusted default is far above real crowds' needs
    (NWPU-Crowd's densest validation image: 28,716 at sigma_l)."""
    n = 300
    gt = write(tmp_path / "gt.parquet", {"image_id": np.zeros(n, np.int64),
                                         "x": np.zeros(n), "y": np.zeros(n)})
    pred = write(tmp_path / "pred.parquet", {"image_id": np.zeros(n, np.int64),
                                             "x": np.zeros(n), "y": np.zeros(n)})
    argv = ["evaluate", "--device", "cpu", "--match", "kuhn", "--thresholds", "1",
            "--gt", gt, "--pred", pred, "--json", "-"]
    code, out, err = cli(capsys, *argv, "--max-search", "1000000")
    assert (code, out) == (2, ""), err[-2000:]
    problem_lines(err, 1, "--max-search", "augmenting-path searches", "(kuhn)")
    code, out, err = cli(capsys, *argv)
    assert code == 0 and strict_json(out)["micro"]["tp"] == [n], err


# ---- 12. reports ------------------------------------------------------------------------------

def test_compare_without_bootstrap_writes_a_report(files, tmp_path, capsys):
    report = tmp_path / "report"
    code, _, err = cli(capsys, "compare", "--device", "cpu", "--gt", files["gt"],
                       "--images", files["images"],
                       "--pred", files["pred"], files["pred"], "--names", "a,b",
                         "--bootstrap", "0", "--report", report)
    assert code == 0, err
    assert err == ""
    assert (report / "index.html").stat().st_size > 1000


def test_dollar_signs_in_names_are_text_in_the_report(files, tmp_path, capsys):
    import html
    report = tmp_path / "report"
    # matplotlib reads $...$ as mathematics: a balanced and an unbalanced one
    code, _, err = cli(capsys, "compare", "--device", "cpu", "--gt", files["gt"],
                         "--pred", files["pred"], files["pred"], "--names", "a$b$,x$y",
                         "--bootstrap", "10", "--report", report)
    assert code == 0, err
    page = html.unescape((report / "index.html").read_text())
    assert "a$b$" in page and "x$y" in page


# ---- 13. bad input is status 2, not 1 ---------------------------------------------------------

def test_csv_with_a_repeated_column_name_exits_2(files, tmp_path, capsys):
    gt = write(tmp_path / "gt.csv", "image_id,x,y,x\n1,0,0,5\n2,1,1,6\n")
    code, out, err = cli(capsys, "evaluate", "--device", "cpu", "--gt", gt,
                         "--pred", files["pred"])
    assert (code, out) == (2, ""), err[-2000:]
    problem_lines(err, 1, gt, base=tmp_path)


@pytest.mark.parametrize("form", ["file", "dataset directory"])
def test_parquet_with_a_repeated_column_name_says_so(form, files, tmp_path, capsys):
    table = pa.Table.from_arrays([pa.array([1, 2]), *[pa.array([0.0, 1.0])] * 3],
                                 names=["image_id", "x", "y", "x"])
    gt = tmp_path / "gt.parquet" if form == "file" else tmp_path / "gt" / "part.parquet"
    gt.parent.mkdir(exist_ok=True)
    write(gt, table)
    name = gt if form == "file" else gt.parent
    code, out, err = cli(capsys, "evaluate", "--device", "cpu", "--gt", name,
                         "--pred", files["pred"])
    assert (code, out) == (2, ""), err[-2000:]
    problem_lines(err, 1, str(name), "column names repeat", base=tmp_path)


HUGE_INT = "9" * 5_000

JSON_CASES = {
    "coco float beyond range": (
        "coco", "gt.json",
        ('{"images": [{"id": 1, "width": 100, "height": 100}], "annotations": '
         '[{"id": 1, "image_id": 1, "category_id": 1, "keypoints": [1e400, 5, 2]}]}')),
    "coco id beyond int64": (
        "coco", "gt.json",
        ('{"images": [{"id": 184467440737095516160}], "annotations": '
         '[{"id": 1, "image_id": 184467440737095516160, "category_id": 1, '
         '"keypoints": [1, 5, 2]}]}')),
    "coco integer of 5000 digits": (
        "coco", "gt.json",
        '{"images": [{"id": 1}], "annotations": '
        '[{"id": 1, "image_id": 1, "category_id": 1, "keypoints": [' + HUGE_INT + ', 5, 2]}]}'),
    "nwpu float beyond range": (
        "nwpu-json", "1.json", '{"img_id": "1", "human_num": 1, "points": [[1e400, 5]]}'),
    "nwpu id beyond int64": (
        "nwpu-json", "184467440737095516160.json",
        '{"img_id": "1", "human_num": 1, "points": [[1, 5]]}'),
    "nwpu count beyond int64": (
        "nwpu-json", "1.json",
        '{"img_id": "1", "human_num": 184467440737095516160, "points": [[1, 5]]}'),
    "nwpu integer of 5000 digits": (
        "nwpu-json", "1.json", '{"img_id": "1", "human_num": 1, "points": [[' + HUGE_INT
        + ', 5]]}'),
}


@pytest.mark.parametrize("case", JSON_CASES)
def test_json_numbers_beyond_range_exit_2(case, tmp_path, capsys):
    fmt, name, text = JSON_CASES[case]
    source = write(tmp_path / name, text)
    out = tmp_path / "out.parquet"
    code, _, err = cli(capsys, "convert", "--from", fmt, source, "--out", out)
    assert code == 2, err[:2000]
    problem_lines(err, 1, base=tmp_path, limit=LONGEST)
    assert not out.exists() and not leftovers(tmp_path)


def shanghaitech_mat(path, number):
    """ShanghaiTech's layout: image_info, a 1 x 1 cell holding a struct with location
    (N x 2) and number."""
    import scipy.io
    record = np.empty((1, 1), dtype=[("location", object), ("number", object)])
    record[0, 0]["location"] = np.array([[1.0, 2.0], [3.0, 4.0]])
    record[0, 0]["number"] = number
    cell = np.empty((1, 1), dtype=object)
    cell[0, 0] = record
    scipy.io.savemat(path, {"image_info": cell})
    return str(path)


def text_cell():
    cell = np.empty((1, 2), dtype=object)
    cell[0, 0], cell[0, 1] = "two", np.array([[2.0]])
    return cell


@pytest.mark.parametrize("digits, code", [("9223372036854775807", 0),   # int64's largest
                                          ("9223372036854775808", 2),
                                          ("9" * 60, 2)])  # judged by its length
def test_an_image_id_from_a_file_name_beyond_int64_exits_2(digits, code, tmp_path, capsys):
    import scipy.io
    path = tmp_path / f"GT_IMG_{digits}.mat"
    scipy.io.savemat(path, {"annPoints": np.array([[1.0, 2.0]])})
    status, _, err = cli(capsys, "convert", "--from", "mat", path, "--out",
                         tmp_path / "out.parquet")
    assert status == code, err
    if code:
        problem_lines(err, 1, "beyond the 64-bit integer range", base=tmp_path)


@pytest.mark.parametrize("number", ["valid", "text", "cell"])
def test_shanghaitech_number_that_is_not_a_number_exits_2(number, tmp_path, capsys):
    value = {"valid": np.array([[2.0]]), "text": "two", "cell": text_cell()}[number]
    source = shanghaitech_mat(tmp_path / "GT_IMG_1.mat", value)
    out = tmp_path / "out.parquet"
    code, _, err = cli(capsys, "convert", "--from", "mat", source, "--out", out)
    if number == "valid":   # the layout is right: only the number is hostile
        assert code == 0, err
        assert pq.read_table(out).num_rows == 2
        return
    assert code == 2, err
    problem_lines(err, 1, source, base=tmp_path)
    assert not out.exists()


@pytest.mark.parametrize("delimiter", [";;", ""])
def test_csv_delimiter_of_other_than_one_character_exits_2(delimiter, tmp_path, capsys):
    source = write(tmp_path / "points.csv", "image_id;;x;;y\n1;;0;;0\n")
    out = tmp_path / "out.parquet"
    code, _, err = cli(capsys, "convert", "--from", "csv", source, "--delimiter", delimiter,
                            "--out", out)
    assert code == 2, err
    problem_lines(err, 1, "--delimiter", base=tmp_path)
    assert not out.exists()


def test_scheduler_that_is_not_an_address_exits_2(files, tmp_path, capsys):
    code, out, err = cli(capsys, "evaluate", "--device", "cpu", "--gt", files["gt"],
                         "--pred", files["pred"], "--scheduler", "not a url")
    assert (code, out) == (2, ""), err[-2000:]
    problem_lines(err, 1, "--scheduler", base=tmp_path)


class _HTTP(socketserver.BaseRequestHandler):
    """Answers anything with an HTTP response, as a web server on the scheduler's port."""

    def handle(self):
        self.request.settimeout(5)
        try:
            self.request.recv(65536)
            self.request.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/html\r\n"
                                 b"Content-Length: 21\r\n\r\n<h1>Bad Request</h1>\n")
            while self.request.recv(65536):
                pass
        except OSError:
            pass


def test_scheduler_that_is_a_web_server_exits_with_one_line(files, tmp_path):
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _HTTP)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        start = time.monotonic()
        proc = sub("evaluate", "--device", "cpu", "--gt", files["gt"], "--pred", files["pred"],
                   "--scheduler", f"tcp://127.0.0.1:{server.server_address[1]}", timeout=90)
        elapsed = time.monotonic() - start
    finally:
        server.shutdown()
        server.server_close()
    assert_no_signal(proc)
    assert "MemoryError" not in proc.stderr
    assert proc.returncode in (1, 2), proc.stderr[-2000:]
    problem_lines(proc.stderr, 1, base=tmp_path, limit=LONGEST)
    assert elapsed < 35


@pytest.mark.parametrize("scratch", ["missing", "a file"])
def test_scratch_dir_that_is_not_a_directory_exits_2(scratch, tmp_path, capsys):
    gt_dir = tmp_path / "gt"
    gt_dir.mkdir()
    rng = np.random.default_rng(1)
    ids = rng.permutation(np.repeat(np.arange(200), 5))   # every row group spans many ids
    write(gt_dir / "part-0.parquet", {"image_id": ids, "x": rng.random(ids.size),
                                      "y": rng.random(ids.size)}, row_group_size=100)
    pred = write(tmp_path / "pred.parquet", {"image_id": ids, "x": rng.random(ids.size),
                                             "y": rng.random(ids.size)}, row_group_size=100)
    where = tmp_path / "scratch"
    if scratch == "a file":
        where.write_text("not a directory")
    code, out, err = cli(capsys, "evaluate", "--device", "cpu", "--gt", gt_dir, "--pred", pred,
                         "--shard-points", "200", "--scratch-dir", where)
    assert (code, out) == (2, ""), err
    problem_lines(err, 1, "--scratch-dir", base=tmp_path)
    assert (where.read_text() == "not a directory") if scratch == "a file" else \
        not where.exists()


def test_a_file_name_that_is_not_utf8_gives_a_printable_line(files, tmp_path):
    name = os.path.join(os.fsencode(tmp_path), b"bad\xff\x1b[31m.csv")
    with open(name, "wb") as out:
        out.write(b"image_id,x\n1,0\n")     # no column 'y'
    proc = sub("evaluate", "--device", "cpu", "--gt", name, "--pred", files["pred"], timeout=60)
    assert_no_signal(proc)
    assert proc.returncode == 2, proc.stderr[-2000:]
    [line] = problem_lines(proc.stderr, 1, base=tmp_path)
    assert line.isprintable() and "bad" in line


def test_a_parquet_footer_claiming_10_to_the_15_rows_exits_2(files, tmp_path, capsys):
    path = tmp_path / "pred.parquet"
    write(path, {"image_id": [1, 2, 3] * 26 + [1], "x": [0.0] * 79, "y": [0.0] * 79})

    def varint(n):
        out = bytearray()
        while True:
            out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
            n >>= 7
            if not n:
                return bytes(out)
    data = path.read_bytes()
    length = struct.unpack("<I", data[-8:-4])[0]
    footer = data[-8 - length:-8]
    # Thrift compact: field header 0x16 (delta 1, i64), then num_rows zigzag-encoded
    claimed = 10 ** 15
    patched = footer.replace(b"\x16" + varint(79 * 2), b"\x16" + varint(claimed * 2))
    if patched == footer:
        pytest.skip("num_rows not found in the Thrift footer")
    path.write_bytes(data[:-8 - length] + patched + struct.pack("<I", len(patched)) + b"PAR1")
    try:
        assert pq.read_metadata(path).num_rows == claimed
    except Exception as exc:  # noqa: BLE001 - pyarrow refuses the patched footer itself
        pytest.skip(f"pyarrow does not read the patched footer: {exc}")
    code, out, err = cli(capsys, "evaluate", "--device", "cpu", "--gt", files["gt"],
                         "--pred", path)
    assert (code, out) == (2, ""), err[-2000:]
    problem_lines(err, 1, str(path), base=tmp_path)


# ---- 14. messages -----------------------------------------------------------------------------

TEN_MB = "n" * 10_000_000


@pytest.mark.parametrize("case", ["thresholds", "rank-by", "names", "column"])
def test_a_huge_value_gives_a_short_line(case, files, tmp_path, capsys):
    gt, extra = files["gt"], []
    if case == "column":
        gt = write(tmp_path / "wide.csv", f"image_id,x,{'c' * 1_000_000}\n1,0,0\n")
    elif case == "names":
        extra = ["--names", f"{TEN_MB},{TEN_MB}"]
    else:
        extra = [f"--{case}", TEN_MB]
    code, out, err = cli(capsys, "compare", "--device", "cpu", "--gt", gt,
                         "--pred", files["pred"], files["pred"], "--bootstrap", "0", *extra)
    assert (code, out[:100]) == (2, "")
    problem_lines(err, 1, limit=LONGEST)


@pytest.mark.parametrize("command", ["evaluate", "convert"])
@pytest.mark.parametrize("text", [
    "image_id,x,y," + ",".join(f"c{i}" for i in range(200_000)) + "\n1,0,0\n",  # a header
    "image_id,x,y\n1,0," + "0" * 3_000_000 + "\n2,0,0\n"])                      # a row
def test_a_line_longer_than_a_block_is_named_as_such(command, text, files, tmp_path, capsys):
    # pyarrow's own texts speak of blocks: "Empty CSV file or block", "straddles two
    # block boundaries"
    pred = write(tmp_path / "pred.csv", text)
    argv = (["evaluate", "--device", "cpu", "--gt", files["gt"], "--pred", pred]
            if command == "evaluate" else
            ["convert", "--from", "csv", pred, "--out", tmp_path / "out.parquet"])
    code, out, err = cli(capsys, *argv)
    assert out == ""
    assert code == 2, err[-2000:]
    problem_lines(err, 1, "a line longer than 1 MiB", base=tmp_path)


def test_escapes_in_a_column_name_are_escaped(files, tmp_path, capsys):
    evil = "\x1b[31mred\nline\r\x07"
    gt = write(tmp_path / "gt.parquet", {"image_id": [1], evil: [0.0], "y": [0.0]})
    code, out, err = cli(capsys, "evaluate", "--device", "cpu", "--gt", gt,
                         "--pred", files["pred"])
    assert (code, out) == (2, ""), err[-2000:]
    [line] = problem_lines(err, 1, gt, base=tmp_path)
    assert "\x1b" not in err and "\\x1b" in line


def test_escapes_in_names_are_escaped(files, tmp_path, capsys):
    bad = write(tmp_path / "bad.parquet", {**PRED, "score": [0.5, -1.0, 0.5, 0.5]})
    evil = "\x1b[2J\x1b[31mevil\nname\u2028more"
    code, out, err = cli(capsys, "compare", "--device", "cpu", "--gt", files["gt"],
                         "--images", files["images"],
                         "--pred", bad, files["pred"], "--names", f"{evil},ok",
                         "--bootstrap", "0")
    assert code == 4, err
    [line] = problem_lines(err, 1, "invalid submission", base=tmp_path)
    assert "\x1b" not in err and "\\x1b" in line
    assert "\x1b" not in out and "\u2028" not in out, out  # the ranking table too
    assert "ok" in out


def test_no_warning_text_reaches_stderr(files, tmp_path):
    # a submission named with glyphs matplotlib's default font lacks: the report's figures
    # warn about each (a UserWarning printed to stderr unless caught)
    pred = write(tmp_path / "模型😀.parquet", PRED)
    proc = sub("evaluate", "--device", "cpu", "--gt", files["gt"], "--pred", pred,
               "--images", files["images"], "--report", tmp_path / "report", timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Warning" not in proc.stderr and "warn" not in proc.stderr, proc.stderr[-2000:]
    assert proc.stderr == ""


def test_warnings_and_log_records_become_escaped_lines(files):
    # what a library might print while a command runs, as the command's own lines
    code = ("import logging, sys, warnings\n"
            "from pointscore.cli import commands, main\n"
            "def noisy(args):\n"
            "    warnings.warn('glyph \\x1b[31m missing')\n"
            "    logging.getLogger('distributed').warning('worker\\nlost')\n"
            "    return 0\n"
            "commands.COMMANDS['validate'] = noisy\n"
            f"sys.exit(main(['validate', '--gt', {files['gt']!r}, '--pred', {files['pred']!r}]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stderr.splitlines() == [
        "pointscore: warning: UserWarning: glyph \\x1b[31m missing", "pointscore: worker lost"]


def test_a_failing_dask_task_gives_one_line(tmp_path):
    pytest.importorskip("distributed")
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    gt_dir.mkdir()
    pred_dir.mkdir()
    for part, ids in enumerate(([1, 1, 2], [3, 4, 4])):
        write(gt_dir / f"part-{part}.parquet", {"image_id": ids, "x": [0.0, 1.0, 2.0],
                                                "y": [0.0, 1.0, 2.0]})
        write(pred_dir / f"part-{part}.parquet", {
            "image_id": ids, "x": [0.0, 1.0, 2.0], "y": [0.0, 1.0, 2.0],
            "score": [0.5, 0.5, 0.5] if part == 0 else [0.5, -1.0, 0.5]})
    proc = sub("evaluate", "--device", "cpu", "--gt", gt_dir, "--pred", pred_dir,
               "--workers", "2", "--json", tmp_path / "out.json", timeout=180)
    assert_no_signal(proc)
    assert proc.returncode == 2, proc.stderr[-3000:]
    problem_lines(proc.stderr, 1, "part-1.parquet", "'score'", base=tmp_path)
    assert not (tmp_path / "out.json").exists() and not leftovers(tmp_path)
