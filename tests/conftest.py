"""Test-wide settings, applied before numba is first imported.

- NUMBA_BOUNDSCHECK=1: an out-of-bounds index in a kernel raises instead of reading junk.
- NUMBA_ENABLE_CUDASIM=1: the CUDA kernels run in Numba's simulator on this GPU-less CI.
- NUMBA_CACHE_DIR: bounds-checked builds are cached apart from the normal ones.
- Blocks of 4 threads for the CUDA kernels (``tiny_cuda_blocks``): many blocks and rounds
  run, and the simulator runs each thread of a block in Python.
- POINTSCORE_KERNELS=jit: the kernels run on Numba's JIT, bounds-checked, not on the
  extension compiled when the package was built (tests/test_compiled.py runs that one
  and checks it gives the JIT's bits).
"""
import os
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
os.environ.setdefault("NUMBA_BOUNDSCHECK", "1")
os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".numba-test-cache"))
os.environ["POINTSCORE_KERNELS"] = "jit"
sys.path.insert(0, str(ROOT))  # bench/ holds the COCO peers used as an oracle

# Every summary and comparison the tests produce is checked against the JSON Schemas the
# package publishes (docs/metrics.md, section 7).
import jsonschema  # noqa: E402
import pytest  # noqa: E402

import pointscore.compare  # noqa: E402
import pointscore.entrypoints  # noqa: E402
import pointscore.gpu  # noqa: E402
import pointscore.state  # noqa: E402

VALIDATORS = {name: jsonschema.Draft202012Validator(pointscore.schema(name))
              for name in ("summary", "compare")}


def _validated(function, schema_name, part=lambda result: result):
    def checked(*args, **kwargs):
        result = function(*args, **kwargs)
        VALIDATORS[schema_name].validate(part(result))
        return result
    return checked


pointscore.state.summarize = _validated(pointscore.state.summarize, "summary")
# A protocol's table is added to the summary after it is made.
pointscore.entrypoints.finish = _validated(pointscore.entrypoints.finish, "summary",
                                           lambda report: report.summary)
pointscore.compare.compare = _validated(pointscore.compare.compare, "compare",
                                        lambda comparison: comparison.summary)


@pytest.fixture(autouse=True)
def tiny_cuda_blocks(monkeypatch):
    monkeypatch.setattr(pointscore.gpu, "THREADS", 4)
