"""Nightly jobs: job files (`pointscore run`), the history store, the regression gate
(`--baseline`, `--fail-if`, exit 3) and the ground truth's content hash."""
import json
import re
import threading
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv
import pyarrow.parquet as pq
import pytest

from bench.data import crowd
from pointscore import InputError, gate, history
from pointscore.cli import main
from pointscore.content_hash import ground_truth_hash
from pointscore.limits import TRUSTED

GATE = "map drop > 0.005 at p < 0.05 or mae rise > 2"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A crowd, a model, the same model again under another file name, and a worse model
    (a quarter of its predictions moved 30 px)."""
    root = tmp_path_factory.mktemp("nightly")
    gt, pred, images = crowd(n_images=40, target_gt=3000, max_per_image=300, seed=5)
    worse = dict(pred)
    move = np.random.default_rng(1).random(pred["x"].size) < 0.25
    worse["x"] = np.where(move, pred["x"] + 30, pred["x"])
    paths = {}
    for name, table in (("gt", gt), ("images", images), ("model", pred), ("same", pred),
                        ("worse", worse)):
        paths[name] = str(root / f"{name}.parquet")
        pq.write_table(pa.table(table), paths[name])
    return paths


def evaluate(files, pred, store, *extra):
    return main(["evaluate", "--gt", files["gt"], "--images", files["images"], "--pred",
                 files[pred], "--thresholds", "4,8", "--device", "cpu", "--history",
                 str(store), *extra])


def test_the_gate_passes_equal_models_and_fails_a_planted_regression(files, tmp_path,
                                                                     capsys):
    store = tmp_path / "history"
    assert evaluate(files, "model", store, "--name", "model", "--fail-if", GATE) == 0
    assert "no earlier run on this ground truth" in capsys.readouterr().err
    assert evaluate(files, "same", store, "--name", "same", "--fail-if", GATE) == 0
    err = capsys.readouterr().err
    assert "gate: mAP dropped by 0 " in err and "within the gate" in err
    assert evaluate(files, "worse", store, "--name", "worse", "--fail-if", GATE) == 3
    err = capsys.readouterr().err
    assert "regression" in err and "(p = 0.0010 < 0.05)" in err  # beaten in every resample
    runs = history.runs(str(store))
    assert [(r["name"], r["gate"]) for r in runs] == \
        [("model", None), ("same", "passed"), ("worse", "failed")]
    assert runs[2]["baseline"] == runs[1]["run_id"]
    # 'last' skips the failed run: the next good model is gated against 'same'
    assert evaluate(files, "model", store, "--fail-if", GATE) == 0
    assert history.runs(str(store))[-1]["baseline"] == runs[1]["run_id"]
    # a named baseline, and a run id, whatever their gate said
    assert evaluate(files, "model", store, "--baseline", "worse", "--fail-if",
                    "map drop > 0.005") == 0
    assert evaluate(files, "worse", store, "--baseline", runs[0]["run_id"], "--fail-if",
                    "map drop > 0.005") == 3


def test_a_stored_run_keeps_what_the_gate_needs(files, tmp_path):
    store = tmp_path / "history"
    assert evaluate(files, "model", store, "--json", str(tmp_path / "s.json")) == 0
    (row,) = history.runs(str(store))
    stored = history.load(str(store), row["run_id"])
    summary = json.loads((tmp_path / "s.json").read_text())
    assert stored.summary == {**summary, "warnings": []}
    assert stored.state.summary("cpu") == stored.summary
    assert row["map"] == summary["map"] and row["f1"] == summary["micro"]["f1"]
    assert len(stored.per_image) == 40


def test_baselines_on_another_ground_truth_or_options_are_refused(files, tmp_path, capsys):
    store = tmp_path / "history"
    assert evaluate(files, "model", store, "--name", "base") == 0
    assert main(["evaluate", "--gt", files["model"], "--images", files["images"], "--pred",
                 files["model"], "--thresholds", "4,8", "--device", "cpu", "--history",
                 str(store), "--baseline", "base", "--fail-if", "map drop > 0.01"]) == 2
    assert "scored another ground truth" in capsys.readouterr().err
    assert evaluate(files, "model", store, "--match", "nearest", "--baseline", "base",
                    "--fail-if", "map drop > 0.01") == 2
    assert "scored with other options (match)" in capsys.readouterr().err
    assert evaluate(files, "model", store, "--baseline", "nobody", "--fail-if",
                    "map drop > 0.01") == 2
    assert "no such run or name" in capsys.readouterr().err


@pytest.mark.parametrize(("expression", "message"), [
    ("mae drop > 1", "mae is an error, lower when better: write 'mae rise'"),
    ("map rise > 1", "map is higher when better: write 'map drop'"),
    ("f1@5 drop > 0.1", "5 is not one of the thresholds (4, 8)"),
    ("recall drop > 0.1", "cannot read 'recall drop > 0.1'"),
    ("map drop > 0.1 at p < 2", "P between 0 and 1"),
])
def test_gate_expressions_are_checked_before_any_work(expression, message):
    with pytest.raises(InputError, match=re.escape(message)):
        gate.parse(expression, [4.0, 8.0])


def test_nightly_flags_need_a_history(files, capsys):
    assert main(["evaluate", "--gt", files["gt"], "--pred", files["model"],
                 "--fail-if", "map drop > 0.1"]) == 2
    assert "--fail-if needs --history" in capsys.readouterr().err


def test_a_job_file_is_evaluate_and_flags_override_it(files, tmp_path, capsys):
    job = tmp_path / "jobs" / "nightly.toml"
    job.parent.mkdir()
    (tmp_path / "out").mkdir()
    job.write_text(f"""
