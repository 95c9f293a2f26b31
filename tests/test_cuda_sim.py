"""The CUDA kernels (kernels/cuda.py, through pointscore.gpu) against the CPU kernels, in
Numba's simulator (tests/conftest.py sets NUMBA_ENABLE_CUDASIM=1).

Equality is exact: integers and float64 d² bit for bit. Blocks of 2-4 threads and
budgets of a few points and pairs make every call run many blocks, several runs of
groups and, for greedy, several rounds; data stay tiny because the simulator runs a
block in milliseconds, not microseconds.
"""
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.csv  # noqa: F401  (pa.csv)
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pointscore
from pointscore import cli, gpu
from pointscore.backends import backend_for
from pointscore.batch import Batch
from pointscore.cpu import CpuBackend
from pointscore.device import gpu_usable
from pointscore.kernels import candidates, rules
from pointscore.kernels.ap import doubling_suffix_max, suffix_max

ROOT = pathlib.Path(__file__).resolve().parent.parent
SETTINGS = settings(max_examples=40, deadline=None)
SCORES = [0.9, 0.5, 0.5, 0.1, 0.0, -0.0]  # ties, and both zeros, which sort as equals
NO_AP = np.zeros(0)
RULES = {"greedy": rules.GREEDY, "nearest": rules.NEAREST}


def _batch(gx, gy, g_off, px, py, p_off, score):
    n_groups = g_off.size - 1
    return Batch(pa.array(np.arange(n_groups)), [0], False, np.arange(n_groups),
                 np.zeros(n_groups, np.int64), gx, gy, g_off, px, py, score, p_off)


@st.composite
def batches(draw, max_points=8):
    """A CSR batch of a few groups: integer coordinates (ties, pairs exactly at d via
    3-4-5 triangles) or floats, at a small or a far-out scale; groups may be empty or
    hold only gts or only predictions."""
    n_groups = draw(st.integers(1, 4))
    scale = draw(st.sampled_from([1.0, 1e6]))
    coord = st.integers(0, 5).map(float) if draw(st.booleans()) else \
        st.floats(0, 5, allow_nan=False)

    def side():
        sizes = draw(st.lists(st.integers(0, max_points), min_size=n_groups, max_size=n_groups))
        n = sum(sizes)
        xy = [np.array(draw(st.lists(coord, min_size=n, max_size=n))) * scale for _ in "xy"]
        return xy[0], xy[1], np.r_[0, np.cumsum(sizes)].astype(np.int64)

    gx, gy, g_off = side()
    px, py, p_off = side()
    score = np.array(draw(st.lists(st.sampled_from(SCORES), min_size=px.size,
                                   max_size=px.size)))
    dmax = draw(st.sampled_from([1.0, 2.0, 5.0])) * scale
    kept = np.array(draw(st.lists(st.booleans(), min_size=px.size, max_size=px.size)), bool)
    return _batch(gx, gy, g_off, px, py, p_off, score), dmax, kept


def _backend():
    return gpu.GpuBackend(threads=2, point_budget=6, pair_budget=5)


def _cpu_candidates(b, dmax):
    return candidates.pair_lists(b.gt_x, b.gt_y, NO_AP, b.gt_off, b.pred_x, b.pred_y,
                                 b.pred_off, dmax, 2**62)


def _assert_same(actual, expected):
    for a, e in zip(actual, expected, strict=True):
        assert a.dtype == e.dtype and np.array_equal(a, e)


@SETTINGS
@given(data=batches())
def test_candidate_pairs_equal_cpu(data):
    b, dmax, _ = data
    _assert_same(_backend().candidates(b, dmax), _cpu_candidates(b, dmax))


@pytest.mark.parametrize("rule", RULES)
@SETTINGS
@given(data=batches())
def test_matching_and_ap_matching_equal_cpu(rule, data):
    b, dmax, kept = data
    d2_thresholds = np.array([0.5, 1.0, 4.0, 25.0]) * (dmax / 5.0) ** 2
    _assert_same(_backend().match(b, dmax, kept, RULES[rule], d2_thresholds),
                 CpuBackend().match(b, dmax, kept, RULES[rule], d2_thresholds))


