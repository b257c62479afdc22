"""The service against hostile clients: every attack of the hardening issues, sent to a real
server (``basisdb serve``, default limits, the default store, one worker) while a second
client polls /v1/health from an address of its own.

For each attack it reports the status codes, the time until the last answer, the peak RSS of
the server and its worker processes together (sampled every 10 ms), the /v1/health latency
during the attack (p50, p99, max), each worker's RSS once the attack is over, and the files
left in the server's temporary folder (its own ``$TMPDIR``).  The goal, over every attack: no
hang (every request answered within its client's timeout, every heavy slot free again within
10 s), no 5xx but deliberate 503s, peak RSS under 1 GiB, health p99 under 100 ms, every
worker back under its ceiling (``--max-worker-bytes``) and no file left behind.  The naive
baseline is the same health poll on the idle server, measured in the same run.

Attacks that stop the server (SIGTERM and SIGKILL during an export) and the export deadline
run on a second server of their own.

    python benchmarks/service_abuse.py [--idle-connections 19980] [--workers 1]
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import psutil

from basisdb import command_parser
from basisdb.service.config import ServiceSettings

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the hostile payloads are the tests' own
from tests.helpers import fcc_cif, free_port, p1_structure  # noqa: E402

HEALTH_ADDRESS = "127.0.0.9"  # the polling client's own: the cap per client never meets it
LIMITS = ServiceSettings()  # the defaults the server runs with
MIB = 2**20


def source(index: int, per_address: int = 50) -> tuple[str, int]:
    """A loopback source address for the ``index``-th connection of a crowd of clients, each
    address holding at most ``per_address`` of them (under the cap per client)."""
    host = 2 + index // per_address
    return (f"127.{host // 250}.{host % 250}.1", 0)


class RunningServer:
    """``basisdb serve`` on a free port with a temporary folder of its own."""

    def __init__(self, store: str | None, workers: int, *options: str, tmp: Path | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.tmp = tmp or Path(tempfile.mkdtemp(prefix="basisdb-abuse-tmp-"))
        # The log goes to a file: a pipe nobody reads would block the server once full.
        self.log = tempfile.NamedTemporaryFile("w+", prefix="basisdb-abuse-", suffix=".log")  # noqa: SIM115
        command = [sys.executable, "-m", "basisdb", "serve", "--port", str(self.port), "--workers", str(workers)]
        self.process = subprocess.Popen(
            command + (["--store", store] if store else []) + list(options),
            cwd=REPO,
            env={**os.environ, "TMPDIR": str(self.tmp)},
            stdout=self.log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(1200):
            try:
                if httpx.get(f"{self.url}/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)

    def workers(self) -> list[psutil.Process]:
        try:
            children = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        return [child for child in children if "spawn_main" in " ".join(child.cmdline())]

    def rss_alone(self) -> int:
        """The server process's own resident memory, without its workers."""
        try:
            return psutil.Process(self.process.pid).memory_info().rss
        except psutil.NoSuchProcess:
            return 0

    def leftovers(self) -> list[str]:
        return [str(p.relative_to(self.tmp)) for p in self.tmp.rglob("*") if p.is_file() and p.name != ".owner"]

    def output(self) -> str:
        return Path(self.log.name).read_text()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


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
        transport = httpx.HTTPTransport(local_address=HEALTH_ADDRESS)
        with httpx.Client(timeout=10, transport=transport) as client:
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


def answer_of(call: Callable[[], httpx.Response]) -> int | str:
    try:
        return call().status_code
    except httpx.TimeoutException:
        return "hang"  # no answer within the client's 120 s
    except httpx.HTTPError as exc:
        return type(exc).__name__


def post(url: str, path: str, **kwargs) -> int | str:
    return answer_of(lambda: httpx.post(f"{url}{path}", timeout=120, **kwargs))


def get(url: str, path: str, **kwargs) -> int | str:
    return answer_of(lambda: httpx.get(f"{url}{path}", timeout=120, **kwargs))


