"""`pointscore warmup` (the Docker images run it when they are built): afterwards, runs
compile nothing, so Numba's cache does not grow."""
import os
import pathlib
import re
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq

from pointscore import warmup

DOCKER = pathlib.Path(__file__).resolve().parent.parent / "docker"


def cached_files(folder):
    return {path.relative_to(folder) for path in folder.rglob("*") if path.is_file()}


def test_after_warmup_runs_compile_nothing(tmp_path):
    cache = tmp_path / "numba-cache"
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
    pointscore = [sys.executable, "-m", "pointscore"]
    warm = subprocess.run([*pointscore, "warmup"], env=env, capture_output=True, text=True,
                          timeout=600, check=False)
    assert warm.returncode == 0, warm.stderr[-2000:]
    assert warm.stdout.splitlines()[-1].startswith("every kernel compiled")
    compiled = cached_files(cache)
    assert any(name.suffix == ".nbc" for name in compiled)
    paths = {}
    for name, table in (("gt", warmup.GT), ("pred", warmup.PRED), ("images", warmup.IMAGES),
                        ("counts", warmup.COUNTS), ("piled", warmup.PILED)):
        paths[name] = str(tmp_path / f"{name}.parquet")
        pq.write_table(pa.table(table), paths[name])
    tables = ["--gt", paths["gt"], "--images", paths["images"], "--device", "cpu"]
    for argv in (["evaluate", "--pred", paths["pred"], "--thresholds", "1,3,9"],
                 ["evaluate", "--pred", paths["pred"], "--match", "hungarian"],
                 ["evaluate", "--pred", paths["pred"], "--match", "kuhn"],
                 ["evaluate", "--pred", paths["pred"], "--radius-column", "radius",
                  "--thresholds", "0.5,1", "--match", "nearest"],
                 ["evaluate", "--pred", paths["pred"], "--normalize", "knn", "--game", "1",
                  "--breakdown", "count"],
                 ["evaluate", "--pred", paths["counts"]],
                 ["evaluate", "--pred", paths["piled"], "--thresholds", "100"],
                 ["compare", "--pred", paths["pred"], paths["pred"], "--names", "a,b",
                  "--bootstrap", "50"]):
        run = subprocess.run([*pointscore, *argv, *tables], env=env, capture_output=True,
                             text=True, timeout=300, check=False)
        assert run.returncode == 0, run.stderr[-2000:]
    assert cached_files(cache) == compiled


def test_the_images_run_warmup_when_built():
    for name in ("Dockerfile.cpu", "Dockerfile.gpu"):
        text = (DOCKER / name).read_text()
        # as the user who runs the image, into the cache its runs read
        user = text.index("USER 10001")
        # the build fails unless the kernels compiled ahead of time load and run
        assert re.search(r"^RUN POINTSCORE_KERNELS=compiled pointscore warmup$", text[user:],
                         re.MULTILINE), name
        assert "COPY pyproject.toml setup.py README.md ./" in text, name
        assert "NUMBA_CACHE_DIR=/home/pointscore/.cache/numba" in text
        assert "NUMBA_CPU_NAME=generic" in text
