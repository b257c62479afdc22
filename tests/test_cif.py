"""The one CIF reader (basisdb.cif, on gemmi): the same crystal as pymatgen reads, on real
structures written with their symmetry operations; every space group's operations, by
number and by Hall symbol; special positions; and a clear error for each way a CIF can be
wrong, before any expansion when it is too large."""

from __future__ import annotations

import warnings
from fractions import Fraction

import gemmi
import numpy as np
import pytest
import spglib

from basisdb import Cell, CifSymmetryWarning, StructureError, StructureTooLargeError, default_hall_number
from basisdb.cif import SITE_TOLERANCE, parse_operation, read_cif

from .helpers import REAL, real, same_cell

CELL = (
    "_cell_length_a {a} _cell_length_b {b} _cell_length_c {c} "
    "_cell_angle_alpha {alpha} _cell_angle_beta {beta} _cell_angle_gamma {gamma}"
)
SITES = "loop_ _atom_site_label _atom_site_type_symbol _atom_site_fract_x _atom_site_fract_y _atom_site_fract_z"


def cif(*sites: str, group: str = "", occupancy: str = "", **cell) -> str:
    """A one-line CIF (CIF separates by any whitespace) with ``sites`` as 'label symbol x y z'
    and ``cell`` overriding an orthorhombic 4.1 x 5.2 x 6.3 A cell (a, b, c, alpha, ...)."""
    loop = SITES + (" _atom_site_occupancy" if occupancy else "")
    rows = " ".join(f"{site} {occupancy}" for site in sites)
    cell = {"a": 4.1, "b": 5.2, "c": 6.3, "alpha": 90, "beta": 90, "gamma": 90, **cell}
    return f"data_test {CELL.format(**cell)} {group} {loop} {rows}"


def metric(number: int) -> dict[str, float]:
    """A cell of the crystal system of space group ``number`` (default setting), with no
    more symmetry than that system's."""
    for last, cell in [
        (2, {"alpha": 81, "beta": 97, "gamma": 104}),
        (15, {"beta": 101}),
        (74, {}),
        (142, {"b": 4.1}),
        (194, {"b": 4.1, "gamma": 120}),  # the rhombohedral groups on hexagonal axes, as spglib's default
        (230, {"b": 4.1, "c": 4.1}),
    ]:
        if number <= last:
            return cell
    raise ValueError(number)


def test_the_same_crystal_as_pymatgen_reads_on_real_structures(parsed_dataset):
    """Real Materials Project structures of many groups, written by pymatgen's CifWriter as
    the asymmetric unit with the symmetry operations (special positions, shifted origins
    with translations such as 2/885) and in P1.  Positions agree to 2e-4: pymatgen rounds a
    coordinate within 1e-4 (relative) of 1/3 or 2/3 to it, and this reader keeps what is written."""
    from pymatgen.io.cif import CifParser, CifWriter

    structures = [real(name) for name in REAL]
    for dataset, target in [("elastic_tensor", "log10_K_VRH"), ("dielectric_constant", "band_gap")]:
        structures += parsed_dataset(dataset, target).structures[::12]
    groups, differ = set(), []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("ignore")  # pymatgen's notes on rounding
        warnings.simplefilter("always", CifSymmetryWarning)  # each names the group its operations form
        for structure in structures:
            for symprec in (0.01, None):
                text = str(CifWriter(structure, symprec=symprec))
                reference = CifParser.from_str(text).parse_structures(primitive=False)[0]
                cell = Cell.from_cif(text)
                if not same_cell(cell, Cell.from_pymatgen(reference), tolerance=2e-4):
                    differ.append(f"{structure.composition.reduced_formula} (symprec {symprec})")
            groups.add(spglib.get_symmetry_dataset(cell.spglib_cell(), symprec=0.01).number)
    assert not differ, differ
    assert len(structures) > 150 and len(groups) > 40, (len(structures), len(groups))
    assert not [str(warning.message) for warning in caught if warning.category is CifSymmetryWarning]


