"""The commands the Docker image runs, run here as written in docker/Dockerfile (this
machine has no Docker engine): the store build, the server command and the healthcheck."""

import json
import os
import re
import shlex
import subprocess
import sys

import pytest

from .helpers import BASISDB_COMMAND, REPO_ROOT, free_port, stop, wait_until_healthy

pytestmark = pytest.mark.slow  # a store build, a server

DOCKERFILE = (REPO_ROOT / "docker" / "Dockerfile").read_text()


def dockerfile_env() -> dict[str, str]:
    block = re.search(r"^ENV (.*?)(?=^\S)", DOCKERFILE, re.M | re.S).group(1)
    return dict(pair.split("=", 1) for pair in shlex.split(block.replace("\\\n", " ")))


def test_image_commands_work_outside_docker(tmp_path):
    env = {**os.environ, **dockerfile_env()}
    store = tmp_path / "store.h5"
    env["BASISDB_SERVICE_STORE"] = str(store)

    # the image runs the console command that its `pip install` put on the path
    build = re.search(r"^RUN (basisdb build .*)$", DOCKERFILE, re.M).group(1)
    build = build.replace(dockerfile_env()["BASISDB_SERVICE_STORE"], str(store))
    assert subprocess.run([BASISDB_COMMAND, *shlex.split(build)[1:]], env=env, timeout=600).returncode == 0

    port = free_port()
    command = json.loads(re.search(r"^CMD (\[.*\])$", DOCKERFILE, re.M).group(1))
    assert command[:2] == ["basisdb", "serve"], command
    command = [BASISDB_COMMAND, *command[1:]]
    command[command.index("--port") + 1] = str(port)
    command[command.index("--host") + 1] = "127.0.0.1"
    server = subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        health = wait_until_healthy(f"http://127.0.0.1:{port}", server)
        assert health["store"]["n_settings"] == 230
        check = re.search(r"^HEALTHCHECK .*? CMD (.*)$", DOCKERFILE, re.M).group(1).replace(":8000", f":{port}")
        check = check.replace("python", shlex.quote(sys.executable), 1)
        assert subprocess.run(check, shell=True, timeout=30).returncode == 0
    finally:
        stop(server)
    assert "USER basisdb" in DOCKERFILE and "python:3.11-slim" in DOCKERFILE


def test_the_image_installs_pinned_hashed_dependencies_that_satisfy_the_project():
    """docker/requirements-service.lock pins, with hashes, a version of every dependency the
    service declares (pyproject.toml: the core's and the ``service`` extra's) that satisfies
    its specifier; the Dockerfile installs from it with --require-hashes and adds none."""
    import tomllib

    from packaging.requirements import Requirement

    lock = (REPO_ROOT / "docker" / "requirements-service.lock").read_text()
    pinned = {
        re.sub(r"[-_.]+", "-", name).lower(): version
        for name, version in re.findall(r"^([A-Za-z0-9_.\-]+)==(\S+) \\$", lock, re.M)
    }
    assert lock.count("==") == len(pinned) and lock.count("--hash=sha256:") >= len(pinned)
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    for line in project["dependencies"] + project["optional-dependencies"]["service"]:
        requirement = Requirement(line)
        name = re.sub(r"[-_.]+", "-", requirement.name).lower()
        assert name in pinned, f"{name} is not in the lock: regenerate it (see its header)"
        assert requirement.specifier.contains(pinned[name]), f"{name}=={pinned[name]} does not satisfy {line}"
    assert "RUN pip install --require-hashes -r requirements-service.lock" in DOCKERFILE
    assert "RUN pip install --no-deps ." in DOCKERFILE
