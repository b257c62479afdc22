"""Load test of the real server over loopback with wrk (a native load generator).

Starts ``python -m service`` on a free port, then measures with ``wrk --latency``:
  1. GET /v1/groups/{g}/basis?radius=R, cached, 32 concurrent connections (goal: p99 <= 20 ms),
     against the same server with its response cache turned off (the naive baseline);
  2. POST /v1/encode of 1,000 positions at radius 6 (goal: <= 50 ms), against naive
     evaluation (exp of every plane wave, dense routing) of the same positions in-process.

    apt-get install wrk
    python benchmarks/service_load.py [--workers 1] [--duration 10]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from basisdb import BasisStore, build_store

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(store: Path, workers: int, cache: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "service", "--store", str(store), "--port", str(port), "--workers", str(workers),
         "--basis-cache-size", str(cache), "--max-positions", "100000"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    import urllib.request

    for _ in range(300):
        try:
            urllib.request.urlopen(f"{url}/v1/health", timeout=1).read()
            return process, url
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("server did not start")


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
        'local f = io.open("%s", "rb")\nwrk.body = f:read("*a")\nf:close()\n'
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n' % payload
        + (f'wrk.headers["Accept"] = "{accept}"\n' if accept else "")
    )
    return script


def line(name: str, r: dict[str, float]) -> str:
    return f"{name:<46} p50 {r['p50_ms']:7.2f} ms  p99 {r['p99_ms']:7.2f} ms  {r['requests_per_s']:8.0f} req/s  non-2xx {r['non_2xx']}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--basis-group", type=int, default=194)
    parser.add_argument("--basis-radius", type=float, default=6)
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
        for cache, name in ((1024, "cached"), (0, "no cache (baseline)")):
            server, url = start_server(store, args.workers, cache)
            try:
                subprocess.run(["wrk", "-t", "1", "-c", "4", "-d", "1s", url + basis_url], capture_output=True)  # warm
                results[name] = wrk(url + basis_url, 32, args.duration)
            finally:
                server.terminate()
                server.wait()
        print(f"GET {basis_url} (32 connections)")
        for name, r in results.items():
            print("  " + line(name, r))
        ratio = results["no cache (baseline)"]["p99_ms"] / results["cached"]["p99_ms"]
        print(f"  p99 ratio baseline / cached: {ratio:.1f}x (goal: cached p99 <= 20 ms)\n")

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
                    print(f"  {line(label, r)}  naive compute alone {naive:6.1f} ms ({naive / r['p50_ms']:.1f}x our p50 request)")
                    binary = wrk(url + "/v1/encode", 1, args.duration, post_script(tmp, body, accept=NPZ))
                    print(f"  {line(label + ', Accept: npz', binary)}")
        finally:
            server.terminate()
            server.wait()
        print("  goal: <= 50 ms per request")


if __name__ == "__main__":
    main()
