"""Standardization of real structures into the store's settings."""

import sys

import numpy as np
import pytest
from ase.build import bulk
from pymatgen.core import Structure

from basisdb import Cell, StructureError, build_basis, crystal_frames, standardize

from .helpers import cubic_structure


def spinel():
    """MgAl2O4 in origin choice 1 (pymatgen's and spglib's setting of 227): Mg on 8a, Al on
    16d, O on 32e."""
    return cubic_structure(227, 8.08, ["Mg", "Al", "O"], [[0, 0, 0], [0.625, 0.625, 0.625], [0.3874, 0.3874, 0.3874]])


def images_match(cell, standard):
    """(P x + p) of every input atom lands on its standardized atom (mod lattice)."""
    images = cell.positions @ standard.transformation_matrix.T + standard.origin_shift
    delta = images - standard.cell.positions[standard.input_to_standardized]
    delta -= np.rint(delta)
    return np.abs(delta).max() < 1e-3


@pytest.mark.parametrize("variant", ["conventional", "primitive", "supercell", "shuffled"])
def test_standardization_of_spinel(variant):
    structure = spinel()
    if variant == "primitive":
        structure = structure.get_primitive_structure()
    elif variant == "supercell":
        structure.make_supercell([1, 2, 1])
    elif variant == "shuffled":
        order = np.random.default_rng(0).permutation(len(structure))
        structure = Structure.from_sites([structure[i] for i in order])
    cell = Cell.from_pymatgen(structure)
    standard = standardize(structure)
    assert (standard.setting.group, standard.setting.hall_number) == (227, 525)
    assert standard.cell.n_atoms == 56
    assert np.array_equal(standard.cell.numbers[standard.input_to_standardized], cell.numbers)
    assert images_match(cell, standard)
    # Wyckoff orbits: one per species here, and equal encodings within each orbit.
    features = build_basis(hall=525, radius=4).encode(standard.cell.positions, real=True)
    for orbit in np.unique(standard.equivalent_atoms):
        members = features[standard.equivalent_atoms == orbit]
        assert np.abs(members - members[0]).max() < 1e-10


def test_ase_atoms_and_cells():
    atoms = bulk("Si", "diamond", a=5.43)
    standard = standardize(atoms)
    assert standard.setting.group == 227 and standard.cell.n_atoms == 8
    assert images_match(Cell.from_ase(atoms), standard)
    hexagonal = standardize(bulk("Mg", "hcp", a=3.21, c=5.21))
    assert hexagonal.setting.group == 194 and hexagonal.setting.metric == "hexagonal"


def test_bad_structures_are_named():
    disordered = spinel()
    disordered.replace_species({"Mg": {"Mg": 0.5, "Fe": 0.5}})
    with pytest.raises(StructureError, match="disordered"):
        standardize(disordered)
    with pytest.raises(StructureError, match="degenerate"):
        Cell(lattice=np.zeros((3, 3)), positions=[[0, 0, 0]], numbers=[1])
    with pytest.raises(StructureError, match="one integer atomic number per position"):
        Cell(lattice=np.eye(3), positions=[[0, 0, 0]], numbers=[1, 2])
    with pytest.raises(StructureError, match="symprec must be a positive number"):
        standardize(spinel(), symprec=-1)
    with pytest.raises(StructureError, match="cannot parse CIF 'junk.cif'"):
        Cell.from_cif("data_x\nloop_\n_atom_site_label\n", label="junk.cif")
    with pytest.raises(StructureError, match="from a builtins.list; pass a pymatgen Structure, an ASE Atoms"):
        standardize([[0, 0, 0]])