def parallel(calls: list[Callable[[], object]]) -> list:
    results: list = [None] * len(calls)
    threads = [threading.Thread(target=lambda i=i, c=c: results.__setitem__(i, c())) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def raw_connections(port: int, count: int, first: bytes = b"", per_address: int = 50) -> list:
    """``count`` connections from a crowd of addresses, each sending ``first``; what each gets."""
    opened, statuses = [], []
    for index in range(count):
        try:
            connection = socket.create_connection(
                ("127.0.0.1", port), timeout=5, source_address=source(index, per_address)
            )
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
    return [dict(Counter(statuses))]


def flood(template: bytes, item: bytes, size: int) -> bytes:
    """``template`` with ``{}`` replaced by copies of ``item`` until the body is ``size`` bytes."""
    head, tail = template.split(b"{}")
    count = (size - len(head) - len(tail)) // (len(item) + 1)
    return head + b",".join([item] * count) + tail


def json_post(url: str, path: str, body: bytes) -> int | str:
    return post(url, path, content=body, headers={"content-type": "application/json"})


def floods(url: str) -> dict[str, Callable[[], list]]:
    """Bodies of invalid items, of each field type, at 0.6 MB and at the body limit."""
    encode = b'{"group": 1, "radius": 2, "positions": [{}]}'
    structure = b'{"radius": 2, "structure": {"lattice": [[5,0,0],[0,5,0],[0,0,5]], "species": [{}], "positions": []}}'
    cases = {
        "positions: empty objects": (encode, b"{}"),
        "positions: empty arrays": (encode, b"[]"),
        "positions: nulls": (encode, b"null"),
        "positions: strings": (encode, b'"x"'),
        "positions: numbers": (encode, b"0"),
        "positions: triples of strings": (encode, b'["a","b","c"]'),
        "positions: four numbers each": (encode, b"[0,0,0,0]"),
        "unknown keys": (b"{{}}", None),
        "species: unknown symbols": (structure, b'"Xx"'),
        "species: long strings": (structure, b'"Xxxxxxxx"'),
    }
    attacks: dict[str, Callable[[], list]] = {}
    for size in (600_000, LIMITS.max_body_bytes - 64):
        shown = f"{size / 1e6:.1f} MB"
        for name, (template, item) in cases.items():
            path = "/v1/encode/structure" if b"structure" in template else "/v1/encode"
            if item is None:  # distinct keys, as many as fit
                keys = b",".join(b'"k%07d":0' % i for i in range(size // 13))
                body = b"{" + keys + b"}"
            else:
                body = flood(template, item, size)
            attacks[f"`POST {path}`, {shown} body, {name}"] = lambda path=path, body=body: [json_post(url, path, body)]
    return attacks


def attacks(server: RunningServer, idle_connections: int) -> dict[str, Callable[[], list]]:
    url, port = server.url, server.port
    rng = np.random.default_rng(0)
    salt = {
        "lattice": [[5.64, 0, 0], [0, 5.64, 0], [0, 0, 5.64]],
        "species": ["Na", "Cl"],
        "positions": [[0, 0, 0], [0.5, 0.5, 0.5]],
    }

    def p1(n):
        return {"structure": p1_structure(n, seed=int(rng.integers(2**31))), "radius": 2}

    # Made before the attack: building them in the attack's threads would hold this process's
    # GIL, and delay its own health poll.
    numbers = flood(b'{"group":1,"radius":2,"positions":[{}]}', b"0", 8_300_000)
    strings = flood(b'{"positions":[{}]}', b'["a","b","c"]', 8_300_000)

    def export_left_after(seconds: float) -> list:
        """An export whose client leaves after ``seconds``: how long its slot stays held."""
        raw = socket.create_connection(("127.0.0.1", port))
        raw.sendall(b"GET /v1/export HTTP/1.1\r\nhost: x\r\n\r\n")
        time.sleep(seconds)
        raw.close()
        left = time.monotonic()
        while httpx.get(f"{url}/v1/health").json()["heavy_requests"] and time.monotonic() - left < 30:
            time.sleep(0.01)
        return [f"slot free {time.monotonic() - left:.2f} s after the client left"]

    def hog() -> list:
        """One address holds as many connections as it can, reconnecting as they are closed;
        100 other clients, one address each, ask for /v1/health meanwhile."""
        stop, held = threading.Event(), []

        def hold():
            while not stop.is_set():
                try:
                    held.append(
                        socket.create_connection(("127.0.0.1", port), timeout=2, source_address=("127.0.0.2", 0))
                    )
                except OSError:
                    time.sleep(0.01)
                if len(held) > 2_000:
                    held.pop(0).close()

        holder = threading.Thread(target=hold)
        holder.start()
        time.sleep(1.0)
        served = 0
        for client in range(100):
            with httpx.Client(transport=httpx.HTTPTransport(local_address=source(client, 1)[0]), timeout=10) as other:
                served += answer_of(lambda other=other: other.get(f"{url}/v1/health")) == 200
        stop.set()
        holder.join()
        for connection in held:
            connection.close()
        return [f"{served} of 100 other clients served"]

    return {
        "GET /v1/export?groups=1-9999999999&radii=2": lambda: [
            get(url, "/v1/export", params={"groups": "1-9999999999", "radii": "2"})
        ],
        "GET /v1/export?groups=5-1": lambda: [get(url, "/v1/export", params={"groups": "5-1"})],
        "GET /v1/export (the whole store)": lambda: [get(url, "/v1/export")],
        "GET /v1/export, the client leaves after 0.3 s": lambda: export_left_after(0.3),
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
        "POST /v1/encode, Ia-3d at radius 2 (an empty basis)": lambda: [
            post(url, "/v1/encode", json={"group": 230, "radius": 2, "positions": [[0.1, 0.2, 0.3]]})
        ],
        "32 MiB body of [0,0,0] triples": lambda: [
            json_post(
                url, "/v1/encode", b'{"group":1,"radius":2,"positions":[' + b",".join([b"[0,0,0]"] * 4_194_000) + b"]}"
            )
        ],
        **floods(url),
        "8 x 8.3 MB bodies of invalid items at once": lambda: parallel(
            [lambda: json_post(url, "/v1/encode", numbers), lambda: json_post(url, "/v1/encode", strings)] * 4
        ),
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
        "CIF with a coordinate of 1e308": lambda: [
            post(
                url,
                "/v1/encode/structure",
                json={"cif": fcc_cif(1).replace("Si0 Si 0.", "Si0 Si 1e308 0."), "radius": 2},
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
        f"{idle_connections} idle connections, 50 per address": lambda: raw_connections(port, idle_connections),
        "200 connections trickling headers": lambda: raw_connections(
            port, 200, b"GET /v1/health HTTP/1.1\r\nhost: x\r\n"
        ),
        "200 connections trickling bodies": lambda: raw_connections(
            port,
            200,
            b"POST /v1/encode HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\ncontent-type: application/json\r\n\r\n{",
        ),
        "10 MB header": lambda: raw_connections(
            port, 1, b"GET /v1/health HTTP/1.1\r\nx-big: " + b"a" * 10_000_000 + b"\r\n\r\n"
        ),
        "one address holding up to 2,000 connections, reconnecting": hog,
    }


def export_signals(store: str | None, workers: int) -> list[tuple[str, str, str]]:
    """An export's deadline, SIGTERM and SIGKILL during an export, on servers of their own:
    (attack, what happened, files left)."""
    rows = []
    server = RunningServer(store, workers, "--request-timeout", "2")
    try:
        began = time.monotonic()
        status = get(server.url, "/v1/export")
        answered = time.monotonic() - began
        while httpx.get(f"{server.url}/v1/health").json()["heavy_requests"] and time.monotonic() - began < 30:
            time.sleep(0.01)
        rows.append(
            (
                "GET /v1/export past a 2 s --request-timeout",
                f"{status} after {answered:.2f} s; slot free after {time.monotonic() - began:.2f} s",
                ", ".join(server.leftovers()) or "none",
            )
        )
    finally:
        server.stop()
    for kill in (signal.SIGTERM, signal.SIGKILL):
        server = RunningServer(store, workers)
        raw = socket.create_connection(("127.0.0.1", server.port))
        raw.sendall(b"GET /v1/export HTTP/1.1\r\nhost: x\r\n\r\n")
        time.sleep(1.0)
        during = len(server.leftovers())
        began = time.monotonic()
        server.process.send_signal(kill)
        server.process.wait()
        stopped = time.monotonic() - began
        raw.close()
        left = server.leftovers()
        server.log.close()
        after = RunningServer(store, workers, tmp=server.tmp)  # the next server in the same folder
        cleaned = after.leftovers()
        after.stop()
        rows.append(
            (
                f"{signal.Signals(kill).name} during an export",
                f"{during} temporary file(s) during; stopped in {stopped:.2f} s; {len(left)} file(s) left at exit",
                f"{len(cleaned)} once the next server has started",
            )
        )
    return rows


def main() -> None:
    parser = command_parser("benchmarks/service_abuse.py", __doc__)
    parser.add_argument("--idle-connections", type=int, default=19_980, help="connections opened and left idle")
    parser.add_argument("--workers", type=int, default=1, help="server processes")
    parser.add_argument("--store", default=None, help="store to serve (default: the default store)")
    args = parser.parse_args()
    server = RunningServer(args.store, args.workers)
    ceiling = LIMITS.max_worker_bytes
    try:
        with Watch(server.url, server.process.pid) as idle:
            time.sleep(2)
        server_idle = server.rss_alone()
        print(
            f"server: basisdb serve, {args.workers} worker(s); idle RSS {idle.peak / MIB:.0f} MiB "
            f"(workers {', '.join(f'{w.memory_info().rss / MIB:.0f}' for w in server.workers())} MiB); "
            f"idle health p50 {np.median(idle.latencies):.1f} ms, p99 {np.percentile(idle.latencies, 99):.1f} ms"
        )
        print(
            "| attack | answers | seconds | peak RSS (MiB) | health p50 / p99 / max (ms) | "
            "server, workers after (MiB) | files left |"
        )
        print("|---|---|---|---|---|---|---|")
        worst_rss, worst_p99, worst_server, bad, hangs, heavy_workers, files = 0, 0.0, 0, [], [], [], []
        for name, attack in attacks(server, args.idle_connections).items():
            with Watch(server.url, server.process.pid) as watch:
                began = time.monotonic()
                answers = attack()
                seconds = time.monotonic() - began
                settled = time.monotonic()  # every slot free again: the work has stopped
                while (
                    server.process.poll() is None
                    and httpx.get(f"{server.url}/v1/health", timeout=10).json()["heavy_requests"]
                    and time.monotonic() - settled < 10
                ):
                    time.sleep(0.05)
                if time.monotonic() - settled >= 10:
                    hangs.append(f"{name}: a heavy slot still held 10 s later")
                time.sleep(0.5)  # a worker above its ceiling is replaced in the background
            latencies = np.asarray(watch.latencies or [np.nan])
            p99 = float(np.percentile(latencies, 99))
            worst_rss, worst_p99 = max(worst_rss, watch.peak), max(worst_p99, p99)
            workers = [w.memory_info().rss for w in server.workers()]
            alone = server.rss_alone()
            worst_server = max(worst_server, alone)
            left = server.leftovers()
            shown = json.dumps(answers[0]) if isinstance(answers[0], dict) else ", ".join(str(a) for a in answers)
            print(
                f"| {name} | {shown} | {seconds:.2f} | {watch.peak / MIB:.0f} | "
                f"{np.median(latencies):.1f} / {p99:.1f} / {latencies.max():.1f} | "
                f"{alone / MIB:.0f}; {', '.join(f'{rss / MIB:.0f}' for rss in workers)} | {len(left)} |"
            )
            bad += [f"{name}: {a}" for a in answers if isinstance(a, int) and a >= 500 and a != 503]
            hangs += [f"{name}: no answer" for a in answers if a == "hang"]
            heavy_workers += [f"{name}: {rss / MIB:.0f} MiB" for rss in workers if rss > ceiling]
            files += [f"{name}: {path}" for path in left]
            if server.process.poll() is not None:
                bad.append(f"{name}: the server exited with {server.process.returncode}")
                break
        unhandled = server.output().count("Exception in ASGI application")
        replaced = httpx.get(f"{server.url}/v1/health").json()["workers_replaced"]
        print(
            f"\nserver alive: {server.process.poll() is None}; hangs: {hangs or 'none'}; "
            f"5xx other than 503: {bad or 'none'}; unhandled exceptions in its log: {unhandled}; "
            f"worst peak RSS {worst_rss / MIB:.0f} MiB (goal < 1024); "
            f"worst health p99 {worst_p99:.1f} ms (goal < 100), "
            f"against {np.percentile(idle.latencies, 99):.1f} ms idle; "
            f"workers above their {ceiling / MIB:.0f} MiB ceiling after an attack: {heavy_workers or 'none'} "
            f"({replaced} replaced); largest server RSS after an attack {worst_server / MIB:.0f} MiB "
            f"(idle {server_idle / MIB:.0f}); files left: {files or 'none'}"
        )
    finally:
        server.stop()
    print("\n| attack (a server of its own) | what happened | files left |")
    print("|---|---|---|")
    for row in export_signals(args.store, args.workers):
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