@pytest.mark.parametrize("named_by", ["_space_group_IT_number", "_space_group_name_Hall"])
def test_every_space_group_expands_a_general_position(named_by):
    """For each of the 230 groups in its default setting, a CIF that names the group (no
    operations listed) and three atoms on general positions reads as three atoms per
    operation of the conventional cell, and spglib finds that group again."""
    rng = np.random.default_rng(7)
    wrong = []
    for number in range(1, 231):
        hall = default_hall_number(number)
        kind = spglib.get_spacegroup_type(hall)
        operations = spglib.get_symmetry_from_database(hall)["rotations"]
        name = kind.hall_symbol if "Hall" in named_by else str(number)
        sites = [f"{e}1 {e} " + " ".join(f"{v:.6f}" for v in rng.uniform(0, 1, 3)) for e in ("C", "N", "O")]
        group = f"{named_by} '{name}'" if "Hall" in named_by else f"{named_by} {name}"
        cell = Cell.from_cif(cif(*sites, group=group, **metric(number)))
        found = spglib.get_symmetry_dataset(cell.spglib_cell(), symprec=1e-3)
        if cell.n_atoms != 3 * len(operations) or found.number != number:
            wrong.append((number, cell.n_atoms, len(operations), found.number))
    assert not wrong, wrong