def test_every_reader_and_every_unreadable_input(tmp_path):
    from pymatgen.io.ase import AseAtomsAdaptor

    structure = spinel()
    atoms = AseAtomsAdaptor.get_atoms(structure)  # pymatgen's MSONAtoms, a subclass of ase.Atoms
    cif = tmp_path / "spinel.cif"
    structure.to(filename=str(cif))
    for source in (structure, atoms, cif, str(cif), Cell.from_pymatgen(structure)):
        assert standardize(source).setting.group == 227, type(source)
    (tmp_path / "binary.cif").write_bytes(b"\xff\xfe\x00\x01" * 10)
    for bad, message in [
        ({"lattice": [[1, 0, 0]]}, "cannot read a structure from a builtins.dict; pass a pymatgen Structure"),
        (3.5, "from a builtins.float"),
        (tmp_path / "missing.cif", "cannot read .*missing.cif"),
        (tmp_path, "cannot read"),
        (tmp_path / "binary.cif", "cannot read"),
    ]:
        with pytest.raises(StructureError, match=message):
            standardize(bad)


def test_atoms_far_out_on_one_site_or_too_close_are_named():
    far = Cell(5.64 * np.eye(3), [[0, 0, 0], [0.5 + 3, 0.5 - 7, 0.5 + 11]], [11, 17])
    assert standardize(far).setting.group == 221  # periodic images, reduced first
    with pytest.raises(StructureError, match="atom 1 is at fractional .* more than 1e\\+06 cells"):
        Cell(5.64 * np.eye(3), [[0, 0, 0], [1e16, 0.5, 0.5]], [11, 17])
    with pytest.raises(StructureError, match="atoms 0 and 2 are 0.0564 A apart, less than 0.5 A"):
        standardize(Cell(5.64 * np.eye(3), [[0, 0, 0.99], [0.5, 0.5, 0.5], [0, 0, 0]], [11, 17, 11]))
    # across the cell boundary, and in a skewed cell
    skewed = np.array([[5.0, 0, 0], [4.6, 1.0, 0], [0, 0, 5.0]])
    with pytest.raises(StructureError, match="one site given twice"):
        standardize(Cell(skewed, [[0.02, 0.0, 0.0], [0.9, 0.1, 0.0], [0.5, 0.5, 0.5]], [8, 8, 26]))


@pytest.mark.parametrize("canonical_handedness", [False, True])
def test_orbits_and_wyckoff_letters_equal_spglib_on_the_standardized_cell(real_crystals, canonical_handedness):
    """They come from the input's symmetry search; a second search on the standardized cell,
    the oracle here, must find the same ones."""
    import spglib

    for cell in real_crystals:
        standard = standardize(cell, canonical_handedness=canonical_handedness)
        oracle = spglib.get_symmetry_dataset(standard.cell.spglib_cell(), symprec=standard.symprec)
        assert np.array_equal(standard.equivalent_atoms, oracle.equivalent_atoms), cell.label
        assert standard.wyckoffs == tuple(oracle.wyckoffs), cell.label


def test_primitive_atoms_group_the_atoms_a_centring_translation_relates(real_crystals):
    """Each primitive atom stands for one standardized atom per centring translation of the
    setting, and those atoms are that atom moved by the translations (found here from the
    setting's operations, not from spglib)."""
    seen = set()
    for cell in real_crystals:
        standard = standardize(cell)
        setting = standard.setting
        pure = (setting.rotations == np.eye(3, dtype=np.int8)).all(axis=(1, 2))
        centrings = setting.fractional_translations[pure]  # (C, 3), the zero vector among them
        counts = np.bincount(standard.primitive_atoms)
        assert (counts == len(centrings)).all(), cell.label
        positions = standard.cell.positions
        for atoms in (np.flatnonzero(standard.primitive_atoms == p) for p in range(len(counts))):
            moved = positions[atoms[0]] + centrings  # (C, 3)
            delta = moved[:, None] - positions[atoms][None]  # each translation against each atom
            distance = np.linalg.norm((delta - np.rint(delta)) @ standard.cell.lattice, axis=-1)
            assert (distance.min(1) < 1e-6).all() and (distance.min(0) < 1e-6).all(), cell.label
        seen.add(len(centrings))
    assert seen == {1, 2, 3, 4}  # P, A/B/C/I, R (hexagonal axes) and F settings


