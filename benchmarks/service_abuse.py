"""The service against hostile clients: each attack of the hardening issue, sent to a real
server (``basisdb serve``, default limits, the default store, one worker) while a second
client polls /v1/health.

For each attack it reports the status codes, the time until the last answer, the server's
peak RSS (sampled every 10 ms) and the /v1/health latency during the attack (p50, p99,
max).  Goal: no crash, no 5xx but deliberate 503s, peak RSS under 1 GB, health p99 under
100 ms.  The naive baseline is the same health poll on the idle server, measured in the same
run.

    python benchmarks/service_abuse.py [--idle-connections 19980] [--workers 1]
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import psutil

from basisdb import command_parser

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the hostile payloads are the tests' own
from tests.helpers import fcc_cif, free_port, p1_structure  # noqa: E402


class Watch:
    """Samples the server's RSS (all its processes) and polls /v1/health while an attack runs."""

    def __init__(self, url: str, pid: int):
        self.url, self.process = url, psutil.Process(pid)
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self.peak = 0

    def rss(self) -> int:
        try:
            processes = [self.process, *self.process.children(recursive=True)]
            return sum(p.memory_info().rss for p in processes)
        except psutil.NoSuchProcess:
            return 0

    def __enter__(self):
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._sample), threading.Thread(target=self._poll)]
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _sample(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(0.01)

    def _poll(self):
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set():
                began = time.perf_counter()
                try:
                    status = client.get(f"{self.url}/v1/health").status_code
                    if status != 200:
                        self.failures.append(f"health {status}")
                except httpx.HTTPError as exc:
                    self.failures.append(f"health {type(exc).__name__}")
                self.latencies.append(1000 * (time.perf_counter() - began))
                time.sleep(0.02)


def post(url: str, path: str, **kwargs) -> int:
    try:
        return httpx.post(f"{url}{path}", timeout=120, **kwargs).status_code
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}"  # type: ignore[return-value]


def get(url: str, path: str, **kwargs) -> int:
    try:
        return httpx.get(f"{url}{path}", timeout=120, **kwargs).status_code
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}"  # type: ignore[return-value]


