"""The mathematics, checked for every space group with independent, naive methods."""

from fractions import Fraction

import numpy as np
import pytest
import spglib

from basisdb import InvalidRadiusError, build_basis, get_setting
from basisdb.frequencies import frequency_set, quadratic_form
from basisdb.settings import N_HALL_NUMBERS, TRANSLATION_DENOMINATOR

from .helpers import ALL_GROUPS, every_group, moved_points, naive_features

TOL = 1e-10
RNG = np.random.default_rng(0)


@pytest.mark.parametrize("group", every_group())
def test_invariant_orthonormal_complete_real(group):
    basis = build_basis(group=group, radius=4)
    setting = basis.setting
    points = RNG.random((3, 3))

    # Invariance of every function under every operation (float64, naive evaluation).
    reference = naive_features(basis.routing, basis.frequencies, points)
    images = naive_features(basis.routing, basis.frequencies, moved_points(setting, points))
    assert np.abs(images.reshape(setting.n_operations, 3, -1) - reference).max(initial=0) <= TOL

    # Orthonormality by exact quadrature on a grid fine enough for these frequencies.
    n = 2 * int(np.abs(basis.frequencies).max()) + 2
    axis = np.arange(n) / n
    grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)
    values = naive_features(basis.routing, basis.frequencies, grid)
    gram = values.conj().T @ values / len(grid)
    assert np.abs(gram - np.eye(basis.n_basis)).max(initial=0) <= TOL

    # The real basis: real-valued, orthonormal, the same span.
    real_values = naive_features(basis.real_routing, basis.frequencies, grid)
    assert np.abs(real_values.imag).max(initial=0) <= TOL
    assert np.abs(real_values.T @ real_values.real / len(grid) - np.eye(basis.n_basis)).max(initial=0) <= TOL
    M, Mr = basis.routing.toarray(), basis.real_routing.toarray()
    assert np.abs(Mr - Mr @ M.conj().T @ M).max(initial=0) <= TOL  # rows of Mr lie in span(M)
    assert np.abs(M - M @ Mr.conj().T @ Mr).max(initial=0) <= TOL  # and conversely
    assert np.abs(basis.encode(grid[:50], real=True) - real_values[:50].real).max(initial=0) <= TOL

    # Completeness: the dimension of the invariant subspace of span{exp(2 pi i h.x)}, from the
    # character formula dim = (1/|G|) sum_g sum_{h : R^T h = h} exp(2 pi i h.t).
    h = basis.frequencies
    fixed = (np.einsum("kj,oji->oki", h, setting.rotations.astype(np.int64)) == h).all(axis=2)
    phases = np.exp(2j * np.pi * (setting.translations @ h.T) / TRANSLATION_DENOMINATOR)
    dimension = (fixed * phases).sum() / setting.n_operations
    assert abs(dimension - basis.n_basis) < 1e-9


def brute_force_orbit_count(hall, radius):
    """Non-absent orbits by explicit enumeration: Python sets, rational translations."""
    db = spglib.get_symmetry_from_database(hall)
    ops = [
        (rotation.tolist(), [Fraction(float(x)).limit_denominator(12) for x in translation])
        for rotation, translation in zip(db["rotations"], db["translations"])
    ]
    hexagonal = get_setting(hall=hall).metric == "hexagonal"
    span = range(-radius - 2, radius + 3)
    frequencies = [
        (a, b, c)
        for a in span
        for b in span
        for c in span
        if 0 < a * a + b * b + c * c + (a * b if hexagonal else 0) <= radius * radius
    ]
    seen, count = set(), 0
    for h in frequencies:
        if h in seen:
            continue
        absent = False
        for rotation, translation in ops:
            image = tuple(sum(rotation[j][i] * h[j] for j in range(3)) for i in range(3))
            seen.add(image)
            if image == h and sum(a * t for a, t in zip(h, translation)) % 1 != 0:
                absent = True
        count += not absent
    return count, len(frequencies)


@pytest.mark.parametrize("group", ALL_GROUPS)
def test_basis_size_equals_brute_force_orbit_count(group):
    basis = build_basis(group=group, radius=3)
    count, n_frequencies = brute_force_orbit_count(basis.hall_number, 3)
    assert basis.n_frequencies == n_frequencies
    assert basis.n_basis == count
    assert basis.orbit_sizes.sum() + basis.absent.sum() == basis.n_frequencies