@pytest.mark.parametrize("canonical_handedness", [False, True])
def test_the_position_jacobian_predicts_how_the_standardized_atoms_move(real_crystals, canonical_handedness):
    """Move every input atom by about 1e-6 A: where spglib makes the same choices (the same
    transformation, the same origin up to its motion along polar axes; its choice is free
    within the normalizer, which frames absorb), the standardized positions move by exactly
    the Jacobian times the motion plus that origin motion (the group average is affine in
    the input), for a real crystal of every group in the datasets; and a rigid translation
    of the input moves them by P t projected on the polar axes (elsewhere the origin is
    pinned to symmetry elements)."""
    rng = np.random.default_rng(0)
    compared = 0
    for cell in real_crystals:
        standard = standardize(cell, canonical_handedness=canonical_handedness)
        jacobian = standard.position_jacobian()
        assert jacobian.shape == (standard.cell.n_atoms, cell.n_atoms, 3, 3)
        polar_projection = standard.setting.rotations.astype(float).mean(axis=0)
        total = jacobian.sum(axis=1)  # (N_std, 3, 3)
        assert np.allclose(total, polar_projection @ standard.transformation_matrix, atol=1e-12), cell.label
        motion = rng.normal(size=cell.positions.shape) * 1e-6 / np.linalg.norm(cell.lattice, axis=1)
        moved = standardize(
            Cell(cell.lattice, cell.positions + motion, cell.numbers), canonical_handedness=canonical_handedness
        )
        shift = moved.origin_shift - standard.origin_shift
        shift -= np.rint(shift)
        if not (
            np.array_equal(moved.transformation_matrix, standard.transformation_matrix) and np.abs(shift).max() < 1e-5
        ):
            continue  # another, equally valid choice of spglib's
        change = moved.cell.positions - standard.cell.positions
        change -= np.rint(change)
        # spglib moves the origin along polar axes with the atoms: p enters as its projection
        predicted = np.einsum("aimn,in->am", jacobian, motion) + polar_projection @ shift
        # spglib may list the centring copies of an atom in another order
        pure = (standard.setting.rotations == np.eye(3, dtype=np.int8)).all(axis=(1, 2))
        error = (change - predicted)[:, None, :] - standard.setting.fractional_translations[pure]
        assert np.abs(error - np.rint(error)).max(axis=2).min(axis=1).max() < 1e-12, cell.label
        compared += 1
    assert compared > len(real_crystals) // 2  # 94 of 157 when written: spglib often picks another origin


