"""Exports stop and clean up: the real server (``basisdb serve``) with its temporary files in a
folder of the test's own ($TMPDIR).  An export stops soon after its client leaves or its
deadline passes and frees its slot; no temporary file outlives its request, a SIGTERM, or
(removed at the next start) a SIGKILL."""

from __future__ import annotations

import signal
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

from .helpers import Server, wait_until_healthy

pytestmark = pytest.mark.slow  # real servers; the tests that time them are serial


def leftovers(tmp: Path) -> list[str]:
    """Everything under ``tmp`` but a live server's own scratch folder and its lock."""
    return sorted(str(path.relative_to(tmp)) for path in tmp.rglob("*") if path.name != ".owner" and path.is_file())


@pytest.fixture
def tmp(tmp_path) -> Path:
    folder = tmp_path / "tmp"
    folder.mkdir()
    return folder


def start(small_store, tmp: Path, *options: str) -> Server:
    running = Server(small_store, *options, env={"TMPDIR": str(tmp)})
    wait_until_healthy(running.url, running.process)
    return running


def heavy_requests(running: Server) -> int:
    return httpx.get(f"{running.url}/v1/health", timeout=5).json()["heavy_requests"]


def seconds_until_idle(running: Server, timeout: float = 10) -> float:
    began = time.monotonic()
    while heavy_requests(running) and time.monotonic() - began < timeout:
        time.sleep(0.02)
    return time.monotonic() - began


def export_running(running: Server) -> socket.socket:
    """An export of the whole store (about 2 s on the test store), under way."""
    raw = socket.create_connection(("127.0.0.1", running.port))
    raw.sendall(b"GET /v1/export HTTP/1.1\r\nhost: x\r\n\r\n")
    deadline = time.monotonic() + 10
    while not heavy_requests(running) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert heavy_requests(running) == 1
    return raw


@pytest.mark.serial  # stops within 1 s
def test_an_export_stops_when_its_client_leaves(small_store, tmp):
    running = start(small_store, tmp)
    try:
        took = time.monotonic()
        httpx.get(f"{running.url}/v1/export", timeout=60).raise_for_status()
        whole = time.monotonic() - took  # what the export takes when nobody leaves
        raw = export_running(running)
        time.sleep(0.3)
        raw.close()
        freed = seconds_until_idle(running)
        assert freed < min(1.0, whole / 2), (freed, whole)
        assert leftovers(tmp) == []
    finally:
        running.stop()


@pytest.mark.serial  # stops within 1.5 s
def test_an_export_stops_at_its_deadline(small_store, tmp):
    running = start(small_store, tmp, "--request-timeout", "0.6")
    try:
        began = time.monotonic()
        answer = httpx.get(f"{running.url}/v1/export", timeout=60)
        assert answer.status_code == 503 and "0.6 s" in answer.json()["detail"]
        assert seconds_until_idle(running) + time.monotonic() - began < 1.5
        assert leftovers(tmp) == []
    finally:
        running.stop()


def test_encodings_as_npz_leave_no_file(small_store, tmp):
    running = start(small_store, tmp)
    try:
        body = {"group": 227, "radius": 4, "positions": [[0.1, 0.2, 0.3]] * 1000}
        for _ in range(3):
            answer = httpx.post(f"{running.url}/v1/encode", json=body, headers={"accept": "application/x-npz"})
            assert answer.status_code == 200 and answer.content[:2] == b"PK"
        seconds_until_idle(running)
        assert leftovers(tmp) == []
    finally:
        running.stop()


@pytest.mark.serial  # stops within 6 s
def test_sigterm_during_an_export_leaves_no_file(small_store, tmp):
    running = start(small_store, tmp)
    raw = export_running(running)
    assert len(list(tmp.glob("basisdb-service-*/export-*"))) == 1
    assert running.stop() < 6
    raw.close()
    assert list(tmp.iterdir()) == []


def test_what_a_killed_server_left_is_removed_at_the_next_start(small_store, tmp):
    killed = start(small_store, tmp)
    raw = export_running(killed)
    killed.process.send_signal(signal.SIGKILL)
    killed.process.wait()
    raw.close()
    left = list(tmp.glob("basisdb-service-*"))
    assert len(left) == 1 and list(left[0].glob("export-*"))  # the export's folder, and its partial file
    running = start(small_store, tmp)
    try:
        assert not left[0].exists() and len(list(tmp.glob("basisdb-service-*"))) == 1
        assert "removed 1 temporary folder(s) of servers that were killed" in running.output()
    finally:
        running.stop()
    assert list(tmp.iterdir()) == []


def test_a_running_servers_folder_is_never_taken_for_a_dead_ones(small_store, tmp):
    first = start(small_store, tmp)
    second = start(small_store, tmp)
    try:
        assert len(list(tmp.glob("basisdb-service-*"))) == 2
        done: list[int] = []
        export = threading.Thread(
            target=lambda: done.append(httpx.get(f"{first.url}/v1/export", timeout=60).status_code)
        )
        export.start()
        export.join()
        assert done == [200] and leftovers(tmp) == []
    finally:
        second.stop()
        first.stop()
    assert list(tmp.iterdir()) == []
