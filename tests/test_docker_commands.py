"""The commands the Docker image runs, run here as written in docker/Dockerfile (this
machine has no Docker engine): the store build, the server command and the healthcheck."""

import json
import os
import re
import shlex
import subprocess
import sys

from .helpers import REPO_ROOT, free_port, stop, wait_until_healthy

DOCKERFILE = (REPO_ROOT / "docker" / "Dockerfile").read_text()


def dockerfile_env() -> dict[str, str]:
    block = re.search(r"^ENV (.*?)(?=^\S)", DOCKERFILE, re.M | re.S).group(1)
    return dict(pair.split("=", 1) for pair in shlex.split(block.replace("\\\n", " ")))


def test_image_commands_work_outside_docker(tmp_path):
    env = {**os.environ, **dockerfile_env()}
    store = tmp_path / "store.h5"
    env["BASISDB_SERVICE_STORE"] = str(store)

    build = re.search(r"^RUN (python build_db\.py .*)$", DOCKERFILE, re.M).group(1)
    build = build.replace(dockerfile_env()["BASISDB_SERVICE_STORE"], str(store)).replace("python", sys.executable, 1)
    assert subprocess.run(shlex.split(build), cwd=REPO_ROOT, env=env, timeout=600).returncode == 0

    port = free_port()
    command = json.loads(re.search(r"^CMD (\[.*\])$", DOCKERFILE, re.M).group(1))
    command = [sys.executable if part == "python" else part for part in command]
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
