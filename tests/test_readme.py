"""The README tells the truth about what it accepts: its Python blocks run as written (with the
names they assume: ``structure``, ``atoms``, ``NaCl.cif``, ``frame``), and each of its claims
about accepted inputs is checked by the documented call.  The model's prediction block runs in
``tests/test_model.py``, beside the checkpoint it needs."""

from __future__ import annotations

import numpy as np
import pytest

import basisdb
from basisdb import BasisStore, Cell, StructureError, standardize

from .helpers import readme_python_block

ROCK_SALT_CIF = """data_NaCl
_cell_length_a 5.64
_cell_length_b 5.64
_cell_length_c 5.64
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
_symmetry_space_group_name_H-M 'F m -3 m'
_symmetry_Int_Tables_number 225
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
Na Na 0 0 0
Cl Cl 0.5 0.5 0.5
"""


@pytest.fixture
def readme_folder(small_store, tmp_path, monkeypatch):
    """A working folder holding the files the README's examples name, with the small store as
    the default store."""
    monkeypatch.setenv("BASISDB_STORE", str(small_store))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "NaCl.cif").write_text(ROCK_SALT_CIF)
    return tmp_path


def _rock_salt():
    from pymatgen.core import Lattice, Structure

    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def test_the_quick_start_and_the_structures_block_run_as_written_one_after_the_other(readme_folder):
    """As a reader runs them: in one session, the second block after the first."""
    pytest.importorskip("pymatgen")
    namespace: dict = {}
    exec(readme_python_block("b = store.basis(group=227, radius=4)"), namespace)
    b = namespace["b"]
    assert (b.group, b.n_basis) == (194, basisdb.build_basis(group=194, radius=6).n_basis)
    with BasisStore.open() as store:  # the comment's spelling is the same basis
        assert store.basis(group="Fd-3m", radius=4).hall_number == store.basis(group=227, radius=4).hall_number == 525
    namespace["structure"] = _rock_salt()
    exec(readme_python_block("std = standardize(structure)"), namespace)
    assert namespace["std"].setting.group == 225 and namespace["frames"].n_frames == 2


@pytest.mark.parametrize("spelling", ["Fd-3m", "F d -3 m", "F d -3 m:1", "F41/d-32/m", "F 41/d -3 2/m"])
def test_a_group_symbol_in_the_spellings_of_spglib_pymatgen_and_gemmi(spelling, small_store):
    """The README: ``group="Fd-3m"``, "a Hermann-Mauguin symbol, as spglib, pymatgen and gemmi
    spell it" (short, spaced, with gemmi's origin choice, full)."""
    with BasisStore.open(small_store) as store:
        assert store.basis(group=spelling, radius=2).group == 227


def test_every_documented_kind_of_structure_gives_the_same_standardization(readme_folder):
    """pymatgen Structure, ASE Atoms, spglib's tuple, CIF text, the path of a CIF file, of a
    POSCAR and of an extended XYZ file, and a basisdb Cell: one standardized crystal."""
    pytest.importorskip("pymatgen")
    pytest.importorskip("ase")
    from pymatgen.io.ase import AseAtomsAdaptor

    structure = _rock_salt()
    structure.to(filename="POSCAR")
    atoms = AseAtomsAdaptor.get_atoms(structure)
    atoms.write("rock-salt.extxyz")
    spglib_tuple = (5.64 * np.eye(3), [[0, 0, 0], [0.5, 0.5, 0.5]], [11, 17])  # the README's: a CsCl-type cell
    kinds = {
        "Structure": structure,
        "Atoms": atoms,
        "CIF text": open("NaCl.cif").read(),
        "CIF path": "NaCl.cif",
        "POSCAR path": "POSCAR",
        "extxyz path": "rock-salt.extxyz",
        "Cell": Cell.from_any(structure),
    }
    reference = standardize(structure)
    for kind, given in kinds.items():
        found = standardize(given)
        assert found.setting.hall_number == reference.setting.hall_number, kind
        assert np.allclose(found.cell.lattice, reference.cell.lattice, atol=1e-6), kind
        assert sorted(found.cell.numbers) == sorted(reference.cell.numbers), kind
    assert standardize(spglib_tuple).setting.group == 221
    cell = Cell.from_any(structure)  # "and back"
    assert np.allclose(Cell.from_any(cell.to_pymatgen()).lattice, cell.lattice)
    assert np.allclose(Cell.from_any(cell.to_ase()).positions, cell.positions)


def test_the_string_rule(readme_folder):
    """A string is CIF text when it holds a line break or starts with ``data_``, else a path."""
    assert standardize("NaCl.cif").setting.group == 225  # a path
    assert standardize(ROCK_SALT_CIF).setting.group == 225  # text, by its line breaks
    with pytest.raises(StructureError, match="cannot parse CIF"):
        standardize("data_NaCl _cell_length_a 5.64")  # one line starting with data_: text, not a path
    with pytest.raises(StructureError, match="cannot read NaCl: no such file"):
        standardize("NaCl")  # one line without data_: a path, reported missing by the name given


def test_a_partly_occupied_site_or_two_sites_on_one_position_are_refused_by_name(readme_folder):
    occupied = ROCK_SALT_CIF.replace("_atom_site_fract_z\n", "_atom_site_fract_z\n_atom_site_occupancy\n")
    occupied = occupied.replace("Na Na 0 0 0", "Na Na 0 0 0 0.5").replace("Cl Cl 0.5 0.5 0.5", "Cl Cl 0.5 0.5 0.5 1")
    with pytest.raises(StructureError, match="Na"):
        standardize(occupied)
    doubled = ROCK_SALT_CIF + "K K 0 0 0\n"
    with pytest.raises(StructureError, match=r"K.*Na|Na.*K"):
        standardize(doubled)


def test_the_featurizer_block_runs_as_written(readme_folder):
    pytest.importorskip("matminer")
    import pandas as pd

    frame = pd.DataFrame({"structure": [_rock_salt()]})
    namespace = {"frame": frame}
    exec(readme_python_block("featurizer = SymmetryFourierFeaturizer("), namespace)
    table, featurizer = namespace["table"], namespace["featurizer"]
    assert list(table.columns[1:]) == featurizer.feature_labels() and len(featurizer.feature_labels()) == 1280


def test_the_results_block_runs_as_written(capsys, monkeypatch):
    from .helpers import REPO_ROOT

    monkeypatch.chdir(REPO_ROOT)
    exec(readme_python_block("result = read_run("), {})
    assert "[" in capsys.readouterr().out
