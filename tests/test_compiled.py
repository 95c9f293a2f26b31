"""The kernels compiled ahead of time (pointscore.kernels._compiled, kernels/aot.py)
against the JIT-compiled ones the rest of the suite runs: the same bits on every rule
and option, no Numba imported, the GIL released, never stale.

CI tests the built wheel (POINTSCORE_WHEEL), which must hold the extension; elsewhere,
an install without it skips the tests that need it.
"""
import contextlib
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
import threading

import numpy as np
import pytest

from pointscore.kernels import exact, exports, jit

HAS_COMPILED = importlib.util.find_spec("pointscore.kernels._compiled") is not None
needs_compiled = pytest.mark.skipif(
    not HAS_COMPILED and not os.environ.get("POINTSCORE_WHEEL"),
    reason="this install has no compiled kernels (built without a C compiler?)")

# Every entry kernel is reached: each rule, per-point radii, k-NN scales, count-only
# predictions, piled-up points, GAME and breakdowns, and compare's bootstrap.
MATRIX = """
import json, sys
import numpy as np
import pointscore
from pointscore import warmup
from pointscore.compare import compare
from pointscore.kernels import jit

rng = np.random.default_rng(7)
ids = np.repeat(np.arange(12), rng.integers(0, 60, 12))
gt = {"image_id": ids, "x": rng.uniform(0, 200, ids.size).round(1),
      "y": rng.uniform(0, 150, ids.size).round(1), "radius": np.full(ids.size, 3.0)}
pick = rng.random(ids.size) < 0.8
pred = {"image_id": ids[pick], "x": gt["x"][pick] + rng.normal(0, 2, pick.sum()).round(1),
        "y": gt["y"][pick], "score": rng.random(pick.sum()).round(2)}
images = {"image_id": np.arange(12), "width": np.full(12, 200.0),
          "height": np.full(12, 150.0)}
runs = {}
for name, options in [("greedy", {}), ("nearest", {"match": "nearest"}),
                      ("hungarian", {"match": "hungarian"}), ("kuhn", {"match": "kuhn"}),
                      ("radius", {"radius": "radius", "thresholds": [0.5, 1.0, 2.0]}),
                      ("knn", {"normalize": "knn", "thresholds": [0.5, 1.0]}),
                      ("wh", {"normalize": "wh", "game": 2, "breakdown": "count"})]:
    options.setdefault("thresholds", [1.0, 2.5, 4.0, 8.0])
    report = pointscore.evaluate(gt, pred, images, device="cpu", **options)
    runs[name] = [report.summary, report.per_image.to_pylist()]
runs["piled"] = pointscore.evaluate(warmup.GT, warmup.PILED, warmup.IMAGES,
                                    thresholds=[100.0], device="cpu").summary
runs["counts"] = pointscore.evaluate(warmup.GT, warmup.COUNTS, warmup.IMAGES,
                                     device="cpu").summary
runs["compare"] = compare(gt, [pred, warmup.PRED], images, names=["a", "b"],
                          thresholds=[2.0, 4.0], device="cpu",
                          n_resamples=200).summary
print(json.dumps({"source": jit.SOURCE, "numba": "numba" in sys.modules, "runs": runs},
                 sort_keys=True, default=str))
"""


def _compiled_matrix():
    run = subprocess.run([sys.executable, "-c", MATRIX], capture_output=True, text=True,
                         env={**os.environ, "POINTSCORE_KERNELS": "compiled"}, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout)


def _jit_matrix():
    """In this process, whose kernels are the JIT's (and already compiled, or cached
    for the rest of the suite)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(MATRIX, {})
    return json.loads(out.getvalue())


@needs_compiled
def test_compiled_kernels_give_the_jits_bits_and_import_no_numba():
    compiled, jitted = _compiled_matrix(), _jit_matrix()
    assert (compiled["source"], jitted["source"]) == ("compiled", "jit")
    assert not compiled["numba"]  # nothing to import, nothing compiled
    for name, run in jitted["runs"].items():
        assert compiled["runs"][name] == run, name
    assert json.dumps(compiled["runs"]) == json.dumps(jitted["runs"])  # NaNs and all


@needs_compiled
def test_the_extension_was_built_from_these_sources():
    from pointscore.kernels import _compiled
    assert _compiled.source_digest() == jit.source_digest()
    assert all(hasattr(_compiled, exports.symbol(entry)) for entry in exports.ENTRIES)


@needs_compiled
def test_compiled_kernels_release_the_gil():
    from pointscore.kernels import _compiled
    rng = np.random.default_rng(0)
    n = 2_000_000
    cand_off = np.arange(n + 1, dtype=np.int64)
    cand_gt = rng.integers(0, n, n).astype(np.int64)
    cand_key = rng.random(n)
    kernel = threading.Thread(target=lambda: [_compiled.kuhn__by_gt(cand_off, cand_gt,
                                                                      cand_key)
                                              for _ in range(5)])
    spins = 0
    kernel.start()
    while kernel.is_alive():
        spins += 1  # runs only while the kernel's thread lets go of the GIL
    kernel.join()
    assert spins > 10_000


def test_a_change_to_any_kernel_source_changes_the_digest(tmp_path):
    copy = tmp_path / "kernels"
    shutil.copytree(jit.HERE, copy, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    assert jit.source_digest(copy) == jit.source_digest()
    (copy / "cuda.py").write_text("# the CUDA kernels are not in the extension\n")
    assert jit.source_digest(copy) == jit.source_digest()
    rules = copy / "rules.py"
    rules.write_text(rules.read_text().replace("kmax = tmax * tmax", "kmax = tmax * tmax  #"))
    assert jit.source_digest(copy) != jit.source_digest()


def test_signatures_parse_into_dtypes_and_dimensions():
    assert jit.parse_signature("u1[:, ::1], i8, f8[::1], b1[:, :, :, ::1], i4[::1]") == [
        (np.uint8, 2), (np.int64, 0), (np.float64, 1), (np.bool_, 4), (np.int32, 1)]
    for entry, signature in exports.ENTRIES.items():
        module, name = entry.split(".")
        kernel = getattr(importlib.import_module(f"pointscore.kernels.{module}"), name)
        assert len(jit.parse_signature(signature)) == kernel.py_func.__code__.co_argcount


SWAP = """
import numpy as np
from pointscore.kernels import exact, jit
partials, counts = np.zeros((2, exact.MAX_PARTIALS)), np.zeros(2, np.int64)
keys = np.array([0, 1, 1], KEYS)
try:
    exact.add_values(partials, counts, keys, np.array([0.1, 0.2, 0.3]))
    print(jit.SOURCE, "ran", counts.tolist(), partials[:, :2].tolist())