def test_every_hall_setting_builds_and_is_invariant():
    points = RNG.random((2, 3))
    for hall in range(1, N_HALL_NUMBERS + 1):
        basis = build_basis(hall=hall, radius=2.5)
        assert (basis.hall_number, basis.group) == (hall, get_setting(hall=hall).group)
        moved = basis.encode(moved_points(basis.setting, points))
        error = np.abs(moved.reshape(basis.setting.n_operations, 2, basis.n_basis) - basis.encode(points)).max(
            initial=0
        )
        assert error <= TOL, hall


def present(basis):
    return {tuple(h) for h in basis.frequencies[~basis.absent].tolist()}


def test_absences_f_centring():
    basis = build_basis(group=225, radius=5)  # Fm-3m: no conditions beyond F-centring
    allowed = {
        tuple(h)
        for h in basis.frequencies.tolist()
        if (h[0] + h[1]) % 2 == 0 and (h[1] + h[2]) % 2 == 0 and (h[0] + h[2]) % 2 == 0
    }
    assert present(basis) == allowed


def test_absences_i_centring():
    basis = build_basis(group=229, radius=5)  # Im-3m: only I-centring
    assert present(basis) == {tuple(h) for h in basis.frequencies.tolist() if sum(h) % 2 == 0}


def test_absences_diamond_glide_00l():
    basis = build_basis(group=227, radius=9)  # Fd-3m origin choice 1: 00l with l = 4n
    axial = [h for h in basis.frequencies.tolist() if h[0] == 0 and h[1] == 0]
    assert {h[2] for h in axial if tuple(h) in present(basis)} == {-8, -4, 4, 8}


@pytest.mark.parametrize("group", [19, 173])  # P2_12_12_1, P6_3: 2_1 screw along c
def test_absences_screw_along_c(group):
    basis = build_basis(group=group, radius=7)
    axial = [tuple(h) for h in basis.frequencies.tolist() if h[0] == 0 and h[1] == 0]
    assert axial and all((h in present(basis)) == (h[2] % 2 == 0) for h in axial)


def test_exact_phases_and_values():
    basis = build_basis(group=227, radius=6)
    assert basis.column_phase.dtype == np.int8
    expected = np.exp(2j * np.pi * basis.column_phase / 24)[~basis.absent]
    expected /= np.sqrt(basis.orbit_sizes[basis.column_row[~basis.absent]])
    assert np.array_equal(basis.column_value[~basis.absent], expected)
    assert (basis.column_value[basis.absent] == 0).all()
    assert basis.routing.dtype == np.complex128
    assert np.diff(basis.routing.tocsc().indptr).max() == 1  # at most one nonzero per column


@pytest.mark.parametrize("metric", ["euclidean", "hexagonal"])
def test_frequency_set_is_the_ball_and_prefix_ordered(metric):
    big = frequency_set(metric, 6)
    q = quadratic_form(big, metric)
    assert (np.diff(q) >= 0).all() and q.min() > 0 and q.max() <= 36
    for r in (1, 2, 3.5, np.sqrt(3), 5):
        small = frequency_set(metric, r)
        assert np.array_equal(big[: len(small)], small)
        assert len(small) == (q <= np.floor(r * r + 1e-9)).sum()


def test_truncation_is_the_basis_of_the_smaller_radius():
    for group in (1, 14, 62, 194, 225, 227):
        big = build_basis(group=group, radius=7)
        for r in (2, 4.5, 6):
            small, direct = big.truncate(r), build_basis(group=group, radius=r)
            assert (small.routing != direct.routing).nnz == 0
            assert np.array_equal(small.real_partner, direct.real_partner)
            assert np.array_equal(small.real_factor, direct.real_factor)


@pytest.mark.parametrize("bad", [0, -1.5, float("nan"), float("inf"), "four", None, 65])
def test_bad_radius(bad):
    with pytest.raises(InvalidRadiusError, match="radius") as info:
        build_basis(group=1, radius=bad)
    assert isinstance(info.value, ValueError)
    assert "positive finite number" in str(info.value) or "maximum of 64" in str(info.value)
