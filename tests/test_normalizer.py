"""The Euclidean normalizer, exactly, for all 230 groups and every Hall setting's lattice."""

import itertools
import warnings

import numpy as np
import pytest
import spglib

from basisdb import enantiomorphic_partner, euclidean_normalizer, get_setting
from basisdb.normalizer import polar_axes, primitive_basis
from basisdb.settings import N_HALL_NUMBERS
from basisdb.settings import TRANSLATION_DENOMINATOR as D

from .helpers import ALL_GROUPS, every_group, generic_lattice, lattice_from_parameters


def operation_keys(setting):
    """The group modulo the lattice as a set of exact (rotation, translation) keys."""
    return {(r.astype(np.int64).tobytes(), tuple(t)) for r, t in zip(setting.rotations, setting.translations % D)}


def conjugates_into(setting, w_linear, denominator, w):
    """Whether (W, w) maps every operation of the group into the group, checked on all
    operations in exact integer arithmetic (W = w_linear / denominator, w in 24ths)."""
    keys = operation_keys(setting)
    inverse = np.rint(np.linalg.inv(w_linear / denominator) * denominator).astype(np.int64)
    assert np.array_equal(w_linear @ inverse, denominator**2 * np.eye(3, dtype=np.int64))
    for r, t in zip(setting.rotations.astype(np.int64), setting.translations):
        conjugate = w_linear @ r @ inverse
        if (conjugate % denominator**2).any() or (w_linear @ t % denominator).any():
            return False
        conjugate //= denominator**2
        moved = (w_linear @ t // denominator + (np.eye(3, dtype=np.int64) - conjugate) @ w) % D
        if (conjugate.tobytes(), tuple(moved)) not in keys:
            return False
    return True


@pytest.mark.parametrize("hall", range(1, N_HALL_NUMBERS + 1, 1))
def test_primitive_basis_spans_the_centred_lattice(hall):
    setting = get_setting(hall=hall)
    basis = primitive_basis(hall)
    pure = (setting.rotations == np.eye(3, dtype=np.int8)).all(axis=(1, 2))
    centring = setting.translations[pure]
    assert round(np.linalg.det(basis)) * len(centring) == D**3
    # every centring vector is an integer combination of the rows
    coefficients = centring @ np.linalg.inv(basis)
    assert np.allclose(coefficients, np.rint(coefficients), atol=1e-9)


@pytest.mark.parametrize("group", every_group())
def test_normalizer_cosets_are_exact_distinct_isometries(group):
    setting = get_setting(group)
    lattice = generic_lattice(setting)
    metric = lattice @ lattice.T
    for proper in (True, False):
        cosets = euclidean_normalizer(setting, lattice, symprec=1e-3, proper=proper)
        assert np.array_equal(cosets.linear[0], cosets.denominator * np.eye(3, dtype=np.int64))
        assert not cosets.translations[0].any()
        assert not cosets.translations[:, cosets.polar].any()
        keys = operation_keys(setting)
        for w_linear, w in zip(cosets.linear, cosets.translations):
            W = w_linear / cosets.denominator
            assert np.allclose(np.linalg.inv(W).T @ metric @ np.linalg.inv(W), metric, atol=1e-9)  # an isometry
            assert not proper or np.linalg.det(W) > 0
            assert conjugates_into(setting, w_linear, cosets.denominator, w)
        # distinct cosets: n1 n2^-1 is never in G (checked for integral W, all of these here)
        assert cosets.denominator == 1
        for (w1, t1), (w2, t2) in itertools.combinations(zip(cosets.linear, cosets.translations), 2):
            inverse = np.rint(np.linalg.inv(w2)).astype(np.int64)
            product = w1 @ inverse
            shift = (t1 - product @ t2) % D
            same_class = any(
                (product.tobytes(), tuple((shift + c) % D)) in keys
                for c in setting.translations[(setting.rotations == np.eye(3, dtype=np.int8)).all(axis=(1, 2))]
            )
            assert not same_class, (group, w1.tolist(), t1, w2.tolist(), t2)


def test_proper_and_e3_cosets_by_kind_of_group():
    """An improper operation in G makes every improper coset also a proper one; a Sohncke
    group that is not enantiomorphic doubles in E(3); an enantiomorphic one cannot."""
    for group in ALL_GROUPS:
        setting = get_setting(group)
        lattice = generic_lattice(setting)
        proper = euclidean_normalizer(setting, lattice, symprec=1e-3, proper=True).index
        e3 = euclidean_normalizer(setting, lattice, symprec=1e-3, proper=False).index
        sohncke = (np.linalg.det(setting.rotations.astype(float)) > 0).all()
        if not sohncke:
            assert e3 == proper, group
        elif enantiomorphic_partner(group) != group:
            assert e3 == proper, group
        else:
            assert e3 == 2 * proper, group


@pytest.mark.parametrize(
    "group, proper, e3",
    [  # ITA Vol. A, 3.5: Euclidean normalizers for a lattice without extra metric symmetry
        (1, 1, 2),  # P-1 with continuous translations: {1, -1}
        (2, 8, 8),  # P-1 (1/2 a, 1/2 b, 1/2 c)
        (4, 4, 8),  # P2/m with continuous y: translations 1/2 in x and z
        (14, 8, 8),
        (19, 8, 16),  # P2_12_12_1 -> Pmmm (1/2 a, 1/2 b, 1/2 c)
        (76, 4, 4),  # P4_1: 2-fold axes perpendicular to c, (1/2, 1/2, 0), continuous z
        (164, 4, 4),  # P-3m1 -> P6/mmm (c/2)
        (166, 2, 2),  # R-3m (c/2)
        (186, 2, 2),  # P6_3mc -> P6/mmm, continuous z
        (194, 2, 2),  # P6_3/mmc -> P6/mmm (c/2)
        (198, 4, 8),  # P2_13 -> I4_132 / Ia-3d
        (204, 2, 2),  # Im-3 -> Im-3m
        (225, 2, 2),  # Fm-3m -> Im-3m (a/2): Na or Cl at the origin
        (227, 2, 2),
        (229, 1, 1),  # Im-3m is its own normalizer
    ],
)
def test_normalizer_indices_match_the_tables(group, proper, e3):
    setting = get_setting(group)
    lattice = generic_lattice(setting)
    assert euclidean_normalizer(setting, lattice, symprec=1e-3, proper=True).index == proper
    assert euclidean_normalizer(setting, lattice, symprec=1e-3, proper=False).index == e3


def test_a_special_metric_adds_its_elements():
    """Pmmm with a = b: x <-> y is an isometry of this lattice and maps Pmmm onto itself."""
    setting = get_setting(47)
    generic = euclidean_normalizer(setting, lattice_from_parameters(4.1, 5.3, 6.2, 90, 90, 90), symprec=1e-3)
    square = euclidean_normalizer(setting, lattice_from_parameters(4.1, 4.1, 6.2, 90, 90, 90), symprec=1e-3)
    assert (generic.index, square.index) == (8, 16)
    swap = np.array([[0, 1, 0], [1, 0, 0], [0, 0, 1]])
    assert any(np.array_equal(np.abs(w), swap) for w in square.linear)


@pytest.mark.parametrize(
    "group", [pytest.param(225, marks=pytest.mark.slow), pytest.param(227, marks=pytest.mark.slow), 62, 166]
)
def test_normalizer_translations_against_spglib(group):
    """Independent oracle: a generic crystal of the group, shifted by w, has exactly the
    group's operations again (spglib) if and only if w is a normalizer translation."""
    setting = get_setting(group)
    lattice = generic_lattice(setting)
    x = np.random.default_rng(group).random(3)
    points = (np.einsum("oij,j->oi", setting.rotations.astype(float), x) + setting.fractional_translations) % 1
    expected = operation_keys(setting)
    cosets = euclidean_normalizer(setting, lattice, symprec=1e-3)
    ours = {
        tuple(w) for w, m in zip(cosets.translations, cosets.linear) if np.array_equal(m, np.eye(3, dtype=np.int64))
    }
    centring = setting.translations[(setting.rotations == np.eye(3, dtype=np.int8)).all(axis=(1, 2))]
    found = set()
    for w in itertools.product(range(0, D, 3), repeat=3):  # the 1/8 grid
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            symmetry = spglib.get_symmetry((lattice, (points + np.array(w) / D) % 1, [1] * len(points)), symprec=1e-5)
        keys = {
            (r.astype(np.int64).tobytes(), tuple(np.rint(t % 1 * D).astype(int) % D))
            for r, t in zip(symmetry["rotations"], symmetry["translations"])
        }
        if keys == expected:
            found.add(min(tuple((np.array(w) + c) % D) for c in centring))
    assert found == {min(tuple((np.array(w) + c) % D) for c in centring) for w in ours}


def test_enantiomorphic_pairs():
    pairs = {g: enantiomorphic_partner(g) for g in ALL_GROUPS}
    moved = {g: p for g, p in pairs.items() if p != g}
    assert sorted(min(g, p) for g, p in moved.items() if g < p) == [76, 91, 92, 144, 151, 152, 169, 171, 178, 180, 212]
    assert all(pairs[p] == g for g, p in pairs.items())  # an involution


def test_polar_axes():
    assert polar_axes(get_setting(1)).all()
    assert polar_axes(get_setting(4)).tolist() == [False, True, False]  # P2_1, unique axis b
    assert polar_axes(get_setting(6)).tolist() == [True, False, True]  # Pm: the mirror plane
    assert polar_axes(get_setting(186)).tolist() == [False, False, True]
    assert not polar_axes(get_setting(225)).any()
