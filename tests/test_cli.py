"""The `pointscore evaluate` command (docs/metrics.md section 8): exit status, one line per problem on
stderr and never a traceback, thresholds text, and output files written whole or not at all."""
import argparse
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pointscore import DEFAULT_THRESHOLDS
from pointscore.cli import main
from pointscore.cli.parsers import parse_thresholds

GT = {"image_id": [1, 1, 2, 3], "x": [0.0, 10.0, 5.0, 1.0], "y": [0.0, 10.0, 5.0, 1.0]}
PRED = {"image_id": [1, 2, 2, 3], "x": [0.25, 5.0, 50.0, 1.0], "y": [0.0, 5.5, 5.0, 1.75],
        "score": [0.875, 0.75, 0.25, 0.5]}


NO_IMAGES = ("no images table: images without a point in either table are not scored, so "
             "the counting errors leave empty images out: pass --images")


def write(path, data):
    """A dict as a Parquet or CSV file, or bytes as they are; returns the path as text."""
    if isinstance(data, bytes):
        path.write_bytes(data)
    elif path.suffix == ".csv":
        path.write_text(data)
    else:
        pq.write_table(pa.table(data), path)
    return str(path)


@pytest.fixture
def files(tmp_path):
    return {"gt": write(tmp_path / "gt.parquet", GT),
            "pred": write(tmp_path / "pred.parquet", PRED)}


def run(capsys, *argv):
    code = main(["evaluate", "--device", "cpu", *argv])
    out, err = capsys.readouterr()
    return code, out, err


# ---- thresholds text ---------------------------------------------------------------------

def test_range_gives_exactly_the_ten_default_values():
    values = parse_thresholds("0.01:0.10:0.01")
    assert values == [round(0.01 * i, 10) for i in range(1, 11)] == list(DEFAULT_THRESHOLDS)


@pytest.mark.parametrize("text, expected", [
    ("0.05,0.1", [0.05, 0.1]),
    ("0.1,0.05,0.1", [0.05, 0.1]),            # kept sorted and distinct
    ("0.1:0.3:0.1", [0.1, 0.2, 0.3]),         # 0.1 + 2 * 0.1 is 0.30000000000000004
    ("0.1:0.2999:0.1", [0.1, 0.2, 0.3]),      # stop within half a step is included
    ("0.1:0.34:0.1", [0.1, 0.2, 0.3]),        # ... and nothing past it
    ("0.5:0.5:0.1", [0.5]),
    ("2", [2.0]),
])
def test_thresholds_text(text, expected):
    assert parse_thresholds(text) == expected


@pytest.mark.parametrize("text", ["abc", "", "0.1,,0.2", "0.1:0.2", "0:0.1:0.01", "-0.1",
                                  "nan", "inf", "0.1:0.05:0.01", "0.1:0.2:0", "0.01:inf:0.01",
                                  "0.01:1:1e-9", "0.01:1:1e-320"])
