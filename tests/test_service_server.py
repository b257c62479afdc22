"""Smoke tests: the real server process on a free loopback port, over real HTTP."""

import os
import re
import socket
import subprocess
import sys
import threading

import httpx
import numpy as np
import pytest

from basisdb import BasisStore
from basisdb.service.config import ServiceSettings

from .helpers import BASISDB_COMMAND, REPO_ROOT, free_port, run_basisdb, serve, stop, wait_until_healthy

pytestmark = pytest.mark.slow  # server processes


def exercise(url, store_path):
    with BasisStore.open(store_path) as store:
        basis = store.basis(227, radius=4)
        health = httpx.get(f"{url}/v1/health").json()
        assert health["store"]["fingerprint"] == store.fingerprint
        document = httpx.get(f"{url}/v1/groups/227/basis", params={"radius": 4}).json()
        assert np.array_equal(document["frequencies"], basis.frequencies)
        x = np.random.default_rng(0).random((20, 3))
        encoded = httpx.post(f"{url}/v1/encode", json={"group": 227, "radius": 4, "positions": x.tolist()}).json()
        assert np.allclose(np.asarray(encoded["real"]) + 1j * np.asarray(encoded["imag"]), basis.encode(x), atol=1e-13)
        assert httpx.get(f"{url}/v1/groups/999").status_code == 404
        assert (
            httpx.post(
                f"{url}/v1/encode", content=b"{not json", headers={"content-type": "application/json"}
            ).status_code
            == 422
        )


def test_python_dash_m_service(small_store):
    port = free_port()
    process = serve([BASISDB_COMMAND, "serve", "--store", str(small_store), "--host", "127.0.0.1", "--port", str(port)])
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_healthy(url, process)
        exercise(url, small_store)
    finally:
        stop(process)


def test_a_port_in_use_is_a_clear_error_before_the_store_is_read(tmp_path):
    """A port another process listens on stops ``basisdb serve`` at once, with the port and
    what to do, before it opens (or would build) the store."""
    missing = tmp_path / "never-built.h5"
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = run_basisdb("serve", "--store", str(missing), "--port", str(port), timeout=60)
    assert result.returncode != 0 and not missing.exists()
    assert f"cannot listen on '127.0.0.1', port {port}" in result.stderr, result.stderr
    assert "--port (BASISDB_SERVICE_PORT; 0 lets the system choose a free one)" in result.stderr
    assert "Traceback" not in result.stderr


def _read_lines(process: subprocess.Popen, count: int, timeout: float = 60) -> list[str]:
    """The first ``count`` lines of a process's stdout, or a failure (with its stderr) if they
    do not come within ``timeout`` seconds."""
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stdout.readline() for _ in range(count)))
    reader.start()
    reader.join(timeout)
    if reader.is_alive() or not all(lines):
        stop(process)  # which ends the reader: its pipe closes
        reader.join()
        pytest.fail(f"stdout gave {lines} (exit {process.returncode}): {process.stderr.read()}")
    return [line.rstrip("\n") for line in lines]


@pytest.mark.parametrize("workers", [1, 2])
def test_python_dash_m_service_says_what_it_serves_and_where(small_store, workers):
    """Two lines on stdout before uvicorn starts: the store (path, settings, fingerprint) and
    the address, with the explorer's; --port 0 prints the port the system gave, which the
    server (one process, or uvicorn's supervisor of several) keeps bound and serves."""
    process = subprocess.Popen(
        [BASISDB_COMMAND, "serve", "--store", str(small_store), "--port", "0", "--workers", str(workers)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        store_line, address_line = _read_lines(process, 2)
        with BasisStore.open(small_store) as store:
            fingerprint = store.fingerprint
        assert store_line.startswith(f"serving {small_store} (230 settings, radii 2, 3, 4; fingerprint ")
        assert fingerprint[:16] in store_line and "checksums verified" in store_line
        match = re.match(r"at (http://127\.0\.0\.1:(\d+)) \(explorer: (\S+), API docs: (\S+)\)", address_line)
        assert match, address_line
        url, port = match.group(1), int(match.group(2))
        assert port != 0 and match.group(3) == f"{url}/explorer" and match.group(4) == f"{url}/docs"
        with socket.socket() as other, pytest.raises(OSError):  # bound since it was chosen
            other.bind(("127.0.0.1", port))
        health = wait_until_healthy(url, process)  # the printed address is the one served
        assert health["store"]["fingerprint"] == fingerprint
        assert httpx.get(f"{url}/explorer").status_code == 200
    finally:
        stop(process)


def test_uvicorn_with_two_workers(small_store):
    port = free_port()
    process = serve(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "basisdb.service.app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "2",
            "--http",
            "basisdb.service.protocol:GuardedHttpToolsProtocol",
        ],
        env={"BASISDB_SERVICE_STORE": str(small_store)},
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_healthy(url, process)
        for _ in range(3):
            exercise(url, small_store)
    finally:
        stop(process)


def test_uvicorn_is_bounded_to_the_releases_the_connection_limits_were_tested_with():
    """The connection limits subclass uvicorn's httptools protocol: a release beyond the
    tested ones is not installed unseen, and the one installed is within the bound."""
    from importlib.metadata import requires, version

    from packaging.requirements import Requirement

    uvicorn = next(Requirement(line) for line in requires("basisdb") if line.startswith("uvicorn"))
    assert any(bound.operator == "<" for bound in uvicorn.specifier), uvicorn
    assert version("uvicorn") in uvicorn.specifier


def test_every_setting_is_an_option_with_its_default():
    result = subprocess.run(
        [BASISDB_COMMAND, "serve", "--help"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    for option, default in [
        ("--max-output-values", "4000000"),
        ("--max-atoms", "2000"),
        ("--max-heavy-requests", "2"),
        ("--header-timeout", "10.0"),
        ("--max-connections", "1024"),
        ("--verify-store", "True"),
        ("--shutdown-timeout", "3.0"),
        ("--explorer", "True"),
        ("--cors-origin", "none"),
        ("--log-level", "warning"),
    ]:
        assert option in text and f"(default: {default})" in text.rsplit(option, 1)[1][:400], option  # its help line
    # Every setting is an option, and every option's help ends with its default.
    for name in set(ServiceSettings.model_fields) - {"store_verified"}:
        assert f"--{name.replace('_', '-')}".removesuffix("s") in result.stdout, name
    options = re.split(r"\n  (?=-)", result.stdout.split("options:", 1)[1])[1:]
    undocumented = [option.split()[0] for option in options if "(default: " not in " ".join(option.split())]
    assert undocumented == ["-h,"], undocumented  # --help alone


@pytest.mark.parametrize(
    "options, environment, message",
    [
        (["--port", "70000"], {}, "error: --port (BASISDB_SERVICE_PORT): Input should be less than or equal to 65535"),
        (
            [],
            {"BASISDB_SERVICE_WORKERS": "x"},
            "error: --workers (BASISDB_SERVICE_WORKERS): Input should be a valid integer",
        ),
    ],
)
def test_bad_settings_are_one_clear_error_line(options, environment, message):
    result = subprocess.run(
        [BASISDB_COMMAND, "serve", *options],
        cwd=REPO_ROOT,
        env={**os.environ, **environment},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith(message), result.stderr


def test_missing_store_is_a_clear_startup_error(tmp_path):
    result = subprocess.run(
        [BASISDB_COMMAND, "serve", "--store", str(tmp_path / "none.h5")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "no basis store at" in result.stderr