def rock_salt():
    return cubic_structure(225, 5.64, ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def test_cif_text_is_text_and_a_path_is_a_path(tmp_path, monkeypatch):
    text = rock_salt().to(fmt="cif")  # starts with a comment line, then data_NaCl
    assert not text.startswith("data_")
    path = tmp_path / "salt.cif"
    path.write_text(text)
    for source in (text, text.split("\n", 1)[1], text.encode(), str(path), path):
        assert standardize(source).setting.group == 225, type(source)
    assert Cell.from_any(text).label == "NaCl"  # the data block names it
    assert Cell.from_any(str(path)).label == "salt"
    assert crystal_frames(text).n_frames == 2
    # A one-line string starting with data_ is a path when that file exists.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data_1.cif").write_text(text)
    assert Cell.from_any("data_1.cif").label == "data_1"
    for bad, message in [
        ("NaCl.cif", "cannot read NaCl.cif: no such file .*CIF text when it holds a line break"),
        ("x" * 5000, "cannot read x+: File name too long"),
        ("data_x\n", "cannot parse CIF 'x'"),
        (b"\xff\xfe", "not UTF-8"),
    ]:
        with pytest.raises(StructureError, match=message):
            standardize(bad)


def test_spglib_tuples():
    lattice, positions = 5.64 * np.eye(3), [[0, 0, 0], [0.5, 0.5, 0.5]]
    for numbers in ([11, 17], np.array([11, 17]), ["Na", "Cl"]):
        cell = Cell.from_any((lattice, positions, numbers))
        assert cell.numbers.tolist() == [11, 17]
        assert standardize((lattice, positions, numbers)).setting.group == 221
    assert standardize([lattice.tolist(), positions, [14, 14]]).setting.group == 229  # a list works too
    for bad, message in [
        ((lattice, positions, [11, 17], [0.0, 0.0]), "magnetic moments are not used, leave them out"),
        ((lattice, positions, [11]), "one integer atomic number per position"),
        ((lattice, positions, [0, 1]), "atomic numbers must lie in 1-118"),
        ((lattice, positions, "NaCl"), "numbers must be a list of atomic numbers"),
        ((lattice, positions, ["Na", "Xx"]), "'Xx' is not an element"),
        ((lattice, positions), "from a builtins.tuple; pass .* a spglib \\(lattice, positions, numbers\\) tuple"),
    ]:
        with pytest.raises(StructureError, match=message):
            standardize(bad)


@pytest.mark.parametrize("source", ["spinel", "hcp"])
def test_cells_convert_back_to_pymatgen_and_ase(source):
    cell = Cell.from_pymatgen(spinel()) if source == "spinel" else Cell.from_ase(bulk("Mg", "hcp", a=3.21, c=5.21))
    structure, atoms = cell.to_pymatgen(), cell.to_ase()
    assert isinstance(structure, Structure) and all(atoms.pbc)
    for back in (Cell.from_pymatgen(structure), Cell.from_ase(atoms), Cell.from_any(structure), Cell.from_any(atoms)):
        assert np.abs(back.lattice - cell.lattice).max() < 1e-12
        assert np.abs(back.positions - cell.positions).max() < 1e-12
        assert np.array_equal(back.numbers, cell.numbers)
    assert standardize(atoms).setting.hall_number == standardize(cell).setting.hall_number


def test_converting_without_the_library_names_it(monkeypatch):
    cell = Cell(4.05 * np.eye(3), [[0, 0, 0]], [13])
    monkeypatch.setitem(sys.modules, "pymatgen.core", None)
    monkeypatch.setitem(sys.modules, "ase", None)
    with pytest.raises(ImportError, match="Cell.to_pymatgen needs pymatgen: pip install pymatgen"):
        cell.to_pymatgen()
    with pytest.raises(ImportError, match="Cell.to_ase needs ASE: pip install ase"):
        cell.to_ase()


def test_any_structure_file_is_read_as_its_format_says(tmp_path):
    """POSCAR and extended XYZ (by pymatgen or ASE) give the crystal the CIF of it gives; a
    CIF without the suffix is still CIF; a file no reader takes names itself and each reader."""
    import ase.io
    from pymatgen.core import Lattice, Structure
    from pymatgen.io.ase import AseAtomsAdaptor

    from basisdb import Cell

    rocksalt = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    rocksalt.to(filename=str(tmp_path / "POSCAR"))
    rocksalt.to(filename=str(tmp_path / "NaCl.cif"))
    (tmp_path / "NaCl.txt").write_text((tmp_path / "NaCl.cif").read_text())
    ase.io.write(tmp_path / "NaCl.extxyz", AseAtomsAdaptor.get_atoms(rocksalt))
    reference = standardize(tmp_path / "NaCl.cif")
    for name in ("POSCAR", "NaCl.extxyz", "NaCl.txt"):
        standard = standardize(str(tmp_path / name))
        assert standard.setting.hall_number == reference.setting.hall_number == 523, name
        assert np.allclose(standard.cell.lattice, reference.cell.lattice, atol=1e-6), name
        assert sorted(standard.cell.numbers) == sorted(reference.cell.numbers), name
    assert Cell.from_any(tmp_path / "POSCAR").label == "POSCAR"
    (tmp_path / "notes.txt").write_text("not a crystal\nat all\n")
    with pytest.raises(StructureError, match=r"neither pymatgen nor ASE reads notes.txt \(pymatgen: .*; ASE: "):
        standardize(str(tmp_path / "notes.txt"))
    with pytest.raises(StructureError, match="it is a folder"):
        Cell.from_any(tmp_path)
