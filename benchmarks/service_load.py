"""Load test of the real server over loopback with wrk (a native load generator).

Starts ``basisdb serve`` on a free port, then measures with ``wrk --latency``:
  1. GET /v1/groups/227/basis?radius=4 (Fd-3m), cached, 32 concurrent connections, one worker
     (goal: p99 <= 10 ms and >= 4,000 req/s), against the same server with its response cache
     turned off (the naive baseline) and against a bare uvicorn app that only returns the same
     pre-rendered bytes (the ceiling: what one worker can serve at all);
  2. POST /v1/encode of 1,000 positions at radius 6 (goal: <= 50 ms), against naive
     evaluation (exp of every plane wave, dense routing) of the same positions in-process.

    apt-get install wrk
    python benchmarks/service_load.py [--workers 1] [--duration 10]
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from basisdb import BasisStore, build_store, command_parser

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.helpers import free_port  # noqa: E402


def start_server(store: Path, workers: int, cache: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "basisdb",
            "serve",
            "--store",
            str(store),
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--basis-cache-size",
            str(cache),
            "--max-positions",
            "100000",
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    return process, wait_until_up(process, url, "/v1/health")


def wait_until_up(process: subprocess.Popen, url: str, path: str = "/") -> str:
    import urllib.request

    for _ in range(300):
        try:
            urllib.request.urlopen(url + path, timeout=1).read()
            return url
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("server did not start")


BYTES_SERVER = """
import sys, uvicorn
body = open(sys.argv[1], "rb").read()
headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})

uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), workers=1, http="httptools", log_level="warning")
"""


def start_bytes_server(directory: Path, body: bytes) -> tuple[subprocess.Popen, str]:
    """A bare ASGI app that answers every request with the same bytes: the ceiling for one worker."""
    (directory / "body.bin").write_bytes(body)
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", BYTES_SERVER, str(directory / "body.bin"), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return process, wait_until_up(process, f"http://127.0.0.1:{port}")


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk(url: str, connections: int, duration: int, script: Path | None = None) -> dict[str, float]:
    command = ["wrk", "-t", "1", "-c", str(connections), "-d", f"{duration}s", "--latency", url]
    if script:
        command[1:1] = ["-s", str(script)]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    result = {}
    for label, key in (("50%", "p50_ms"), ("99%", "p99_ms")):
        value, unit = re.search(rf"^\s*{re.escape(label)}\s+([\d.]+)(us|ms|s)\s*$", output, re.M).groups()
        result[key] = float(value) * _UNITS[unit]
    result["requests_per_s"] = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    result["non_2xx"] = int(errors.group(1)) if errors else 0
    return result


NPZ = "application/x-npz"


def post_script(directory: Path, body: dict, accept: str | None = None) -> Path:
    payload = directory / "body.json"
    payload.write_text(json.dumps(body))
    script = directory / "post.lua"
    script.write_text(
        f'local f = io.open("{payload}", "rb")\nwrk.body = f:read("*a")\nf:close()\n'
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        + (f'wrk.headers["Accept"] = "{accept}"\n' if accept else "")
    )
    return script


def line(name: str, r: dict[str, float]) -> str:
    return (
        f"{name:<46} p50 {r['p50_ms']:7.2f} ms  p99 {r['p99_ms']:7.2f} ms  "
        f"{r['requests_per_s']:8.0f} req/s  non-2xx {r['non_2xx']}"
    )


def main() -> None:
    parser = command_parser("benchmarks/service_load.py", __doc__)
    parser.add_argument("--workers", type=int, default=1, help="server processes")
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--basis-group", type=int, default=227, help="group of the basis lookup")
    parser.add_argument("--basis-radius", type=float, default=4, help="radius of the basis lookup")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk not found: apt-get install wrk")

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        store = tmp / "store.h5"
        build_store(store, radii=[2, 4, 6], progress=False)
        print(f"{os.cpu_count()} cores, {args.workers} server worker(s), wrk 1 thread, {args.duration} s per run\n")

        basis_url = f"/v1/groups/{args.basis_group}/basis?radius={args.basis_radius:g}"
        results = {}
        body = None
        for cache, name in ((1024, "cached"), (0, "no cache (baseline)"), (None, "pre-rendered bytes (ceiling)")):
            if cache is None:
                server, url = start_bytes_server(tmp, body)
            else:
                server, url = start_server(store, args.workers, cache)
            try:
                if body is None:
                    import urllib.request

                    body = urllib.request.urlopen(url + basis_url, timeout=10).read()
                subprocess.run(["wrk", "-t", "1", "-c", "4", "-d", "1s", url + basis_url], capture_output=True)  # warm
                results[name] = wrk(url + basis_url, 32, args.duration)
            finally:
                server.terminate()
                server.wait()
        print(f"GET {basis_url} (32 connections, {len(body):,} bytes per answer)")
        for name, r in results.items():
            print("  " + line(name, r))
        cached, baseline, ceiling = results.values()
        print(
            f"  cached vs no cache: p99 {baseline['p99_ms'] / cached['p99_ms']:.1f}x lower, "
            f"{cached['requests_per_s'] / baseline['requests_per_s']:.1f}x the req/s; "
            f"vs the ceiling: {cached['requests_per_s'] / ceiling['requests_per_s']:.2f} of its req/s"
        )
        print("  goal: cached p99 <= 10 ms and >= 4,000 req/s with one worker\n")

        server, url = start_server(store, args.workers, 1024)
        try:
            print("POST /v1/encode, 1,000 positions, radius 6 (1 connection; latency per request)")
            x = np.random.default_rng(0).random((1000, 3))
            with BasisStore.open(store) as opened:
                for group in (225, 62, 194, 1):
                    body = {"group": group, "radius": 6, "positions": x.tolist()}
                    script = post_script(tmp, body)
                    r = wrk(url + "/v1/encode", 1, args.duration, script)
                    basis = opened.basis(group, radius=6)
                    dense = basis.routing.toarray()
                    naive = []
                    for _ in range(5):
                        start = time.perf_counter()
                        np.exp(2j * np.pi * (x @ basis.frequencies.T)) @ dense.T
                        naive.append((time.perf_counter() - start) * 1e3)
                    naive = min(naive)
                    label = f"group {group} (n_basis {basis.n_basis})"
                    print(
                        f"  {line(label, r)}  naive compute alone {naive:6.1f} ms "
                        f"({naive / r['p50_ms']:.1f}x our p50 request)"
                    )
                    binary = wrk(url + "/v1/encode", 1, args.duration, post_script(tmp, body, accept=NPZ))
                    print(f"  {line(label + ', Accept: npz', binary)}")
        finally:
            server.terminate()
            server.wait()
        print("  goal: <= 50 ms per request")


if __name__ == "__main__":
    main()