[inputs]
gt = "{files['gt']}"
pred = "{files['model']}"
images = "{files['images']}"

[scoring]
thresholds = [4, 8]
match = "greedy"
device = "cpu"
strict = false

[outputs]
json = "../out/summary.json"
history = "../out/history"
name = "nightly"
fail_if = "map drop > 0.005 at p < 0.05"
""")
    assert main(["run", str(job)]) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["config"]["thresholds"] == [4.0, 8.0]
    assert main(["run", str(job), "--pred", files["worse"]]) == 3  # a flag overrides its key
    runs = history.runs(str(tmp_path / "out" / "history"))
    assert [r["gate"] for r in runs] == [None, "failed"]
    capsys.readouterr()
    expected = main(["evaluate", "--gt", files["gt"], "--pred", files["model"], "--images",
                     files["images"], "--thresholds", "4,8", "--device", "cpu", "--json", "-"])
    assert expected == 0 and json.loads(capsys.readouterr().out) == summary


@pytest.mark.parametrize(("text", "message"), [
    ('gt = "a"\nthreshold = [1]', "unknown key 'threshold'"),
    ("strict = 1", "strict is true or false, got 1"),
    ('thresholds = ["a"]', "thresholds must be a list of numbers"),
    ("gt = [", "not a TOML file"),
    ('[a]\ngt = "x"\n[b]\ngt = "y"', "key 'gt' given twice"),
])
def test_bad_job_files_are_named(tmp_path, capsys, text, message):
    job = tmp_path / "job.toml"
    job.write_text(text)
    assert main(["run", str(job)]) == 2
    assert message in capsys.readouterr().err


def test_history_lists_runs_as_a_table_json_and_a_report(files, tmp_path, capsys):
    store = tmp_path / "history"
    for pred in ("model", "worse"):
        assert evaluate(files, pred, store, "--name", pred) == 0
    capsys.readouterr()
    assert main(["history", str(store)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and "model" in lines[1] and "worse" in lines[2]
    assert main(["history", str(store), "--name", "worse", "--json", "-"]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert listed["name"] == "worse" and listed["gt_hash"] == history.runs(str(store))[0][
        "gt_hash"]
    pytest.importorskip("matplotlib")
    assert main(["history", str(store), "--report", str(tmp_path / "report")]) == 0
    page = (tmp_path / "report" / "index.html").read_text()
    assert 'data-figures="1"' in page and page.count("<tr>") == 3


def test_many_jobs_append_to_one_store_at_once(files, tmp_path):
    store = str(tmp_path / "history")
    from pointscore import evaluate as score
    report = score(files["gt"], files["model"], files["images"], thresholds=[4, 8],
                   device="cpu")
    threads = [threading.Thread(target=history.append, args=(store, report),
                                kwargs={"name": f"job{i}", "gt_hash": "h"}) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r["name"] for r in history.runs(store)) == [f"job{i}" for i in range(8)]
    assert not [p for p in Path(store).iterdir() if p.name.startswith(".")]


def test_the_content_hash_sees_points_not_files(files, tmp_path):
    gt = pq.read_table(files["gt"])
    base = ground_truth_hash(files["gt"], files["images"], None, TRUSTED)
    rewritten = tmp_path / "gt"
    rewritten.mkdir()  # split into files, small row groups, other compression
    for k, part in enumerate((gt.slice(0, 1000), gt.slice(1000))):
        pq.write_table(part, rewritten / f"part-{k}.parquet", row_group_size=300,
                       compression="zstd")
    pyarrow.csv.write_csv(gt, tmp_path / "gt.csv")
    assert ground_truth_hash(str(rewritten), files["images"], None, TRUSTED) == base
    assert ground_truth_hash(gt, files["images"], None, TRUSTED) == base
    x = gt["x"].to_numpy().copy()
    x[7] += 1e-9
    moved = gt.set_column(gt.schema.get_field_index("x"), "x", pa.array(x))
    assert ground_truth_hash(moved, files["images"], None, TRUSTED) != base
    assert ground_truth_hash(files["gt"], None, None, TRUSTED) != base


def test_a_streamed_run_keeps_its_per_image_rows_for_the_gate(files, tmp_path, capsys):
    store = tmp_path / "history"
    argv = ["--shard-points", "500", "--per-image", str(tmp_path / "rows.csv"), "--fail-if",
            "map drop > 0.005 at p < 0.05"]
    assert evaluate(files, "model", store, *argv) == 0
    assert evaluate(files, "worse", store, *argv) == 3
    assert len(pyarrow.csv.read_csv(tmp_path / "rows.csv")) == 40  # written all the same
    capsys.readouterr()
    assert evaluate(files, "model", store, "--shard-points", "500", "--per-image", "-") == 0
    assert capsys.readouterr().out.startswith('"image_id",')


def test_nightly_misuse_is_refused_before_any_work(files, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert evaluate(files, "model", tmp_path / "file") == 2
    assert "--history" in capsys.readouterr().err
    assert main(["evaluate", "--gt", files["gt"], "--pred", files["model"], "--history",
                 str(tmp_path / "h"), "--fail-if", "map drop > 0.01 at p < 0.05"]) == 2
    assert "give --images" in capsys.readouterr().err
    assert main(["history", str(tmp_path / "nowhere")]) == 2
    assert "no such history store" in capsys.readouterr().err
    assert not (tmp_path / "h").exists()


def test_the_hash_ignores_how_values_are_stored(files):
    gt = pq.read_table(files["gt"]).drop_columns(["class"])
    klass = pa.array(np.arange(len(gt)) % 3)
    plain = gt.append_column("class", klass)
    stored = gt.append_column("class", klass.cast(pa.int32()).dictionary_encode())
    assert ground_truth_hash(plain, None, None, TRUSTED) == \
        ground_truth_hash(stored, None, None, TRUSTED)


def test_job_values_may_begin_with_a_dash(files, tmp_path):
    job = tmp_path / "job.toml"
    job.write_text(f'gt = "{files["gt"]}"\npred = "{files["model"]}"\nimages = '
                   f'"{files["images"]}"\nthresholds = [4, 8]\ndevice = "cpu"\n'
                   f'history = "h"\nname = "-nightly"\n')
    assert main(["run", str(job)]) == 0
    assert history.runs(str(tmp_path / "h"))[0]["name"] == "-nightly"