except TypeError as error:
    print(jit.SOURCE, "refused", error)
"""


@needs_compiled
def test_arguments_the_compiled_kernel_was_not_built_for(tmp_path):
    """int32 keys do not fit add_values' compiled signature: auto mode runs them on the
    JIT (the same sums), compiled mode refuses them instead of reading them as int64,
    and what the JIT compiled for them leaves Numba's cache good for a JIT run."""
    out = {}
    for mode, keys in (("auto", "np.int64"), ("auto", "np.int32"), ("compiled", "np.int32"),
                       ("jit", "np.int32")):
        env = {**os.environ, "POINTSCORE_KERNELS": mode, "NUMBA_CACHE_DIR": str(tmp_path)}
        run = subprocess.run([sys.executable, "-c", SWAP.replace("KEYS", keys)], env=env,
                             capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr[-2000:]
        out[mode, keys] = run.stdout.strip(), run.stderr
    sums = out["auto", "np.int64"][0].removeprefix("compiled ran")
    assert out["auto", "np.int64"][0].startswith("compiled ran")
    assert out["auto", "np.int32"][0] == "compiled ran" + sums
    assert "exact.add_values was called with arguments its compiled kernel was not built " \
        "for" in out["auto", "np.int32"][1]
    assert out["compiled", "np.int32"][0].startswith("compiled refused exact.add_values")
    assert out["jit", "np.int32"][0] == "jit ran" + sums


def test_only_what_the_jit_would_type_as_the_signature_fits():
    fits = jit._fits
    assert fits(3, np.int64, 0) and fits(np.int64(3), np.int64, 0) and fits(-2**63, np.int64, 0)
    for value in (2**63, np.uint64(3), np.int32(3), 3.0, True):
        assert not fits(value, np.int64, 0), value
    assert fits(0.5, np.float64, 0) and fits(np.float64(0.5), np.float64, 0)
    for value in (np.float32(0.5), 1, np.int64(1)):  # the JIT would type these otherwise
        assert not fits(value, np.float64, 0), value
    array = np.zeros((3, 4))
    assert fits(array, np.float64, 2)
    read_only = array.copy()
    read_only.flags.writeable = False
    for value in (array[:, 1:], array.T, read_only, array.astype(np.float32), array[0]):
        assert not fits(value, np.float64, 2)


def test_an_unknown_kernels_mode_is_refused():
    run = subprocess.run([sys.executable, "-c", "import pointscore.kernels.rules"],
                         env={**os.environ, "POINTSCORE_KERNELS": "fast"},
                         capture_output=True, text=True, timeout=120)
    assert run.returncode and "POINTSCORE_KERNELS='fast': use one of auto, compiled, jit" \
        in run.stderr


def test_this_suite_runs_the_jit():
    assert jit.SOURCE == "jit" and exact.add_values.__class__.__name__ == "CPUDispatcher"



@needs_compiled
def test_the_images_warmup_step_compiles_nothing(tmp_path):
    """The Docker images' build step (POINTSCORE_KERNELS=compiled pointscore warmup) with
    an empty Numba cache: every kernel runs, and nothing is compiled or cached."""
    cache = tmp_path / "numba-cache"
    env = {**os.environ, "POINTSCORE_KERNELS": "compiled", "NUMBA_CACHE_DIR": str(cache)}
    warm = subprocess.run([sys.executable, "-m", "pointscore", "warmup"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert warm.returncode == 0, warm.stderr[-2000:]
    assert warm.stdout.splitlines()[-1].startswith("every kernel ran")
    assert "nothing to compile" in warm.stdout
    assert not cache.exists() or not any(cache.rglob("*"))


def test_the_thread_count_follows_numba_or_its_environment(monkeypatch):
    import numba

    from pointscore.group_threads import thread_count
    assert thread_count() == numba.get_num_threads()  # Numba is in use in this suite
    monkeypatch.delitem(sys.modules, "numba")
    monkeypatch.setenv("NUMBA_NUM_THREADS", "3")
    assert thread_count() == 3
    monkeypatch.setenv("NUMBA_NUM_THREADS", "three")  # as Numba: ignored
    assert thread_count() == len(os.sched_getaffinity(0))
