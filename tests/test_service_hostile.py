"""The service under hostile clients: the real server (``basisdb serve``) in a process
with a memory cap, on a loopback port, sent what an attacker sends.  Every request gets a
4xx or a deliberate 503 within seconds, nothing is imported or opened on a client's behalf,
and /v1/health keeps answering."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import h5py
import httpx
import numpy as np
import pytest

from .helpers import (
    BASISDB_COMMAND,
    REPO_ROOT,
    HealthPoll,
    Server,
    fcc_cif,
    free_port,
    health_ms,
    p1_structure,
    wait_until_healthy,
)

pytestmark = pytest.mark.slow  # real servers; the tests that time them are serial

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
    "--max-client-connections",
    "200",  # every client of these tests is 127.0.0.1: the cap per client has its own test
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


@pytest.mark.serial  # /v1/health latencies
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


@pytest.mark.serial  # /v1/health latencies
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
            "more than a request within --max-atoms 400 can",
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


@pytest.mark.serial  # /v1/health latencies, timeouts
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


@pytest.mark.serial  # /v1/health latencies
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


@pytest.mark.serial  # stops within 6 s
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


# -- bodies whose every item is invalid ------------------------------------------------------


def workers_of(server: Server):
    """The server's worker processes (not multiprocessing's resource tracker)."""
    import psutil

    return [
        child for child in psutil.Process(server.process.pid).children() if "spawn_main" in " ".join(child.cmdline())
    ]


def wait_for_workers(server: Server, count: int = 2, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while len(workers_of(server)) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    return workers_of(server)


def post_raw(url: str, path: str, body: bytes, timeout: float = 30) -> httpx.Response:
    return httpx.post(f"{url}{path}", content=body, headers={"content-type": "application/json"}, timeout=timeout)


def items(item: bytes, count: int) -> bytes:
    return b",".join([item] * count)


# Each within the server's 2 MB body: (route, body, status, what the answer says).
FLOODS = {
    "600,000 empty objects as positions": (
        "/v1/encode",
        b'{"group": 1, "radius": 2, "positions": [' + items(b"{}", 600_000) + b"]}",
        413,
        "arrays and objects",
    ),
    "20,000 positions of three strings": (
        "/v1/encode",
        b'{"group": 1, "radius": 2, "positions": [' + items(b'["a","b","c"]', 20_000) + b"]}",
        422,
        60_000,
    ),
    "20,000 nulls as positions": (
        "/v1/encode",
        b'{"group": 1, "radius": 2, "positions": [' + items(b"null", 20_000) + b"]}",
        422,
        20_000,
    ),
    "60,000 distinct unknown keys": (
        "/v1/encode",
        b"{" + b",".join(b'"k%d":0' % i for i in range(60_000)) + b"}",
        422,
        60_003,
    ),
    "400 species strings that are not elements": (
        "/v1/encode/structure",
        b'{"radius": 2, "structure": {"lattice": [[5,0,0],[0,5,0],[0,0,5]], "species": ['
        + items(b'"Xxxx"', 400)
        + b'], "positions": ['
        + items(b"[0,0,0]", 400)
        + b"]}}",
        422,
        800,  # neither a short string nor an atomic number
    ),
    "600,000 unknown species": (
        "/v1/encode/structure",
        b'{"radius": 2, "structure": {"lattice": [[5,0,0],[0,5,0],[0,0,5]], "species": ['
        + items(b'"Xx"', 300_000)
        + b'], "positions": []}}',
        413,
        "commas",
    ),
}


@pytest.mark.serial  # /v1/health latencies
@pytest.mark.parametrize("name", FLOODS)
def test_a_body_of_invalid_items_gets_a_small_answer_at_once(server, name):
    """The answer lists at most 20 problems and counts them all; it is small and quick, and
    /v1/health answers meanwhile."""
    path, body, status, said = FLOODS[name]
    with HealthPoll(server.url) as health:
        answer, seconds = timed(lambda: post_raw(server.url, path, body))
    assert answer.status_code == status, answer.text[:300]
    assert answer.headers["content-type"] == "application/json" and len(answer.content) < 8192
    if status == 422:
        assert len(answer.json()["detail"]) == 20 and answer.json()["error_count"] == said
    else:
        assert said in answer.json()["detail"]
    assert seconds < 3 and max(health.latencies, default=0) < 200, (seconds, sorted(health.latencies)[-3:])


@pytest.mark.serial  # /v1/health latencies
def test_many_invalid_bodies_at_once_are_all_answered_and_the_workers_stay_small(server):
    body = FLOODS["20,000 positions of three strings"][1]
    answers: list = []
    clients = [
        threading.Thread(target=lambda: answers.append(post_raw(server.url, "/v1/encode", body))) for _ in range(8)
    ]
    with HealthPoll(server.url) as health:
        for thread in clients:
            thread.start()
        for thread in clients:
            thread.join()
    assert sorted({answer.status_code for answer in answers}) in ([422], [422, 503]), [a.status_code for a in answers]
    assert max(health.latencies) < 200
    for worker in wait_for_workers(server):
        assert worker.memory_info().rss < 384 * 2**20  # --max-worker-bytes' default
    assert server.alive()


def test_a_worker_left_above_its_ceiling_is_replaced_and_the_next_request_is_served(small_store):
    """A ceiling below what an idle worker holds: every request that reaches a worker leaves
    it above, so the worker is replaced after each one, and requests keep being answered."""
    running = Server(small_store, "--max-worker-bytes", str(64 * 2**20))
    try:
        wait_until_healthy(running.url, running.process)
        first = {worker.pid for worker in wait_for_workers(running)}
        structure = {"structure": p1_structure(20, seed=1), "radius": 2}
        for _ in range(3):
            answer = httpx.post(f"{running.url}/v1/encode/structure", json=structure, timeout=60)
            assert answer.status_code == 200, answer.text[:300]
        deadline = time.monotonic() + 30
        while httpx.get(f"{running.url}/v1/health").json()["workers_replaced"] < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert httpx.get(f"{running.url}/v1/health").json()["workers_replaced"] == 3
        now = {worker.pid for worker in wait_for_workers(running)}
        assert len(now) == 2 and len(first - now) == 1  # one slot served all three, its worker replaced
        assert "replacing the worker process of heavy slot" in running.output()
    finally:
        running.stop()


# -- connections -----------------------------------------------------------------------------


@pytest.mark.serial  # the server catching up in 10 s
def test_one_client_holding_connections_does_not_lock_out_the_others(small_store):
    """One address holds as many connections as it can, reconnecting as they are closed; 100
    other clients (other loopback addresses) are served meanwhile."""
    running = Server(small_store, "--max-client-connections", "50", "--max-connections", "400")
    stop = threading.Event()
    held: list[socket.socket] = []

    def hog():
        while not stop.is_set():
            try:
                connection = socket.create_connection(
                    ("127.0.0.1", running.port), timeout=2, source_address=("127.0.0.2", 0)
                )
                held.append(connection)
            except OSError:
                time.sleep(0.01)
            if len(held) > 2_000:  # keep reconnecting: drop the oldest
                held.pop(0).close()

    thread = threading.Thread(target=hog)
    try:
        wait_until_healthy(running.url, running.process)
        thread.start()
        time.sleep(1.0)
        served = 0
        for client in range(100):
            transport = httpx.HTTPTransport(local_address=f"127.0.1.{client + 1}")
            with httpx.Client(transport=transport, timeout=5) as other:
                try:
                    served += other.get(f"{running.url}/v1/health").status_code == 200
                except httpx.TransportError:
                    pass
        assert served == 100
        stop.set()
        thread.join()
        # What the server has not yet accepted looks open to the hog: wait until it has caught up.
        deadline = time.monotonic() + 10
        while (hogged := sum(1 for connection in held if _open(connection))) > 50 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert hogged <= 50, hogged
    finally:
        stop.set()
        if thread.ident is not None:
            thread.join()
        for connection in held:
            connection.close()
        running.stop()


def _open(connection: socket.socket) -> bool:
    """Whether the server still holds ``connection`` open (no end of file, no reset)."""
    connection.setblocking(False)
    try:
        return connection.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


@pytest.mark.parametrize(
    "request_bytes, status",
    [
        (b"GET /v1/health HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * 20_000 + b"\r\n\r\n", b"431"),
        (b"NOT HTTP AT ALL\r\n\r\n", b"400"),
        (b"GET /v1/health HTTP/1.1\r\nhost: x\r\n", b"408"),  # and the rest never comes
    ],
)
def test_the_answers_of_the_connection_guards_are_json(server, request_bytes, status):
    with socket.create_connection(("127.0.0.1", server.port)) as raw:
        raw.sendall(request_bytes)
        raw.settimeout(5)
        answer = b""
        while chunk := raw.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 " + status) and b"content-type: application/json" in head.lower()
    assert json.loads(body)["detail"]
