"""Test-wide settings, applied before numba is first imported.

- NUMBA_BOUNDSCHECK=1: an out-of-bounds index in a kernel raises instead of reading junk.
- NUMBA_ENABLE_CUDASIM=1: the CUDA kernels run in Numba's simulator on this GPU-less CI.
- NUMBA_CACHE_DIR: bounds-checked builds are cached apart from the normal ones.
- Blocks of 2 threads for the CUDA kernels (``tiny_cuda_blocks``): many blocks and rounds
  run, and the simulator runs each thread of a block in Python; threads switch every
  50 us, and the simulator's shared arrays are created under a lock (see below).
- POINTSCORE_KERNELS=jit: the kernels run on Numba's JIT, bounds-checked, not on the
  extension compiled when the package was built (tests/test_compiled.py runs that one
  and checks it gives the JIT's bits).
"""
import os
import pathlib
import sys
import threading

ROOT = pathlib.Path(__file__).resolve().parent.parent
os.environ.setdefault("NUMBA_BOUNDSCHECK", "1")
os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".numba-test-cache"))
os.environ["POINTSCORE_KERNELS"] = "jit"
sys.path.insert(0, str(ROOT))  # bench/ holds the COCO peers used as an oracle
# The CUDA simulator runs a block's threads as Python threads that wait for each other
# at every syncthreads: at Python's default switch interval (5 ms) each wait costs
# milliseconds, and a block-per-group kernel's test took a minute instead of a second.
sys.setswitchinterval(5e-5)

# Every summary and comparison the tests produce is checked against the JSON Schemas the
# package publishes (docs/metrics.md, section 7).
import jsonschema  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from numba.core import types  # noqa: E402
from numba.cuda.simulator import kernelapi  # noqa: E402
from numba.np import numpy_support  # noqa: E402

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
    monkeypatch.setattr(pointscore.gpu, "THREADS", 2)


def _simulated_shared_array(self, shape, dtype):
    """The simulator's cuda.shared.array, its check-then-create under a lock: the threads
    of a block each ask for the array, and two that both found none made two arrays, so
    lanes wrote where lane 0 never read (seen once threads switch every 50 us). Keyed,
    as the simulator's own, by the calling line."""
    if shape == 0:  # dynamic shared memory: one buffer, no race
        return _UNLOCKED_SHARED_ARRAY(self, shape, dtype)
    caller = sys._getframe(1)
    key = (caller.f_code.co_filename, caller.f_lineno)
    with _SHARED_LOCK:
        if key not in self._allocations:
            as_numpy = numpy_support.as_dtype(dtype) if isinstance(dtype, types.Type) else dtype
            self._allocations[key] = np.empty(shape, as_numpy)
        return self._allocations[key]


_UNLOCKED_SHARED_ARRAY = kernelapi.FakeCUDAShared.array
_SHARED_LOCK = threading.Lock()
kernelapi.FakeCUDAShared.array = _simulated_shared_array