def test_listed_operations_of_the_named_group_give_no_warning_in_every_group():
    """Each group's operations (gemmi's table, written as x,y,z) under its Hermann-Mauguin
    symbol: the same type, so nothing to warn of."""
    general = " ".join(f"{v:.6f}" for v in np.random.default_rng(11).uniform(0, 1, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error", CifSymmetryWarning)
        for number in range(1, 231):
            group = gemmi.find_spacegroup_by_number(number)
            listed = " ".join(f"'{op.triplet()}'" for op in group.operations())
            named = f"_space_group_name_H-M_alt '{group.hm}' loop_ _space_group_symop_operation_xyz {listed}"
            cell = Cell.from_cif(cif(f"C1 C {general}", group=named, **metric(number)))
            assert cell.n_atoms == len(group.operations())


@pytest.mark.parametrize(
    "named, listed, message",
    [
        (
            "_symmetry_space_group_name_H-M 'F m -3 m'",
            "x,y,z",
            r"'F m -3 m' \(.*No. 225, Fm-3m\) but lists 1 .*No. 1, P1",
        ),
        ("_space_group_name_Hall '-P 2ybc'", "x,y,z -x,-y,-z", r"No. 14, P2_1/c\) but lists 2 .*No. 2, P-1"),
        ("_space_group_IT_number 2", "x,y,z -x,y,z+1/3", "lists 2 symmetry operations, which form no space group"),
    ],
)
def test_a_named_group_its_operations_do_not_form_is_a_warning_naming_both(named, listed, message):
    text = cif("C1 C 0.1 0.2 0.3", group=f"{named} loop_ _space_group_symop_operation_xyz {listed}")
    with pytest.warns(CifSymmetryWarning, match=message):
        cell = Cell.from_cif(text, label="x")
    assert cell.n_atoms == len(listed.split())  # the listed operations are the ones used


def test_a_group_named_by_number_with_operations_of_another_setting_gives_no_warning():
    p21n = " ".join(f"'{op.triplet()}'" for op in gemmi.SpaceGroup("P 1 21/n 1").operations())
    text = cif("C1 C 0.1 0.2 0.3", group=f"_symmetry_Int_Tables_number 14 loop_ _symmetry_equiv_pos_as_xyz {p21n}")
    with warnings.catch_warnings():
        warnings.simplefilter("error", CifSymmetryWarning)
        assert Cell.from_cif(text, **{}).n_atoms == 4


def test_coordinates_far_out_are_refused_as_in_any_structure():
    with pytest.raises(StructureError, match=r"site 'C1' \(C\) is more than 1e\+06 cells from the origin"):
        Cell.from_cif(cif("C1 C 1e308 0 0"), label="x")
    assert Cell.from_cif(cif("C1 C 999999.5 0 0")).positions[0, 0] == pytest.approx(0.5)


def test_special_positions_are_one_atom_each():
    rock_salt = cif("Na1 Na 0 0 0", "Cl1 Cl 0.5 0.5 0.5", group="_space_group_IT_number 225")
    spinel = cif("Mg1 Mg 0 0 0", "O1 O 0.3874 0.3874 0.3874", group="_space_group_IT_number 227")  # origin choice 1
    assert Cell.from_cif(rock_salt).n_atoms == 8
    assert np.bincount(Cell.from_cif(spinel).numbers).tolist()[8:13:4] == [32, 8]  # O on 32e, Mg on 8a
    # an atom and its image under inversion: one atom when closer than the tolerance, else two
    for x, atoms in [(0.5 - SITE_TOLERANCE / 4, 1), (0.5 - SITE_TOLERANCE, 2)]:
        assert Cell.from_cif(cif(f"C1 C {x} 0 0", group="_space_group_name_Hall '-P 1'")).n_atoms == atoms


def test_parse_operation_reads_every_setting_and_any_rational_shift():
    """Every operation of gemmi's 564 settings, as gemmi writes it, reads back exactly;
    translations gemmi cannot hold (2/885, decimals) are read exactly too."""
    mismatches = []
    for group in gemmi.spacegroup_table():
        for op in group.operations():
            rotation, translation = parse_operation(op.triplet())
            expected = [Fraction(t, gemmi.Op.DEN) for t in op.tran]
            if not np.array_equal(rotation * gemmi.Op.DEN, op.rot) or list(translation) != expected:
                mismatches.append((group.hm, op.triplet()))
    assert not mismatches, mismatches[:5]
    rotation, translation = parse_operation("-Z+2/885, X-Y , 0.25+y")
    assert rotation.tolist() == [[0, 0, -1], [1, -1, 0], [0, 1, 0]]
    assert translation == (Fraction(2, 885), 0, Fraction(1, 4))


@pytest.mark.parametrize(
    "text, message",
    [
        ("not a cif", "cannot parse CIF 'x': .*expected block header"),
        ("data_x _cell_length_a 4", "no data block lists atom sites"),
        (
            "data_x loop_ _atom_site_label _atom_site_Cartn_x _atom_site_Cartn_y _atom_site_Cartn_z C1 0 0 0",
            "Cartesian only",
        ),
        (cif("C1 C 0 0 0").replace("_cell_length_b 5.2", ""), "_cell_length_b is missing"),
        (cif("C1 C 0 0 0", alpha=120, beta=120, gamma=120), "has no volume"),
        (cif("C1 C 0 0 0", alpha=150, beta=150, gamma=150), "has no volume"),
        (
            cif("Fe1 Fe 0 0 0", occupancy="0.5"),
            r"'x' is disordered \(site Fe1 at \[0.0, 0.0, 0.0\] has occupancy 0.5\)",
        ),
        (cif("Q1 Qq 0 0 0"), r"site 'Q1' \(Qq\) is not an element"),
        (cif("C1 C ? 0 0"), "site 'C1' .* has no coordinates"),
        (
            cif("C1 C 0 0 0", group="_space_group_name_H-M_alt 'P 42/q'"),
            "names space group 'P 42/q'.*list the symmetry",
        ),
        (cif("C1 C 0 0 0", group="loop_ _space_group_symop_operation_xyz x,y,z 2x,y,z"), "determinant 2"),
        (cif("C1 C 0 0 0", group="loop_ _space_group_symop_operation_xyz x,y,z x+1/0,y,z"), "the number '1/0'"),
        (cif("C1 C 0 0 0", "C2 C 0.00001 0 0"), "sites 'C1' and 'C2' fall on the same position"),
        (cif("C1 C 0 0 0", group="_space_group_IT_number '14'"), "cannot parse CIF 'x': not an integer"),
    ],
)
def test_each_way_a_cif_is_wrong_has_its_own_message(text, message):
    with pytest.raises(StructureError, match=message):
        Cell.from_cif(text, label="x")


def test_a_cif_too_large_is_refused_before_it_is_expanded():
    sites = [f"C{i} C {i / 1000:.4f} 0.1 0.2" for i in range(1, 60)]
    text = cif(*sites, group="_space_group_IT_number 225")
    with pytest.raises(StructureTooLargeError, match="59 atom sites and 192 symmetry operations.*11328 atoms"):
        read_cif(text, label="big", max_atoms=2000)
    # operations are counted before they are parsed: a million of them cost no parsing
    flood = cif("C1 C 0 0 0", group="loop_ _space_group_symop_operation_xyz " + "x,y,z " * 1_000_000)
    with pytest.raises(StructureTooLargeError, match="1 atom sites and 1000000 symmetry operations"):
        read_cif(flood, max_atoms=2000)
    # P1 when the CIF names no group and lists no operations: the bound is the sites themselves
    assert read_cif(cif(*sites), max_atoms=59).positions.shape == (59, 3)