@pytest.mark.parametrize("threads", [1, 3, 8])
@SETTINGS
@given(data=batches())
def test_ap_matching_alone_equals_cpu(threads, data):
    # What the hungarian rule asks of the backend: AP matching, no operating point. A
    # block of threads shares each prediction's candidates: 1 thread, 3 (a reduction of
    # two steps with an odd lane left over) and 8 (three steps); the other tests'
    # backends use 2 and 4.
    b, dmax, kept = data
    d2_thresholds = np.array([1.0, 25.0]) * (dmax / 5.0) ** 2
    backend = gpu.GpuBackend(threads=threads, point_budget=6, pair_budget=5)
    _assert_same(backend.match(b, dmax, kept, rules.NO_RULE, d2_thresholds),
                 CpuBackend().match(b, dmax, kept, rules.NO_RULE, d2_thresholds))


def test_ap_matching_takes_the_last_of_equally_near_free_gts_across_lanes():
    """Eight gts at distance 5 of the best prediction, read by lanes of 3: it takes the
    last (COCO), the one at (5, 0), which lane 1 holds while lane 0 holds a later
    candidate of its own; the second prediction reaches only that gt, so it is a FP."""
    gx = np.array([-5.0, 0, 0, -3, -4, -3, -4, 5])
    gy = np.array([0.0, 5, -5, 4, 3, -4, -3, 0])
    b = _batch(gx, gy, np.array([0, 8]), np.array([0.0, 9.9]), np.zeros(2),
               np.array([0, 2]), np.array([0.9, 0.5]))
    kept, d2_thresholds = np.ones(2, bool), np.array([25.0])
    got = gpu.GpuBackend(threads=3).match(b, 5.0, kept, rules.NO_RULE, d2_thresholds)
    _assert_same(got, CpuBackend().match(b, 5.0, kept, rules.NO_RULE, d2_thresholds))
    assert got[2].tolist() == [[True, False]]


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("spread, dmax", [(1e-20, 1.0), (5e-324, 1.0), (1e6, 1e-300)],
                         ids=["clustered", "subnormal", "tiny-d"])
def test_clustered_gts_and_tiny_thresholds_equal_cpu(rule, spread, dmax):
    # Cell sizes at the extremes: gts closer than any sensible cell, and a d so small
    # that the grid is sized by the cap on cells alone.
    gx = np.array([0.0, spread, 0.0, spread])
    gy = np.array([0.0, 0.0, spread, spread])
    px = np.array([spread + dmax / 2, 0.0, spread, -0.75 * dmax, 1e15])
    py = np.array([0.0, 0.0, spread, 0.5 * dmax, 0.0])
    b = _batch(gx, gy, np.array([0, 4]), px, py, np.array([0, 5]), np.array(SCORES[:5]))
    d2_thresholds = np.array([0.25, 1.0]) * dmax * dmax
    kept = np.ones(5, bool)
    _assert_same(_backend().candidates(b, dmax), _cpu_candidates(b, dmax))
    _assert_same(_backend().match(b, dmax, kept, RULES[rule], d2_thresholds),
                 CpuBackend().match(b, dmax, kept, RULES[rule], d2_thresholds))


def _count_launches(monkeypatch, backend, kernel):
    calls = []
    launch = backend._launch

    def spy(k, n, *args):
        calls.append(k is kernel)
        launch(k, n, *args)
    monkeypatch.setattr(backend, "_launch", spy)
    return calls


def test_greedy_chain_takes_one_round_per_pair(monkeypatch):
    # gt, pred, gt, pred, ... on a line with growing gaps: each pair is blocked by the
    # smaller one before it, so the rounds settle one pair at a time, left to right.
    gaps = 1.0 + 0.125 * np.arange(11)
    gx, px = np.r_[0.0, np.cumsum(gaps)].reshape(6, 2).T.copy()
    b = _batch(gx, np.zeros(6), np.array([0, 6]), px, np.zeros(6), np.array([0, 6]), np.ones(6))
    backend = _backend()
    rounds = _count_launches(monkeypatch, backend, gpu.kernels.accept)
    match_gt, match_d2, _ = backend.match(b, 3.0, np.ones(6, bool), rules.GREEDY, NO_AP)
    _assert_same((match_gt, match_d2),
                 CpuBackend().match(b, 3.0, np.ones(6, bool), rules.GREEDY, NO_AP)[:2])
    assert match_gt.tolist() == list(range(6))
    assert sum(rounds) == 7  # six that accept one pair each, one that accepts none


