"""The distribution: one top-level package, whatever else is installed beside it.

CI builds the wheel, installs it in a fresh virtual environment and runs the suite
against it; it names the wheel in POINTSCORE_WHEEL. Elsewhere the wheel is built here.
"""
import json
import os
import subprocess
import sys
import zipfile

import pytest

import pointscore

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    given = os.environ.get("POINTSCORE_WHEEL")
    if given:
        return given
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet",
                            "--wheel-dir", str(out), ROOT], capture_output=True, text=True)
    if built.returncode:
        pytest.skip(f"cannot build the wheel here: {built.stderr.strip()[-200:]}")
    [name] = os.listdir(out)
    return str(out / name)


def test_the_wheel_installs_pointscore_and_nothing_else_at_the_top(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    top = {name.split("/")[0] for name in names}
    [info] = [t for t in top if t.endswith(".dist-info")]
    assert top == {"pointscore", info} and info.startswith("pointscore-")
    # The kernels, the command line and the published schemas are inside it.
    for member in ("pointscore/kernels/rules.py", "pointscore/cli/__init__.py",
                   "pointscore/__main__.py",
                   "pointscore/schemas/summary.schema.json",
                   "pointscore/schemas/compare.schema.json"):
        assert member in names
    # the kernels compiled ahead of time (kernels/aot.py): a run compiles nothing
    assert any(name.startswith("pointscore/kernels/_compiled.") and name.endswith(".so")
               for name in names), "the wheel was built without its compiled kernels"
    with zipfile.ZipFile(wheel) as archive:
        entry_points = archive.read(f"{info}/entry_points.txt").decode()
    assert "pointscore = pointscore.cli:main" in entry_points


FOREIGN = {"engine/__init__.py": "raise ImportError('a foreign engine was imported')\n",
           "kernels/__init__.py": "raise ImportError('a foreign kernels was imported')\n"}

RUN = """
import json, sys
import pointscore
from pointscore.cli import main
gt = {"image_id": [0, 0, 1], "x": [0.0, 3.0, 1.0], "y": [0.0, 4.0, 1.0]}
pred = {"image_id": [0, 1], "x": [0.5, 1.0], "y": [0.0, 2.0], "score": [0.9, 0.4]}
print(json.dumps(pointscore.evaluate(gt, pred, thresholds=[1.0, 2.0], device="cpu").summary))
"""


def test_foreign_engine_and_kernels_first_on_the_path_change_nothing(tmp_path):
    for name, text in FOREIGN.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path),
                                                         os.environ.get("PYTHONPATH", "")])}
    shadowed = subprocess.run([sys.executable, "-c", RUN], capture_output=True, text=True,
                              cwd=tmp_path, env=env)
    assert shadowed.returncode == 0, shadowed.stderr
    plain = subprocess.run([sys.executable, "-c", RUN], capture_output=True, text=True,
                           cwd=ROOT)
    assert json.loads(shadowed.stdout) == json.loads(plain.stdout)
    command = subprocess.run([sys.executable, "-m", "pointscore", "--help"],
                             capture_output=True, text=True, cwd=tmp_path, env=env)
    assert command.returncode == 0 and "evaluate" in command.stdout


def test_the_version_is_the_distributions():
    from importlib.metadata import version
    assert pointscore.__version__ == version("pointscore")
