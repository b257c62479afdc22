"""Same crystal, same answer: the frames of a crystal do not depend on how it is described.

Compared is a *signature* of the frames that a model averaged over them would see: per frame,
a fixed nonlinear map of every atom's real basis features, summarized per atom (input order)
and per frame, then averaged over the frames.  Equal signatures mean equal multisets of
frames up to noise far below a model's sensitivity; a missing or extra coset shows at once.
"""

import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from basisdb import (
    Cell,
    StructureError,
    build_basis,
    crystal_frames,
    enantiomorphic_partner,
    frames_of,
    get_setting,
    standardize,
)
from basisdb.frames import MAX_ANCHORS
from basisdb.redescriptions import (
    REDESCRIPTIONS,
    cell_change,
    mirrored,
    noisy,
    permuted,
    random_crystal,
    random_unimodular,
    reverse_rhombohedral,
)

from .helpers import every_group, generic_lattice

RADIUS = 3
_BASES: dict[int, object] = {}
_MIX = np.random.default_rng(7).normal(size=(200, 6))


def signature(cell, invariance="e3", symprec=1e-2):
    """(group, per-input-atom (N, 6), per-crystal (6,)) from the frames of ``cell``, weighted
    averages over the frames."""
    frames = crystal_frames(cell, symprec=symprec, invariance=invariance)
    hall = frames.setting.hall_number
    basis = _BASES.setdefault(hall, build_basis(hall=hall, radius=RADIUS))
    features = frames.encode(basis, real=True, average=False)  # (F, M, n)
    hidden = np.tanh(features @ _MIX[: basis.n_basis])  # a fixed nonlinear map per atom
    per_atom = np.tensordot(frames.weights, hidden, axes=1)[frames.standardization.input_to_standardized]
    per_crystal = frames.weights @ np.tanh(2 * hidden.mean(axis=1))
    return frames.setting.group, per_atom, per_crystal


_REFERENCES: dict[tuple[int, str], tuple] = {}


def reference_signature(cell, invariance="e3"):
    """``signature(cell, invariance)``, computed once per cell object: the sweeps over the real
    crystals compare every re-description with the same crystal as given."""
    key = (id(cell), invariance)
    if key not in _REFERENCES:
        _REFERENCES[key] = (cell, signature(cell, invariance))  # the cell kept: its id stays its own
    kept, result = _REFERENCES[key]
    assert kept is cell
    return result


def assert_same(cell, other, source, invariance="e3", tolerance=1e-8):
    group, atoms, crystal = reference_signature(cell, invariance)
    group_other, atoms_other, crystal_other = signature(other, invariance)
    assert group_other == group, (cell.label, group, group_other)
    assert np.abs(crystal_other - crystal).max() < tolerance, cell.label
    assert np.abs(atoms_other - atoms[source]).max() < tolerance, cell.label


@pytest.mark.parametrize("name", sorted(REDESCRIPTIONS))
def test_real_crystals_of_every_group_present(real_crystals, name):
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    assert len(real_crystals) > 150  # space groups covered by the built-in datasets
    for cell in real_crystals:
        other, source = REDESCRIPTIONS[name](cell, rng)
        assert_same(cell, other, source)
        if name.startswith("relabelled") or name.startswith("supercell"):
            assert_same(cell, other, source, invariance="proper")


def test_mirror_images_agree_in_e3_and_enantiomorphs_differ_in_proper(real_crystals):
    chiral_differ = 0
    for cell in real_crystals:
        image, source = mirrored(cell)
        assert_same(cell, image, source)
        group, _, proper = reference_signature(cell, "proper")
        group_image, _, proper_image = signature(image, "proper")
        if group != group_image:  # an enantiomorphic pair: P3_121 <-> P3_221, ...
            chiral_differ += 1
        elif (np.linalg.det(get_setting(group).rotations.astype(float)) < 0).any():
            assert np.abs(proper - proper_image).max() < 1e-8  # achiral: the same crystal either way
    assert chiral_differ >= 3  # quartz-like crystals are in the data


def test_primitive_and_conventional_cells(real_crystals):
    """pymatgen's primitive cell at a tight tolerance is an exact re-description (at its
    default 0.25 A it merges pseudo-translations, which is another crystal).  Its standard
    primitive and conventional cells are refined by spglib (positions idealized within
    symprec), so they are a slightly different crystal: they agree as far as the input was
    symmetric.  Exact conventional cells of centred lattices are supercells, tested above."""
    from pymatgen.core import Structure
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    worst_refined = 0.0
    for cell in real_crystals[::2]:
        group, _, crystal = reference_signature(cell)
        structure = Structure(cell.lattice, cell.numbers, cell.positions)
        group_primitive, _, primitive = signature(Cell.from_pymatgen(structure.get_primitive_structure(tolerance=1e-4)))
        assert group_primitive == group and np.abs(crystal - primitive).max() < 1e-8, cell.label
        analyzer = SpacegroupAnalyzer(structure, symprec=1e-2)
        for refined in (analyzer.get_primitive_standard_structure(), analyzer.get_conventional_standard_structure()):
            group_refined, _, crystal_refined = signature(Cell.from_pymatgen(refined))
            assert group_refined == group, cell.label
            worst_refined = max(worst_refined, np.abs(crystal - crystal_refined).max())
    assert worst_refined < 1e-3