@pytest.mark.parametrize("piled_combinations", [8, 1 << 20])
def test_piled_up_points_are_matched_on_the_cpu(piled_combinations, monkeypatch):
    # Group 0: 4 predictions on 4 coincident gts (16 combinations, all within d), whose
    # greedy rounds would accept one pair each; group 1: spread out. Past the bound the
    # batch goes to the CPU: no greedy round on the device, the same numbers.
    gx = np.r_[np.full(4, 2.0), 0.0, 9.0]
    px = np.r_[np.full(4, 2.0), 0.5, 8.0]
    off = np.array([0, 4, 6])
    b = _batch(gx, np.zeros(6), off, px, np.zeros(6), off, np.array(SCORES))
    backend = gpu.GpuBackend(threads=2, point_budget=6, pair_budget=5,
                             piled_combinations=piled_combinations)
    rounds = _count_launches(monkeypatch, backend, gpu.kernels.accept)
    kept, d2_thresholds = np.ones(6, bool), np.array([0.25, 1.0])
    _assert_same(backend.match(b, 1.0, kept, rules.GREEDY, d2_thresholds),
                 CpuBackend().match(b, 1.0, kept, rules.GREEDY, d2_thresholds))
    assert (sum(rounds) == 0) == (piled_combinations == 8)


def test_budgets_split_groups_into_runs():
    # Five groups of 3 gts and 3 predictions, all within d of each other: 9 pairs per
    # group. A group over both budgets still runs, alone.
    rng = np.random.default_rng(7)
    off = np.arange(0, 16, 3)
    b = _batch(*rng.random((2, 15)), off, *rng.random((2, 15)), off, rng.random(15))
    backend = gpu.GpuBackend(threads=2, point_budget=12, pair_budget=4)
    assert len(list(backend._runs(b, 2.0))) == 5
    _assert_same(backend.candidates(b, 2.0), _cpu_candidates(b, 2.0))
    kept = rng.random(15) < 0.7
    _assert_same(backend.match(b, 2.0, kept, rules.GREEDY, NO_AP)[:2],
                 CpuBackend().match(b, 2.0, kept, rules.GREEDY, NO_AP)[:2])


PTX_OF_SQ_DIST = """
import sys
from numba import cuda, types
try:
    from numba.cuda.cudadrv.nvvm import NVVM
    NVVM()
except Exception as exc:
    sys.exit(f"SKIP {type(exc).__name__}: {exc}")
import numba.cuda.dispatcher as dispatcher
class Device:  # device functions ask the current GPU for its compute capability
    compute_capability = (9, 0)
dispatcher.get_current_device = Device
from pointscore.kernels import cuda as kernels
f8 = types.Array(types.float64, 1, "C")
def probe(out, a, b):
    out[0] = kernels._sq_dist(a[0], a[1], b[0], b[1])
print(cuda.compile_ptx(probe, (f8, f8, f8), cc=(9, 0))[0])
"""


def test_squared_distance_compiles_to_rounded_multiplies_and_no_fma():
    # Only where libNVVM is installed (no GPU needed): the simulator cannot see FMAs.
    run = subprocess.run([sys.executable, "-c", PTX_OF_SQ_DIST], capture_output=True,
                         text=True, cwd=ROOT, env={**os.environ, "NUMBA_ENABLE_CUDASIM": "0"})
    if run.returncode and run.stderr.startswith("SKIP"):
        pytest.skip(run.stderr.strip())
    assert run.returncode == 0, run.stderr
    assert "fma" not in run.stdout and run.stdout.count("mul.rn.f64") == 2


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.lists(st.sampled_from([0.0, 0.25, 0.5, 1.0]), min_size=1,
                                max_size=40), min_size=1, max_size=3).filter(
    lambda rows: len({len(r) for r in rows}) == 1))
def test_doubling_suffix_max_equals_accumulate(values):
    # The CuPy route of the AP envelope (CuPy has no maximum.accumulate), run on numpy.
    a = np.array(values)
    assert np.array_equal(doubling_suffix_max(np, a), suffix_max(np, a))


# -- the whole engine ---------------------------------------------------------------------

GT = {"image_id": [1, 1, 1, 1, 2, 2, 2, 4, 4, 5],
      "x": [0.0, 3.0, 3.0, 10.0, 1.0, 2.0, 2.0, 5.0, 5.0, 0.0],
      "y": [0.0, 4.0, 0.0, 10.0, 1.0, 1.0, 1.0, 5.0, 6.0, 0.0],
      "class": ["a", "a", "b", "a", "a", "a", "b", "b", "b", "a"]}