def attacks(url: str, port: int, idle_connections: int) -> dict[str, Callable[[], list]]:
    rng = np.random.default_rng(0)
    salt = {
        "lattice": [[5.64, 0, 0], [0, 5.64, 0], [0, 0, 5.64]],
        "species": ["Na", "Cl"],
        "positions": [[0, 0, 0], [0.5, 0.5, 0.5]],
    }

    def parallel(calls: list[Callable[[], object]]) -> list:
        results: list = [None] * len(calls)
        threads = [threading.Thread(target=lambda i=i, c=c: results.__setitem__(i, c())) for i, c in enumerate(calls)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return results

    def raw_connections(count: int, first: bytes = b"") -> list:
        opened, statuses = [], []
        for _ in range(count):
            try:
                connection = socket.create_connection(("127.0.0.1", port), timeout=5)
                if first:
                    connection.sendall(first)
                opened.append(connection)
            except OSError as exc:
                statuses.append(type(exc).__name__)
                break
        for connection in opened:
            connection.settimeout(30)
            try:
                data = connection.recv(64)
                statuses.append(data.split(b"\r\n")[0].decode(errors="replace") or "closed")
            except OSError as exc:
                statuses.append(type(exc).__name__)
            connection.close()
        counts: dict[str, int] = {}
        for status in statuses:
            counts[status] = counts.get(status, 0) + 1
        return [counts]

    def p1(n):
        return {"structure": p1_structure(n, seed=int(rng.integers(2**31))), "radius": 2}

    return {
        "GET /v1/export?groups=1-9999999999&radii=2": lambda: [
            get(url, "/v1/export", params={"groups": "1-9999999999", "radii": "2"})
        ],
        "GET /v1/export?groups=5-1": lambda: [get(url, "/v1/export", params={"groups": "5-1"})],
        "GET /v1/export (the whole store)": lambda: [get(url, "/v1/export")],
        "POST /v1/encode, P1, radius 16, 10,000 positions": lambda: [
            post(url, "/v1/encode", json={"group": 1, "radius": 16, "positions": rng.random((10_000, 3)).tolist()})
        ],
        "POST /v1/encode, P1, radius 16, 100,000 positions (npz)": lambda: [
            post(
                url,
                "/v1/encode",
                json={"group": 1, "radius": 16, "positions": rng.random((100_000, 3)).tolist()},
                headers={"accept": "application/x-npz"},
            )
        ],
        "4 x POST /v1/encode, largest answer allowed (P1, radius 16, 100 positions, JSON)": lambda: parallel(
            [
                lambda: post(
                    url, "/v1/encode", json={"group": 1, "radius": 16, "positions": rng.random((100, 3)).tolist()}
                )
            ]
            * 4
        ),
        "32 MiB body of [0,0,0] triples": lambda: [
            post(
                url,
                "/v1/encode",
                content=b'{"group":1,"radius":2,"positions":[' + b",".join([b"[0,0,0]"] * 4_194_000) + b"]}",
                headers={"content-type": "application/json"},
            )
        ],
        "pymatgen dict naming module 'this'": lambda: [
            post(
                url, "/v1/encode/structure", json={"structure": {**salt, "@module": "this", "@class": "x"}, "radius": 2}
            )
        ],
        "pymatgen dict naming Vasprun with a filename": lambda: [
            post(
                url,
                "/v1/encode/structure",
                json={
                    "structure": {
                        **salt,
                        "@module": "pymatgen.io.vasp.outputs",
                        "@class": "Vasprun",
                        "filename": "/etc/passwd",
                    },
                    "radius": 2,
                },
            )
        ],
        "P1 structure of 20,000 atoms": lambda: [post(url, "/v1/encode/structure", json=p1(20_000))],
        "P1 structure of 2,000 atoms (the limit)": lambda: [post(url, "/v1/encode/structure", json=p1(2_000))],
        "5.7 KB Fm-3m CIF expanding to 9,600 atoms": lambda: [
            post(url, "/v1/encode/structure", json={"cif": fcc_cif(50), "radius": 2})
        ],
        "120,000-atom CIF": lambda: [
            post(
                url,
                "/v1/encode/structure",
                json={
                    "cif": "data_x\nloop_\n_atom_site_label\n"
                    "_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\n" + "A 0.1 0.2 0.3\n" * 120_000,
                    "radius": 2,
                },
            )
        ],
        "Na at fractional x = 1e16": lambda: [
            post(
                url,
                "/v1/encode/structure",
                json={"structure": {**salt, "positions": [[1e16, 0, 0], [0.5, 0.5, 0.5]]}, "radius": 2},
            )
        ],
        "two atoms on one site": lambda: [
            post(
                url,
                "/v1/encode/structure",
                json={
                    "structure": {
                        **salt,
                        "species": ["Na", "Na", "Cl"],
                        "positions": [[0, 0, 0], [0, 0, 0], [0.5, 0.5, 0.5]],
                    },
                    "radius": 2,
                },
            )
        ],
        f"{idle_connections} idle connections": lambda: raw_connections(idle_connections),
        "200 connections trickling headers": lambda: raw_connections(200, b"GET /v1/health HTTP/1.1\r\nhost: x\r\n"),
        "200 connections trickling bodies": lambda: raw_connections(
            200,
            b"POST /v1/encode HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\ncontent-type: application/json\r\n\r\n{",
        ),
        "10 MB header": lambda: raw_connections(
            1, b"GET /v1/health HTTP/1.1\r\nx-big: " + b"a" * 10_000_000 + b"\r\n\r\n"
        ),
    }


def main() -> None:
    parser = command_parser("benchmarks/service_abuse.py", __doc__)
    parser.add_argument("--idle-connections", type=int, default=19_980, help="connections opened and left idle")
    parser.add_argument("--workers", type=int, default=1, help="server processes")
    parser.add_argument("--store", default=None, help="store to serve (default: the default store)")
    args = parser.parse_args()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "basisdb", "serve", "--port", str(port), "--workers", str(args.workers)]
    # The server's log goes to a file: a pipe nobody reads would block the server once full.
    log = tempfile.NamedTemporaryFile("w+", prefix="basisdb-abuse-", suffix=".log")
    server = subprocess.Popen(
        command + (["--store", args.store] if args.store else []),
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{url}/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        with Watch(url, server.pid) as idle:
            time.sleep(2)
        print(
            f"server: basisdb serve, {args.workers} worker(s); idle RSS {idle.peak / 2**20:.0f} MiB; "
            f"idle health p50 {np.median(idle.latencies):.1f} ms, p99 {np.percentile(idle.latencies, 99):.1f} ms"
        )
        print("| attack | answers | seconds | peak RSS (MiB) | health p50 / p99 / max (ms) | health failures |")
        print("|---|---|---|---|---|---|")
        worst_rss, worst_p99, bad = 0, 0.0, []
        for name, attack in attacks(url, port, args.idle_connections).items():
            with Watch(url, server.pid) as watch:
                began = time.monotonic()
                answers = attack()
                seconds = time.monotonic() - began
                time.sleep(0.3)
            latencies = np.asarray(watch.latencies or [np.nan])
            p99 = float(np.percentile(latencies, 99))
            worst_rss, worst_p99 = max(worst_rss, watch.peak), max(worst_p99, p99)
            shown = json.dumps(answers[0]) if isinstance(answers[0], dict) else ", ".join(str(a) for a in answers)
            print(
                f"| {name} | {shown} | {seconds:.2f} | {watch.peak / 2**20:.0f} | "
                f"{np.median(latencies):.1f} / {p99:.1f} / {latencies.max():.1f} | {len(watch.failures)} |"
            )
            bad += [f"{name}: {a}" for a in answers if isinstance(a, int) and a >= 500 and a != 503]
            if server.poll() is not None:
                bad.append(f"{name}: the server exited with {server.returncode}")
                break
        unhandled = Path(log.name).read_text().count("Exception in ASGI application")
        print(
            f"\nserver alive: {server.poll() is None}; 5xx other than 503: {bad or 'none'}; "
            f"unhandled exceptions in its log: {unhandled}; "
            f"worst peak RSS {worst_rss / 2**20:.0f} MiB (goal < 1024); "
            f"worst health p99 {worst_p99:.1f} ms (goal < 100), against {np.percentile(idle.latencies, 99):.1f} ms idle"
        )
    finally:
        log.close()
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    main()