def test_bad_thresholds_text_is_one_problem(text, capsys):
    with pytest.raises(argparse.ArgumentTypeError):
        parse_thresholds(text)
    assert main(["evaluate", "--gt", "g.csv", "--pred", "p.csv", "--thresholds", text]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("pointscore: usage error: argument --thresholds: ")


def test_thresholds_reach_the_summary(files, capsys):
    code, out, _ = run(capsys, "--gt", files["gt"], "--pred", files["pred"],
                       "--thresholds", "0.1:0.3:0.1", "--json", "-")
    assert code == 0 and json.loads(out)["config"]["thresholds"] == [0.1, 0.2, 0.3]


# ---- bad input: exit 2, one line per problem naming file, column and rows ----------------

def gt_with(**columns):
    return {**GT, **columns}


# Each case: the files to write (name -> data), extra arguments, and per expected stderr
# line the fragments it must hold. "{gt}", "{pred}", "{images}" stand for the files' paths.
BAD = {
    "missing column": (
        {"gt.parquet": {"image_id": [1], "x": [0.0]}}, [],
        [["{gt}", "missing column 'y'"]]),
    "x as string": (
        {"gt.csv": "image_id,x,y\n1,0,0\n2,a,0\n3,1,b\n"}, [],
        [["{gt}", "column 'x'", "row 1 ('a')"], ["{gt}", "column 'y'", "row 2 ('b')"]]),
    "image_id as float": (
        {"gt.parquet": gt_with(image_id=[1.0, 1.0, 2.5, 3.0])}, [],
        [["{gt}", "column 'image_id'", "integer or string", "row 2 (2.5)"]]),
    "NaN and inf coordinates": (
        {"gt.parquet": gt_with(x=[np.nan, 0.0, 0.0, np.inf], y=[0.0, -np.inf, 0.0, 0.0])}, [],
        [["{gt}", "column 'x'", "rows 0, 3 (nan, inf)"], ["{gt}", "column 'y'", "row 1 (-inf)"]]),
    "nan and empty cells in CSV": (
        {"gt.csv": "image_id,x,y\n1,nan,0\n2,,0\n3,1,1\n"}, [],
        [["{gt}", "column 'x'", "rows 0, 1"]]),
    "NaN and negative scores": (
        {"pred.parquet": {**PRED, "score": [np.nan, 0.5, -0.25, 0.0]}}, [],
        [["{pred}", "column 'score'", "negative", "rows 0, 2 (nan, -0.25)"]]),
    "empty parquet file": ({"gt.parquet": b""}, [], [["{gt}", "empty"]]),
    "empty csv file": ({"pred.csv": b""}, [], [["{pred}", "empty"]]),
    "unknown image ids": (
        {"images.parquet": {"image_id": [1, 2]}}, [],
        [["{gt}", "column 'image_id'", "not in the images table", "row 3 (3)"],
         ["{pred}", "column 'image_id'", "not in the images table", "row 3 (3)"]]),
    "duplicate ids in the images table": (
        {"images.parquet": {"image_id": [1, 2, 3, 2]}}, [],
        [["{images}", "column 'image_id'", "duplicate", "row 3 (2)"]]),
    "normalize without sizes": ({}, ["--normalize", "wh"], [["normalize 'wh'", "'width'"]]),
    "nonexistent path": ({}, ["--gt", "{dir}/nope.parquet"],
                         [["nope.parquet", "no such file or directory"]]),
    "unknown extension": ({"gt.txt": b"image_id,x,y\n1,0,0\n"}, [],
                          [["{gt}", "unknown file type"]]),
    "mixed int and string ids": (
        {"pred.parquet": {**PRED, "image_id": ["1", "2", "2", "3"]}}, [],
        [["column 'image_id'", "integer in {gt}", "string in {pred}"]]),
    "class on one side only": (
        {"gt.parquet": gt_with(**{"class": [0, 0, 1, 1]})}, [],
        [["{gt} has a 'class' column", "{pred} does not"]]),
    "score threshold without score": (
        {"pred.parquet": {k: v for k, v in PRED.items() if k != "score"}},
        ["--score-threshold", "0.5"], [["{pred}", "'score' column"]]),
    "zero threshold": ({}, ["--thresholds", "0:0.1:0.01"], [["--thresholds", "> 0"]]),
    "thresholds not numbers": ({}, ["--thresholds", "abc"], [["--thresholds", "'abc'"]]),
    "unknown match": ({}, ["--match", "best"], [["usage error", "--match", "'best'"]]),
    "unknown device": ({}, ["--device", "tpu"], [["usage error", "--device", "'tpu'"]]),
    "no workers": ({}, ["--workers", "0"], [["usage error", "--workers", "'0'"]]),
    "two outputs on one path": ({}, ["--per-image", "{dir}/out.json"],
                                [["usage error", "--json and --per-image both name"]]),
    "an empty output path": ({}, ["--report", ""], [["usage error", "--report needs a path"]]),
    "workers and a scheduler": ({}, ["--workers", "2", "--scheduler", "tcp://h:8786"],
                                [["usage error", "--workers", "--scheduler", "not both"]]),
    "shard points not a number": ({}, ["--shard-points", "1e6"],
                                  [["usage error", "--shard-points", "'1e6'"]]),
    "several problems in one table": (
        {"gt.parquet": {"image_id": [1.5, 2.0], "x": ["a", "0"], "y": [0.0, np.nan]}}, [],
        [["{gt}", "column 'image_id'", "row 0 (1.5)"], ["{gt}", "column 'x'", "row 0 ('a')"],
         ["{gt}", "column 'y'", "row 1 (nan)"]]),
    "problems in two tables": (
        {"gt.parquet": {"image_id": [1], "y": [0.0]}, "pred.parquet": {**PRED, "x": [np.nan] * 4}},
        [], [["{gt}", "missing column 'x'"], ["{pred}", "column 'x'", "rows 0, 1, 2, 3"]]),
    "nested points not structs": (
        {"gt.parquet": {"image_id": [1], "points": [[1.0, 2.0]]}}, [],
        [["{gt}", "column 'points'", "list<struct"]]),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_input_exits_2_with_one_line_per_problem(case, tmp_path, capsys):
    written, extra, expected = BAD[case]
    paths = {"gt": str(tmp_path / "gt.parquet"), "pred": str(tmp_path / "pred.parquet"),
             "dir": str(tmp_path)}
    write(tmp_path / "gt.parquet", GT)
    write(tmp_path / "pred.parquet", PRED)
    for name, data in written.items():
        paths[name.split(".")[0]] = write(tmp_path / name, data)
    argv = ["--gt", paths["gt"], "--pred", paths["pred"], "--json", str(tmp_path / "out.json")]
    if "images" in paths:
        argv += ["--images", paths["images"]]
    code, out, err = run(capsys, *argv, *(a.format(**paths) for a in extra))
    assert (code, out) == (2, "")
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == len(expected), err
    for line, fragments in zip(lines, expected):
        assert line.startswith("pointscore: ")
        for fragment in fragments:
            assert fragment.format(**paths) in line, line
    assert not (tmp_path / "out.json").exists()


def test_bad_input_leaves_an_existing_output_untouched(files, tmp_path, capsys):
    (tmp_path / "out.json").write_text("old")
    code, _, _ = run(capsys, "--gt", files["gt"], "--pred", str(tmp_path / "nope.csv"),
                     "--json", str(tmp_path / "out.json"))
    assert code == 2 and (tmp_path / "out.json").read_text() == "old"


# ---- outputs --------------------------------------------------------------------------------

SUMMARY_FIELDS = {"version", "schema_version", "config", "warnings", "images", "gt_points", "pred_points", "counting", "micro",
                  "macro", "map", "classes"}


def test_json_to_stdout_is_only_valid_json_with_the_spec_fields(files, capsys):
    code, out, err = run(capsys, "--gt", files["gt"], "--pred", files["pred"], "--json", "-")
    assert code == 0 and err == f"pointscore: warning: {NO_IMAGES}\n"
    summary = json.loads(out)
    assert set(summary) == SUMMARY_FIELDS
    assert set(summary["config"]) == {"thresholds", "match", "normalize", "score_threshold",
                                      "device", "ap_interpolation"}
    assert set(summary["micro"]) == {"tp", "fp", "fn", "precision", "recall", "f1", "loc_error"}
    assert set(summary["macro"]) == {"precision", "recall", "f1", "ap"}
    assert set(summary["counting"]) == {"mae", "rmse", "nae"}
    assert set(summary["classes"]["0"]) == {"gt_points", "pred_points", "tp", "fp", "fn",
                                            "precision", "recall", "f1", "loc_error", "ap",
                                            "counting"}
    assert summary["images"] == 3 and summary["gt_points"] == 4 and summary["pred_points"] == 4


def test_undefined_values_are_null_not_nan(tmp_path, capsys):
    gt = write(tmp_path / "gt.parquet", GT)
    pred = write(tmp_path / "pred.parquet", {k: v for k, v in PRED.items() if k != "score"})
    code, out, _ = run(capsys, "--gt", gt, "--pred", pred, "--thresholds", "0.1,1", "--json", "-")
    assert code == 0 and "NaN" not in out and "Infinity" not in out
    summary = json.loads(out)
    assert summary["micro"]["loc_error"][0] is None        # no true pair within 0.1
    assert summary["macro"]["ap"] == [None, None] and summary["map"] is None  # no scores


def test_json_and_per_image_files_are_complete(files, tmp_path, capsys):
    code, out, _ = run(capsys, "--gt", files["gt"], "--pred", files["pred"], "--json", "-")
    expected = json.loads(out)
    code, out, _ = run(capsys, "--gt", files["gt"], "--pred", files["pred"],
                       "--json", str(tmp_path / "out.json"),
                       "--per-image", str(tmp_path / "per_image.parquet"))
    assert code == 0 and "mAP@d" in out
    assert json.loads((tmp_path / "out.json").read_text()) == expected
    per_image = pq.read_table(tmp_path / "per_image.parquet")
    assert per_image.column("image_id").to_pylist() == [1, 2, 3]
    assert per_image.column("gt_count").to_pylist() == [2, 1, 1]
    assert per_image.column("pred_count").to_pylist() == [1, 2, 1]
    assert per_image.num_columns == 4 + 3 * len(DEFAULT_THRESHOLDS)
    assert sorted(os.listdir(tmp_path)) == ["gt.parquet", "out.json", "per_image.parquet",
                                            "pred.parquet"]  # no temporary files left


def test_output_files_get_the_usual_permissions(files, tmp_path, capsys):
    run(capsys, "--gt", files["gt"], "--pred", files["pred"], "--json", str(tmp_path / "o.json"))
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(tmp_path / "o.json").st_mode) == 0o666 & ~umask


def test_default_output_is_the_readable_table(files, capsys):
    code, out, err = run(capsys, "--gt", files["gt"], "--pred", files["pred"])
    assert code == 0 and err == f"pointscore: warning: {NO_IMAGES}\n"
    assert out.startswith("pointscore ") and "MAE" in out and "mAP@d [0.01:0.1:0.01] = " in out
    first_cells = [line.split()[0] for line in out.splitlines() if line.strip()]
    assert [cell for cell in first_cells if cell in {f"{d:g}" for d in DEFAULT_THRESHOLDS}] \
        == [f"{d:g}" for d in DEFAULT_THRESHOLDS]
    with pytest.raises(json.JSONDecodeError):
        json.loads(out)


@pytest.mark.parametrize("option", ["--json", "--per-image"])
@pytest.mark.parametrize("target, fragment", [("missing/out", "does not exist"),
                                              (".", "is a directory")])
def test_unwritable_output_exits_2_with_one_line_and_leaves_nothing(option, target, fragment,
                                                                    files, tmp_path, capsys):
    before = sorted(os.listdir(tmp_path))
    code, out, err = run(capsys, "--gt", files["gt"], "--pred", files["pred"],
                         option, str(tmp_path / target))
    assert (code, out) == (2, "")
    [line] = err.splitlines()
    assert line.startswith(f"pointscore: {option} ") and fragment in line
    assert sorted(os.listdir(tmp_path)) == before


def test_a_failure_while_writing_leaves_no_output_at_all(files, tmp_path, capsys, monkeypatch):
    def broken(summary):
        raise RuntimeError("disk on fire")
    monkeypatch.setattr("pointscore.cli.commands.summary_json", broken)
    code, out, err = run(capsys, "--gt", files["gt"], "--pred", files["pred"],
                         "--per-image", str(tmp_path / "p.parquet"),
                         "--json", str(tmp_path / "o.json"))
    assert code == 1 and out == ""
    assert sorted(os.listdir(tmp_path)) == ["gt.parquet", "pred.parquet"]


def test_a_failed_rename_is_one_line_and_leaves_no_temporary_file(files, tmp_path, capsys,
                                                                 monkeypatch):
    monkeypatch.setattr("pointscore.cli.commands._check_outputs",
                        lambda *args, **kwargs: None)  # reach the rename
    (tmp_path / "taken" / "full").mkdir(parents=True)
    code, _, err = run(capsys, "--gt", files["gt"], "--pred", files["pred"],
                       "--json", str(tmp_path / "taken"))
    [line] = [line for line in err.splitlines() if not line.startswith("pointscore: warning:")]
    assert code == 1 and line.startswith(f"pointscore: {tmp_path / 'taken'}: cannot write: ")
    assert sorted(os.listdir(tmp_path)) == ["gt.parquet", "pred.parquet", "taken"]


def test_internal_error_exits_1_with_one_line(files, capsys, monkeypatch):
    def crash(*args, **kwargs):
        raise ValueError("something broke\nwith a second line\nand a third")
    monkeypatch.setattr("pointscore.entrypoints.evaluate", crash)
    monkeypatch.delenv("POINTSCORE_DEBUG", raising=False)
    code, out, err = run(capsys, "--gt", files["gt"], "--pred", files["pred"])
    assert (code, out) == (1, "")
    assert err.splitlines() == ["pointscore: internal error: ValueError: something broke "
                                "(set POINTSCORE_DEBUG=1 for a traceback)"]


# ---- the installed entry point --------------------------------------------------------------

def test_console_script_runs_and_reports_exit_codes(files, tmp_path):
    script = Path(sys.executable).with_name("pointscore")
    command = [str(script)] if script.exists() else \
        [shutil.which("pointscore")] if shutil.which("pointscore") else \
        [sys.executable, "-m", "pointscore"]
    ok = subprocess.run([*command, "evaluate", "--gt", files["gt"], "--pred", files["pred"],
                         "--device", "cpu", "--json", "-"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["images"] == 3
    bad = subprocess.run([*command, "evaluate", "--gt", str(tmp_path / "nope.parquet"),
                          "--pred", files["pred"]], capture_output=True, text=True)
    assert (bad.returncode, bad.stdout) == (2, "")
    assert bad.stderr == f"pointscore: {tmp_path / 'nope.parquet'}: no such file or directory\n"


def test_version_prints_the_installed_version(capsys):
    from importlib.metadata import version
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    # this suite runs the JIT (conftest); tests/test_compiled.py the compiled kernels
    assert capsys.readouterr().out == (f"pointscore {version('pointscore')} "
                                       "(CPU kernels: compiled by Numba at first use)\n")


@pytest.mark.parametrize("given, shown", [("0.01:0.10:0.01", "0.01:0.1:0.01"),
                                          ("4,8,20", "4,8,20"), ("4,8", "4,8"), ("5", "5")])
def test_the_table_shows_thresholds_as_given(given, shown, files, capsys):
    code, out, _ = run(capsys, "--gt", files["gt"], "--pred", files["pred"],
                       "--thresholds", given)
    assert code == 0 and f"mAP@d [{shown}] = " in out


def test_per_class_adds_a_row_per_class(tmp_path, capsys):
    gt = write(tmp_path / "gt.csv", "image_id,x,y,class\n0,1,1,a\n0,5,5,b\n1,9,9,a\n")
    pred = write(tmp_path / "pred.csv",
                 "image_id,x,y,score,class\n0,1,1,0.5,a\n0,6,5,0.5,b\n1,30,9,0.9,a\n")
    code, out, _ = run(capsys, "--gt", gt, "--pred", pred, "--thresholds", "0.5,2,4",
                       "--per-class")
    assert code == 0
    table = out[out.index("per class"):].splitlines()
    assert table[1].split() == ["class", "gt", "pred", "MAE", "RMSE", "P@2", "R@2", "F1@2",
                                "AP@2", "mAP"]
    assert table[2].split()[:8] == ["a", "2", "2", "0.0000", "0.0000", "0.5000", "0.5000",
                                    "0.5000"]
    assert table[3].split()[:8] == ["b", "1", "1", "0.0000", "0.0000", "1.0000", "1.0000",
                                    "1.0000"]
    assert len({len(line) for line in table[1:]}) == 1  # aligned
    code, out, _ = run(capsys, "--gt", gt, "--pred", pred, "--thresholds", "2")
    assert "per class" not in out


def test_a_run_that_compiles_says_so_once_on_a_terminal():
    import numba

    from pointscore.cli.compiling import NOTICE, compile_notice
    from pointscore.kernels import rules

    def fresh(py_func):  # a dispatcher of its own, so it compiles whatever the cache holds
        return numba.njit(py_func)

    told = []
    args = (np.ones(1, np.bool_), np.zeros((1, 1)), np.zeros((1, 1), np.int64),
            np.ones(1, np.int64), 1, np.full(1, -1), np.full(1, np.inf))
    with compile_notice(True, told.append):
        fresh(lambda x: x + 1)(1)  # not a pointscore kernel: nothing said
        assert told == []
        fresh(rules.nearest.py_func)(*args)
        fresh(rules.nearest.py_func)(*args)
    assert told == [NOTICE]
    with compile_notice(False, told.append):  # stderr not a terminal
        fresh(rules.nearest.py_func)(*args)
    assert told == [NOTICE]
