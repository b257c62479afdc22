"""The service under hostile clients: the real server (``basisdb serve``) in a process
with a memory cap, on a loopback port, sent what an attacker sends.  Every request gets a
4xx or a deliberate 503 within seconds, nothing is imported or opened on a client's behalf,
and /v1/health keeps answering."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import h5py
import httpx
import numpy as np
import pytest

from .helpers import BASISDB_COMMAND, REPO_ROOT, fcc_cif, free_port, p1_structure, wait_until_healthy

MEMORY_CAP = 3 << 30  # address space of the server process: a runaway allocation fails, not the machine


def _limit_memory():
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


class Server:
    """``basisdb serve`` in a subprocess with a memory cap; ``url``, ``stdout`` text."""

    def __init__(self, store: Path, *options: str, env: dict[str, str] | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(Path(store).with_suffix(f".{self.port}.log"), "w+")
        self.process = subprocess.Popen(
            [BASISDB_COMMAND, "serve", "--store", str(store), "--port", str(self.port), *options],
            cwd=REPO_ROOT,
            env={**os.environ, **(env or {})},
            stdout=self.log,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=_limit_memory,
        )

    def output(self) -> str:
        with open(self.log.name) as log:
            return log.read()

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 20) -> float:
        began = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        stopped = time.monotonic() - began
        self.log.close()
        return stopped


LIMITS = (
    "--max-output-values",
    "200000",
    "--max-atoms",
    "400",
    "--max-heavy-requests",
    "2",
    "--request-timeout",
    "8",
    "--header-timeout",
    "1",
    "--body-timeout",
    "1",
    "--max-connections",
    "200",
    "--max-body-bytes",
    "2000000",
    "--max-positions",
    "20000",
)


@pytest.fixture(scope="module")
def server(small_store):
    running = Server(small_store, *LIMITS)
    wait_until_healthy(running.url, running.process)
    yield running
    running.stop()


def health_ms(url: str, client: httpx.Client | None = None) -> float:
    """Milliseconds for /v1/health (pass a client to reuse its connection: a new one costs
    the test process more than the server)."""
    client = client or httpx.Client(timeout=5)
    began = time.perf_counter()
    assert client.get(f"{url}/v1/health", timeout=5).status_code == 200
    return 1000 * (time.perf_counter() - began)


class HealthPoll:
    """Polls /v1/health in a thread while the block runs; ``latencies`` in milliseconds."""

    def __init__(self, url: str, every: float = 0.005):
        self.url, self.every = url, every
        self.latencies: list[float] = []
        self._stop = threading.Event()

    def __enter__(self) -> HealthPoll:
        self._thread = threading.Thread(target=self._poll)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _poll(self) -> None:
        with httpx.Client() as polling:
            while not self._stop.is_set():
                self.latencies.append(health_ms(self.url, polling))
                time.sleep(self.every)


def timed(call):
    began = time.monotonic()
    result = call()
    return result, time.monotonic() - began


# -- ranges and selections -------------------------------------------------------------------


@pytest.mark.parametrize(
    "groups, status, message",
    [
        ("1-9999999999", 404, "9999999999 in '1-9999999999' is outside 1-230"),
        ("0", 404, "outside 1-230"),
        ("5-1", 422, "is empty"),
    ],
)
def test_export_ranges_are_checked_before_they_are_expanded(server, groups, status, message):
    answer, seconds = timed(
        lambda: httpx.get(f"{server.url}/v1/export", params={"groups": groups, "radii": "2"}, timeout=10)
    )
    assert answer.status_code == status and message in answer.json()["detail"] and seconds < 1
    assert server.alive()


# -- encodings -------------------------------------------------------------------------------


def test_an_encoding_whose_answer_is_too_large_is_413_before_any_work(server):
    body = {"group": 1, "radius": 4, "positions": np.random.default_rng(0).random((10_000, 3)).tolist()}
    answer, seconds = timed(lambda: httpx.post(f"{server.url}/v1/encode", json=body, timeout=10))
    assert answer.status_code == 413, answer.text
    assert "10000 positions x 256 basis functions x 2 parts" in answer.json()["detail"] and seconds < 2


def test_too_many_positions_is_413_before_parsing(server):
    many = b'{"group": 1, "radius": 2, "positions": [' + b",".join([b"[0,0,0]"] * 50_000) + b"]}"  # 400 KB
    answer, seconds = timed(
        lambda: httpx.post(
            f"{server.url}/v1/encode", content=many, headers={"content-type": "application/json"}, timeout=10
        )
    )
    assert answer.status_code == 413 and "20000" in answer.json()["detail"] and seconds < 1
    big = b" " * 3_000_000  # over max_body_bytes: refused on its Content-Length, before it is read
    answer, seconds = timed(
        lambda: httpx.post(
            f"{server.url}/v1/encode", content=big, headers={"content-type": "application/json"}, timeout=10
        )
    )
    assert answer.status_code == 413 and seconds < 1


def test_large_answers_stream_and_concurrent_heavy_requests_are_bounded(server):
    """Six clients ask for large answers at once: two run, the others get 503 with
    Retry-After at once, and /v1/health answers fast throughout."""
    body = {"group": 1, "radius": 4, "positions": np.random.default_rng(1).random((390, 3)).tolist()}  # 199,680 numbers
    statuses, bodies = [], []

    def client():
        with httpx.stream("POST", f"{server.url}/v1/encode", json=body, timeout=30) as answer:
            statuses.append((answer.status_code, answer.headers.get("retry-after")))
            bodies.append(b"".join(answer.iter_bytes()) if answer.status_code == 200 else None)

    with HealthPoll(server.url, every=0.01) as health:
        clients = [threading.Thread(target=client) for _ in range(6)]
        for thread in clients:
            thread.start()
        for thread in clients:
            thread.join()
    latencies = health.latencies
    codes = [status for status, _ in statuses]
    assert set(codes) <= {200, 503} and codes.count(200) >= 2, statuses
    for answer in filter(None, bodies):
        assert np.asarray(json.loads(answer)["real"]).shape == (390, 256)
    assert all(retry == "1" for status, retry in statuses if status == 503)
    assert max(latencies) < 500 and np.percentile(latencies, 90) < 100, latencies


def test_work_stops_when_the_client_leaves(server):
    body = {"group": 1, "radius": 4, "positions": np.random.default_rng(2).random((390, 3)).tolist()}
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", server.port)) as raw:
            payload = json.dumps(body).encode()
            raw.sendall(
                b"POST /v1/encode HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: "
                + str(len(payload)).encode()
                + b"\r\n\r\n"
                + payload
            )
            raw.recv(100)  # the answer has started; now leave
    deadline = time.monotonic() + 5
    while httpx.get(f"{server.url}/v1/health").json()["heavy_requests"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert httpx.get(f"{server.url}/v1/health").json()["heavy_requests"] == 0


def test_structures_are_standardized_in_worker_processes_while_health_answers(small_store):
    """spglib holds the GIL for its whole symmetry search (about 250 ms for 2,000 atoms): in a
    thread of the server that would stall /v1/health for as long."""
    import psutil

    running = Server(small_store, "--max-atoms", "2500")
    try:
        wait_until_healthy(running.url, running.process)
        server = psutil.Process(running.process.pid)

        def workers():  # not multiprocessing's resource tracker
            return [child for child in server.children() if "spawn_main" in " ".join(child.cmdline())]

        deadline = time.monotonic() + 60
        while len(workers()) < 2 and time.monotonic() < deadline:  # started with the server
            time.sleep(0.1)
        workers = workers()
        assert len(workers) == 2  # --max-heavy-requests
        before = {worker.pid: sum(worker.cpu_times()[:2]) for worker in workers}
        server_before = sum(server.cpu_times()[:2])
        with HealthPoll(running.url) as health:
            answers = [
                httpx.post(
                    f"{running.url}/v1/encode/structure",
                    json={"structure": p1_structure(2_000, seed), "radius": 2},
                    timeout=60,
                )
                for seed in range(2)
            ]
        assert [answer.status_code for answer in answers] == [200, 200], answers[0].text[:300]
        assert len(answers[0].json()["encodings"]["real"]) == 2_000
        worked = sum(sum(worker.cpu_times()[:2]) - before[worker.pid] for worker in workers)
        assert worked > sum(server.cpu_times()[:2]) - server_before  # the work ran in the workers
        assert max(health.latencies) < 200, sorted(health.latencies)[-5:]
    finally:
        running.stop()


def test_worker_processes_end_with_a_killed_server(small_store):
    import psutil

    running = Server(small_store)
    wait_until_healthy(running.url, running.process)
    server = psutil.Process(running.process.pid)
    deadline = time.monotonic() + 60
    while (
        len(server.children()) < 3 and time.monotonic() < deadline
    ):  # two workers and multiprocessing's resource tracker
        time.sleep(0.1)
    children = server.children()
    assert len(children) == 3
    running.process.kill()  # no shutdown: SIGKILL, as the OOM killer sends
    running.process.wait()
    running.log.close()
    gone, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, [child.cmdline() for child in alive]


@pytest.mark.parametrize(
    "body, message",
    [
        (
            {"structure": p1_structure(20_000), "radius": 2},
            "number of atoms",
        ),  # refused on its brackets, before parsing
        ({"structure": p1_structure(401), "radius": 2}, "number of atoms is 401, more than"),
        ({"cif": fcc_cif(50), "radius": 2}, "can expand to 9600 atoms"),
        (
            {
                "cif": "data_x\nloop_\n_atom_site_label\n_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\n"
                + "A 0.1 0.2 0.3\n" * 120_000,
                "radius": 2,
            },
            "can expand to",
        ),
    ],
)
def test_oversized_structures_are_413_before_the_work(server, body, message):
    answer, seconds = timed(lambda: httpx.post(f"{server.url}/v1/encode/structure", json=body, timeout=30))
    assert answer.status_code == 413, answer.text[:300]
    assert message in answer.json()["detail"] and seconds < 3


@pytest.mark.parametrize(
    "positions, message",
    [
        ([[1e16, 0, 0], [0.5, 0.5, 0.5]], "more than 1e+06 cells from the origin"),
        ([[0, 0, 0], [0, 0, 0], [0.5, 0.5, 0.5]], "one site given twice"),
        ([[0, 0, 0], [float("nan"), 0, 0]], "finite number"),
    ],
)
def test_absurd_coordinates_are_422(server, positions, message):
    structure = {
        "lattice": [[5.64, 0, 0], [0, 5.64, 0], [0, 0, 5.64]],
        "species": ["Na"] * (len(positions) - 1) + ["Cl"],
        "positions": positions,
    }
    content = json.dumps({"structure": structure, "radius": 2})  # NaN as JavaScript writes it
    answer = httpx.post(
        f"{server.url}/v1/encode/structure", content=content, headers={"content-type": "application/json"}, timeout=10
    )
    assert answer.status_code == 422 and message in json.dumps(answer.json()), answer.text


def test_no_module_is_imported_and_no_path_is_opened_for_a_client(server, tmp_path):
    salt = {
        "lattice": [[5.64, 0, 0], [0, 5.64, 0], [0, 0, 5.64]],
        "species": ["Na", "Cl"],
        "positions": [[0, 0, 0], [0.5, 0.5, 0.5]],
    }
    answers = []
    for extra in (
        {"@module": "this", "@class": "x"},
        {"@module": "pymatgen.io.vasp.outputs", "@class": "Vasprun", "filename": "/etc/passwd"},
        {"@module": "pymatgen.io.vasp.outputs", "@class": "Vasprun", "filename": str(tmp_path / "missing")},
        {"properties": {"magmom": {"@module": "this", "@class": "x"}}},
    ):
        answer = httpx.post(
            f"{server.url}/v1/encode/structure", json={"structure": {**salt, **extra}, "radius": 2}, timeout=10
        )
        assert answer.status_code == 422
        answers.append(
            [
                error
                for error in answer.json()["detail"]
                if error["loc"][-1] not in ("@module", "@class", "filename", "properties")
            ]
        )
    assert answers[1] == answers[2]  # an existing and a missing path are indistinguishable
    time.sleep(0.2)
    assert "Beautiful is better than ugly" not in server.output()  # what `import this` prints


# -- connections -----------------------------------------------------------------------------


def test_idle_and_trickling_connections_are_closed(server):
    began = time.monotonic()
    idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(150)]
    trickling = socket.create_connection(("127.0.0.1", server.port))
    trickling.sendall(b"GET /v1/health HTTP/1.1\r\nhost: x\r\n")  # and the rest never comes
    body = socket.create_connection(("127.0.0.1", server.port))
    body.sendall(
        b"POST /v1/encode HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"
    )
    assert health_ms(server.url) < 200  # answering meanwhile
    for connection in [*idle, trickling, body]:
        connection.settimeout(5)
        data = connection.recv(200)  # b"" (closed) or a 408, within about the 1 s timeouts
        assert data == b"" or data.startswith(b"HTTP/1.1 408"), data
        connection.close()
    assert time.monotonic() - began < 6
    assert server.alive() and health_ms(server.url) < 200
    assert "Exception in ASGI application" not in server.output()  # a client that left is not a server error


def test_huge_headers_are_431_and_extra_connections_are_refused(server):
    with socket.create_connection(("127.0.0.1", server.port)) as raw:
        raw.sendall(b"GET /v1/health HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * 100_000 + b"\r\n\r\n")
        raw.settimeout(5)
        assert raw.recv(100).startswith(b"HTTP/1.1 431")
    held = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(260)]
    try:
        refused = 0
        for connection in held[-40:]:
            connection.settimeout(2)
            try:
                refused += connection.recv(10) == b""
            except (TimeoutError, ConnectionResetError):
                refused += 1
        assert refused >= 30  # beyond --max-connections 200
    finally:
        for connection in held:
            connection.close()
    time.sleep(0.5)
    assert health_ms(server.url) < 200


# -- the store -------------------------------------------------------------------------------


def corrupt_copy(small_store: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "corrupt.h5"
    shutil.copy(small_store, copy)
    with h5py.File(copy, "r") as handle:
        dataset = handle["settings/525/column_value"]
        offset = dataset.id.get_offset()
        assert offset is not None  # contiguous or a first chunk: a byte we can flip
    with open(copy, "r+b") as raw:
        raw.seek(offset + 17)
        byte = raw.read(1)
        raw.seek(offset + 17)
        raw.write(bytes([byte[0] ^ 0xFF]))
    return copy


def test_a_corrupt_store_is_refused_at_start_up(small_store, tmp_path):
    copy = corrupt_copy(small_store, tmp_path)
    result = subprocess.run(
        [BASISDB_COMMAND, "serve", "--store", str(copy), "--port", str(free_port())],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "failed verification" in result.stderr and "525" in result.stderr


def test_a_damaged_setting_makes_the_service_unhealthy_without_naming_paths(small_store, tmp_path):
    copy = corrupt_copy(small_store, tmp_path)
    running = Server(copy, "--no-verify-store")
    try:
        health = wait_until_healthy(running.url, running.process)
        assert health["store"]["verification"] == "skipped"
        answer = httpx.get(f"{running.url}/v1/groups/227/basis", params={"radius": 2})
        assert answer.status_code == 503 and "sha256 mismatch" in answer.json()["detail"]
        assert str(tmp_path) not in answer.text and "corrupt.h5" in answer.text
        health = httpx.get(f"{running.url}/v1/health")
        assert health.status_code == 503 and health.json()["status"] == "unhealthy"
        assert httpx.get(f"{running.url}/v1/groups/225/basis", params={"radius": 2}).status_code == 503
        assert "verification skipped" in running.output()
    finally:
        running.stop()


def test_a_store_replaced_on_disk_is_a_clear_503(small_store, tmp_path):
    copy = tmp_path / "store.h5"
    shutil.copy(small_store, copy)
    running = Server(copy)
    try:
        assert wait_until_healthy(running.url, running.process)["store"]["verification"] == "passed"
        for _ in range(2):  # cached and remembered: the next one is served ahead of the router
            assert httpx.get(f"{running.url}/v1/groups/227/basis", params={"radius": 2}).status_code == 200
        replacement = tmp_path / "new.h5"
        shutil.copy(small_store, replacement)
        os.replace(replacement, copy)  # what a rebuild does
        time.sleep(0.6)
        answer = httpx.get(f"{running.url}/v1/groups/227/basis", params={"radius": 2})
        assert answer.status_code == 503 and "replaced" in answer.json()["detail"] and answer.headers["retry-after"]
        assert httpx.get(f"{running.url}/v1/health").json()["status"] == "unhealthy"
    finally:
        running.stop()


def test_sigterm_stops_the_server_within_seconds_while_heavy_work_runs(small_store):
    running = Server(small_store, *"--max-output-values 40000000 --max-positions 100000 --request-timeout 60".split())
    wait_until_healthy(running.url, running.process)
    body = {"group": 1, "radius": 4, "positions": np.random.default_rng(4).random((60_000, 3)).tolist()}

    def client():
        try:
            httpx.post(f"{running.url}/v1/encode", json=body, timeout=60)
        except httpx.HTTPError:
            pass  # the server went away mid-answer: expected

    thread = threading.Thread(target=client, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while httpx.get(f"{running.url}/v1/health").json()["heavy_requests"] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert running.stop() < 6
