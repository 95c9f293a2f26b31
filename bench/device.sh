#!/usr/bin/env bash
# The GPU check on a lent device machine (an H100 or H200), as one run of the `device`
# tool, about 6 minutes of its 15:
#   command: bash bench/device.sh    carry: [".whl"]    timeout_s: 540
# The machine's image has numba, numba-cuda, CuPy, pyarrow, scipy, pytest and
# hypothesis; the tests' conftest also needs jsonschema, which travels as wheels in .whl/
# (bench/README.md: "On a lent GPU machine" says how to fetch them).
# Into $OUT: nvidia-smi, the CUDA tests with the simulator off, and the NWPU-scale
# benchmark on the GPU with the same machine's CPU row and the GPU's stage split.
set -uo pipefail
out=${OUT:-/tmp/pointscore-device}
mkdir -p "$out"
nvidia-smi > "$out/nvidia-smi.txt" 2>&1
if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site
fi
# The checkout as the installed package lays it out (engine/ is pointscore, kernels/ is
# pointscore.kernels), on Numba's JIT: nothing to build there.
mkdir -p /tmp/pkg
ln -sfn "$PWD/engine" /tmp/pkg/pointscore
ln -sfn "$PWD/kernels" engine/kernels
export PYTHONPATH="/tmp/pkg:$PWD:${PYTHONPATH:-}" PYTHONUNBUFFERED=1 NUMBA_ENABLE_CUDASIM=0
timeout 200 python3 -m pytest -q -p no:cacheprovider tests/test_cuda_sim.py 2>&1 \
    | tee "$out/cuda-tests.txt"
timeout 150 python3 -m bench --preset nwpu --device gpu --peers "" --no-cold 2>&1 \
    | tee "$out/bench-nwpu.txt"
timeout 90 python3 -m bench --preset nwpu --device gpu --peers "" --profile 2>&1 \
    | tee "$out/bench-nwpu-stages.txt"
