"""The builder and the command line, run as real processes."""

import hashlib
import os
import signal
import subprocess
import sys
import time

import h5py
import pytest

from basisdb import BasisStore, build_store

from .helpers import REPO_ROOT, run_cli

pytestmark = pytest.mark.slow  # build_db.py and basisdb runs, interrupted builds, dask

SETTINGS = "1-12,525"


def sha256_of(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def cli_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "cli.h5"
    result = run_cli("build_db.py", "--radii", "2", "3", "--settings", SETTINGS, "--workers", "2", "--out", str(path))
    assert result.returncode == 0, result.stderr
    assert "13 settings x 2 radii verified" in result.stdout
    assert "max inv. err" in result.stdout and "fingerprint" in result.stdout
    assert "building settings" in result.stderr  # the progress bar
    return path


def test_cli_build_and_verify(cli_store):
    with BasisStore.open(cli_store) as store:
        assert store.radii == (2.0, 3.0) and len(store.hall_numbers) == 13
    result = run_cli("-m", "basisdb", "verify", str(cli_store), "--quiet")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "13 settings re-verified" in result.stdout and result.stdout.strip().endswith("OK")
    info = run_cli("-m", "basisdb", "info", str(cli_store))
    assert info.returncode == 0 and "spglib_version" in info.stdout


def test_cli_verify_fails_on_corruption(cli_store, tmp_path):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(cli_store.read_bytes())
    with h5py.File(bad, "r+") as handle:
        handle["settings/525/column_value"][3] = 0.5 + 0.5j
    result = run_cli("-m", "basisdb", "verify", str(bad), "--quiet")
    assert result.returncode == 1
    assert "FAIL /settings/525/column_value: sha256 mismatch" in result.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--radii", "0"], "radius must be a positive finite number, got 0.0"),
        (["--radii", "2", "--settings", "0-3"], "Hall numbers must lie in 1-530"),
        (["--radii", "2", "--settings", "abc"], "cannot read 'abc'"),
        (["--radii", "2", "--settings", "3-x"], "or use 'default' or 'all'"),
        (["--radii", "2", "--workers", "-1"], "workers must be at least 1"),
    ],
)
def test_cli_bad_arguments(tmp_path, args, message):
    out = tmp_path / "never.h5"
    result = run_cli("build_db.py", *args, "--out", str(out))
    assert result.returncode == 2
    assert message in result.stderr
    assert not out.exists()


def test_build_is_deterministic_across_worker_counts(cli_store, tmp_path):
    report = build_store(tmp_path / "serial.h5", radii=[2, 3], settings=SETTINGS, workers=1, progress=False)
    with BasisStore.open(cli_store) as store:
        assert report.fingerprint == store.fingerprint


def test_build_on_dask_distributed(cli_store, tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster:
        report = build_store(
            tmp_path / "dask.h5", radii=[2, 3], settings=SETTINGS, scheduler=cluster.scheduler_address, progress=False
        )
    with BasisStore.open(cli_store) as store:
        assert report.fingerprint == store.fingerprint
        assert report.n_settings == 13


def _start_long_build(out):
    return subprocess.Popen(
        [
            sys.executable,
            "build_db.py",
            "--radii",
            "2",
            "16",
            "--settings",
            "all",
            "--workers",
            "2",
            "--out",
            str(out),
            "--quiet",
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        # A job started in the background inherits an ignored SIGINT; give the builder the
        # default disposition, so that Python turns Ctrl-C into KeyboardInterrupt as in a terminal.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _wait_for_partial(out, process):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        partial = list(out.parent.glob(f".{out.name}.*.partial"))
        if partial:
            time.sleep(1.0)  # well into the build, which takes about 9 s on 2 cores
            return partial[0]
        time.sleep(0.05)
    pytest.fail("the builder never started writing")


@pytest.mark.parametrize(
    "signal_number", [signal.SIGKILL, signal.SIGINT, signal.SIGTERM], ids=["kill", "ctrl-c", "term"]
)
def test_interrupted_build_leaves_previous_store_intact(cli_store, tmp_path, signal_number):
    out = tmp_path / "store.h5"
    out.write_bytes(cli_store.read_bytes())
    before = sha256_of(out)
    process = _start_long_build(out)
    partial = _wait_for_partial(out, process)
    if signal_number == signal.SIGKILL:
        os.killpg(process.pid, signal.SIGKILL)  # the builder and its workers, as an OOM kill would
    else:
        process.send_signal(signal_number)
    process.wait(timeout=60)
    expected = -signal.SIGKILL if signal_number == signal.SIGKILL else 128 + signal_number
    assert process.returncode == expected
    assert sha256_of(out) == before
    with BasisStore.open(out) as store:
        assert store.radii == (2.0, 3.0)
        store.basis(group=227, radius=3)
    if signal_number != signal.SIGKILL:
        assert not partial.exists()  # a catchable interruption removes its temporary file
    else:
        assert partial.exists()  # nothing can clean up after SIGKILL...
        build_store(out, radii=[2], settings="1", progress=False)
        assert not partial.exists()  # ...but the next build removes the dead builder's file
