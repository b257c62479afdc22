"""What prediction reads and how it names things, without a model: structure files of every
format pymatgen or ASE reads, folders with and without id_prop.csv, one structure or many.
The command itself, on a trained checkpoint, is tested in test_model.py."""

from pathlib import Path

import ase.io
import pytest
from pymatgen.io.ase import AseAtomsAdaptor

from basisdb import Cell, StructureError, read_structure_file
from basisdb.model.checkpoint import is_one_structure, target_of
from basisdb.model.data import as_cell, read_structure_directory, read_structure_files
from basisdb.model.datasets import DatasetError
from basisdb.model.predict import skipped_path, value_column

from .helpers import real, same_cell


def write_formats(directory: Path, structure) -> dict[str, Path]:
    """One crystal as a CIF, a POSCAR, a *.vasp, an extxyz and a pymatgen JSON file."""
    paths = {
        "cif": directory / "crystal.cif",
        "poscar": directory / "POSCAR",
        "vasp": directory / "other.vasp",
        "extxyz": directory / "crystal.extxyz",
        "json": directory / "crystal.json",
    }
    structure.to(filename=str(paths["cif"]))
    structure.to(filename=str(paths["poscar"]))
    structure.to(filename=str(paths["vasp"]))
    structure.to(filename=str(paths["json"]))
    ase.io.write(paths["extxyz"], AseAtomsAdaptor.get_atoms(structure), format="extxyz")
    return paths


def test_every_format_reads_to_the_same_crystal(tmp_path):
    structure = real("LiFePO4")
    reference = Cell.from_pymatgen(structure)
    for kind, path in write_formats(tmp_path, structure).items():
        cell = as_cell(str(path))
        assert same_cell(cell, reference), kind
        assert cell.label == path.stem
    assert type(read_structure_file(tmp_path / "crystal.extxyz")).__name__ == "Atoms"  # pymatgen has no extxyz reader
    text = (tmp_path / "crystal.cif").read_text()
    assert same_cell(as_cell(text), reference)  # CIF text is read as text, not taken for a path
    assert type(read_structure_file(tmp_path / "POSCAR")).__name__ == "Structure"


def test_unreadable_files_say_why(tmp_path):
    (tmp_path / "notes.txt").write_text("not a crystal\n")
    (tmp_path / "bad.cif").write_text("data_bad\n_cell_length_a 5\nloop_\n_atom_site_label\n")
    ase.io.write(tmp_path / "molecule.xyz", AseAtomsAdaptor.get_atoms(real("CsCl")), format="xyz")  # no lattice
    with pytest.raises(StructureError, match=r"neither pymatgen nor ASE reads notes.txt \(pymatgen: .*; ASE: .*\)"):
        read_structure_file(tmp_path / "notes.txt")
    with pytest.raises(StructureError, match="cannot parse CIF 'bad': no data block lists atom sites"):
        as_cell(tmp_path / "bad.cif")  # the core's CIF reader, as the service reads CIF
    with pytest.raises(StructureError, match="not periodic"):
        as_cell(tmp_path / "molecule.xyz")
    with pytest.raises(StructureError, match="missing.cif: no such file"):
        as_cell(str(tmp_path / "missing.cif"))
    with pytest.raises(StructureError, match="it is a folder"):
        read_structure_file(tmp_path)


def test_a_folder_without_id_prop(tmp_path):
    write_formats(tmp_path, real("TiO2"))
    (tmp_path / ".DS_Store").write_bytes(b"\0\1")
    (tmp_path / "sub").mkdir()
    (tmp_path / "crystal.vasp").write_text("")  # shares its stem with crystal.cif: labels become file names
    with pytest.raises(DatasetError, match="has no id_prop.csv"):
        read_structure_directory(tmp_path)  # training needs targets
    structures, targets = read_structure_directory(tmp_path, require_targets=False)
    assert targets == {}
    assert [label for label, _ in structures] == [
        "POSCAR",
        "crystal.cif",
        "crystal.extxyz",
        "crystal.json",
        "crystal.vasp",
        "other",
    ]
    assert [path.name for _, path in structures] == sorted(path.name for _, path in structures)
    with pytest.raises(DatasetError, match="is not a folder"):
        read_structure_directory(tmp_path / "POSCAR", require_targets=False)


def test_a_folder_with_id_prop_finds_other_formats(tmp_path):
    real("CsCl").to(filename=str(tmp_path / "a.cif"))
    real("Li2O").to(filename=str(tmp_path / "b.vasp"))
    (tmp_path / "id_prop.csv").write_text("material_id,density\na,1.5\nb,2.0\nc,3.0\n")
    structures, targets = read_structure_directory(tmp_path)
    assert targets == {"a": 1.5, "b": 2.0, "c": 3.0}
    assert [(label, path.name) for label, path in structures] == [("a", "a.cif"), ("b", "b.vasp"), ("c", "c.cif")]


def test_files_keep_their_order_and_stems():
    files = read_structure_files(["x/b.cif", "x/a.extxyz", "y/POSCAR"])
    assert [label for label, _ in files] == ["b", "a", "POSCAR"]


def test_one_structure_or_many(tmp_path):
    structure = real("CsCl")
    atoms = AseAtomsAdaptor.get_atoms(structure)
    cell = Cell.from_pymatgen(structure)
    spglib_cell = (cell.lattice.tolist(), cell.positions.tolist(), cell.numbers.tolist())
    for one in (structure, atoms, cell, "a.cif", tmp_path / "a.cif", spglib_cell, tuple(spglib_cell)):
        assert is_one_structure(one), type(one)
    for many in ([structure], (structure, atoms), ["a.cif", "b.cif"], [spglib_cell] * 3, (s for s in [cell])):
        assert not is_one_structure(many), type(many)


def test_the_prediction_column_and_the_skipped_file_are_named():
    assert target_of({"data": "elastic_tensor:log10_K_VRH"}) == ("log10_K_VRH", "log10(GPa)")
    assert target_of({"data": "runs/folder"}) == (None, None)
    assert target_of({"data": "elastic_tensor:nothing"}) == (None, None)
    assert target_of({"data": "x", "target": "density", "unit": "g/cm3"}) == ("density", "g/cm3")
    assert value_column("log10_K_VRH", "log10(GPa)") == "log10_K_VRH (log10(GPa))"
    assert value_column("density", None) == "density" and value_column(None, None) == "prediction"
    assert skipped_path(Path("out/preds.csv")) == Path("out/preds.skipped.csv")
    assert skipped_path(Path("preds")) == Path("preds.skipped.csv")