def test_rhombohedral_crystals_in_the_reverse_setting(real_crystals):
    rhombohedral = [c for c in real_crystals if standardize(c).setting.international.startswith("R")]
    assert len(rhombohedral) >= 5
    for cell in rhombohedral:
        obverse = standardize(cell).cell
        reverse, source = reverse_rhombohedral(obverse)
        assert_same(obverse, reverse, source)


def test_noise_within_the_tolerance_keeps_the_group_and_barely_moves_the_frames(real_crystals):
    rng = np.random.default_rng(3)
    worst = 0.0
    for cell in real_crystals:
        shaken, source = noisy(cell, rng, angstrom=1e-3)  # a tenth of the default symprec
        group, atoms, crystal = reference_signature(cell)
        group_shaken, atoms_shaken, crystal_shaken = signature(shaken)
        assert group_shaken == group, cell.label
        worst = max(worst, np.abs(crystal_shaken - crystal).max(), np.abs(atoms_shaken - atoms[source]).max())
    # The group average leaves only the noise along free Wyckoff parameters: about the
    # features' own sensitivity (2 pi k / a per Angstrom) times the noise, a few 1e-3 here.
    assert worst < 2e-2


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_random_proper_cell_changes_shifts_and_orders(real_crystals, data):
    cell = real_crystals[data.draw(st.integers(0, len(real_crystals) - 1), label="crystal")]
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    rng = np.random.default_rng(seed)
    matrix = random_unimodular(rng, bound=data.draw(st.integers(1, 3), label="bound"))
    shift = rng.random(3)
    changed, source = cell_change(cell, matrix, shift)
    order = rng.permutation(changed.n_atoms)
    changed, _ = permuted(changed, order)
    assert_same(cell, changed, source[order])


def synthetic_crystal(group, rng):
    """Two general-position orbits of two species in the default setting of ``group`` (one
    orbit alone can have more symmetry: a single atom in P1 is centrosymmetric), no two
    atoms closer than 0.8 A."""
    setting = get_setting(group)
    lattice = generic_lattice(setting)
    lattice *= np.cbrt(2 * setting.n_operations * 15.0 / abs(np.linalg.det(lattice)))  # 15 A^3 per atom
    while True:
        points = rng.random((2, 3))
        orbits = np.einsum("oij,pj->poi", setting.rotations.astype(float), points) + setting.fractional_translations
        positions = orbits.reshape(-1, 3) % 1
        delta = positions[:, None] - positions[None]
        delta -= np.rint(delta)
        distance = np.linalg.norm(delta @ lattice, axis=-1) + np.eye(len(positions)) * 1e9
        if distance.min() > 0.8:
            numbers = np.repeat([8, 26], setting.n_operations)
            return Cell(lattice, positions, numbers, f"synthetic {setting.international}")


@pytest.mark.parametrize("group", every_group())
def test_every_group(group):
    rng = np.random.default_rng(group)
    cell = synthetic_crystal(group, rng)
    assert standardize(cell).setting.group == group
    assert signature(cell)[0] == min(group, enantiomorphic_partner(group))  # e3: P4_3 is read as P4_1
    assert signature(cell, "proper")[0] == group
    for _ in range(2):
        changed, source = cell_change(cell, random_unimodular(rng), rng.random(3))
        assert_same(cell, changed, source)
    image, source = mirrored(cell)
    assert_same(cell, image, source)


def test_polar_origin_is_anchored_or_phased():
    rng = np.random.default_rng(0)
    # 200 atoms of one species in P1: phased, so 2 frames (identity and inversion), not 400
    big = random_crystal(200, rng)
    frames = crystal_frames(big)
    assert (frames.setting.group, frames.origin, frames.n_frames) == (1, "phased", 2)
    assert frames.origin_strength > 0.3  # as well-defined as for random positions
    assert crystal_frames(big, invariance="proper").n_frames == 1
    changed, source = cell_change(big, random_unimodular(rng), rng.random(3))
    assert_same(big, changed, source)
    # wurtzite ZnO (P6_3mc): 2 Zn, so anchored on each of them, times the 2 cosets
    zno = Cell(
        [[3.25, 0, 0], [-1.625, 2.8146, 0], [0, 0, 5.21]],
        [[1 / 3, 2 / 3, 0], [2 / 3, 1 / 3, 0.5], [1 / 3, 2 / 3, 0.382], [2 / 3, 1 / 3, 0.882]],
        [30, 30, 8, 8],
        "ZnO",
    )
    frames = crystal_frames(zno)
    assert frames.setting.group == 186 and frames.origin == "anchored" and frames.n_frames == 2 * 2
    assert MAX_ANCHORS >= 2
    for matrix in ([[1, 0, 0], [0, -1, 0], [0, 0, -1]], np.diag([2, 1, 1])):
        assert_same(zno, *cell_change(zno, matrix))


def test_frames_of_checks_its_input():
    quartz_like = synthetic_crystal(154, np.random.default_rng(1))  # P3_221
    standard = standardize(quartz_like)
    assert standard.setting.group == 154 and not standard.inverted
    with pytest.raises(StructureError, match="enantiomorphic pair"):
        frames_of(standard, invariance="e3")
    assert frames_of(standard, invariance="proper").n_frames >= 1
    canonical = standardize(quartz_like, canonical_handedness=True)
    assert canonical.setting.group == 152 and canonical.inverted and np.linalg.det(canonical.transformation_matrix) < 0
    with pytest.raises(StructureError, match="invariance must be one of"):
        crystal_frames(quartz_like, invariance="mirror")
    basis = build_basis(group=1, radius=2)
    with pytest.raises(StructureError, match="Hall setting"):
        crystal_frames(quartz_like).encode(basis)