PRED = {"image_id": [1, 1, 1, 1, 1, 2, 2, 2, 3, 4, 4, 4, 4],
        "x": [0.0, 1.5, 3.0, 9.0, 3.0, 1.5, 1.5, 2.0, 7.0, 5.0, 5.0, 6.0, 5.0],
        "y": [0.0, 2.0, 4.0, 10.0, 1.0, 1.0, 1.0, 2.0, 7.0, 5.5, 5.5, 5.0, 9.0],
        "score": [0.9, 0.8, 0.8, 0.5, 0.7, 0.9, 0.9, 0.3, 0.6, 0.4, 0.4, 0.95, 0.2],
        "class": ["a", "a", "a", "a", "b", "a", "a", "b", "a", "b", "b", "b", "b"]}


@pytest.fixture
def tiny_gpu(monkeypatch):
    """Blocks of 4 threads and budgets of a few points and pairs for every GpuBackend."""
    monkeypatch.setattr(gpu, "THREADS", 4)
    monkeypatch.setattr(gpu, "POINT_BUDGET", 9)
    monkeypatch.setattr(gpu, "PAIR_BUDGET", 6)


@pytest.mark.parametrize("score_threshold", [None, 0.5])
@pytest.mark.parametrize("match", ["greedy", "nearest", "hungarian", "kuhn"])
def test_evaluate_on_gpu_equals_cpu(tiny_gpu, match, score_threshold):
    # hungarian matches on the CPU whatever the device; its AP matching is the GPU's.
    kwargs = dict(thresholds=[0.5, 1.0, 2.0, 5.0], match=match, score_threshold=score_threshold)
    on_gpu = pointscore.evaluate(GT, PRED, **kwargs, device="gpu").summary
    on_cpu = pointscore.evaluate(GT, PRED, **kwargs, device="cpu").summary
    assert on_gpu["config"].pop("device") == "gpu"
    assert on_cpu["config"].pop("device") == "cpu"
    assert on_gpu == on_cpu


def test_cli_device_gpu_runs_the_simulator_and_auto_never_picks_it(tiny_gpu, tmp_path, capsys):
    for name, table in (("gt", GT), ("pred", PRED)):
        pa.csv.write_csv(pa.table(table), tmp_path / f"{name}.csv")
    args = ["evaluate", "--gt", str(tmp_path / "gt.csv"), "--pred", str(tmp_path / "pred.csv"),
            "--thresholds", "1,5", "--json", "-"]
    summaries = {}
    for device in ("gpu", "auto"):
        assert cli.main(args + ["--device", device]) == 0
        summaries[device] = json.loads(capsys.readouterr().out)
    assert summaries["gpu"]["config"].pop("device") == "gpu"
    assert summaries["auto"]["config"].pop("device") == "cpu"
    assert summaries["gpu"] == summaries["auto"]
    assert type(backend_for("gpu")[0]).__name__ == "GpuBackend"


def test_detection_never_raises_without_cupy(monkeypatch):
    assert not gpu_usable()  # the simulator is never a usable GPU
    monkeypatch.setenv("NUMBA_ENABLE_CUDASIM", "0")
    monkeypatch.setitem(sys.modules, "cupy", None)  # import cupy fails
    assert not gpu_usable()


NO_DRIVER = """
import sys, types
from numba import cuda
if cuda.is_available():
    sys.exit("SKIP this machine has a CUDA driver")
sys.modules["cupy"] = types.SimpleNamespace(is_available=lambda: True)
from pointscore.backends import backend_for
from pointscore.cpu import CpuBackend
from pointscore.device import gpu_usable
from pointscore import InputError
assert not gpu_usable()
assert backend_for("auto")[0].name == "cpu"
try:
    backend_for("gpu")
except InputError:
    print("refused")
"""


def test_detection_never_raises_without_a_driver():
    # A fresh process with the real numba.cuda (this one holds the simulator's), on a
    # machine without a driver; CuPy is faked as present.
    run = subprocess.run([sys.executable, "-c", NO_DRIVER], capture_output=True, text=True,
                         cwd=ROOT, env={**os.environ, "NUMBA_ENABLE_CUDASIM": "0"})
    if run.returncode and run.stderr.startswith("SKIP"):
        pytest.skip(run.stderr.strip())
    assert run.returncode == 0 and run.stdout.strip() == "refused", run.stderr
