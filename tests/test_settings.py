import numpy as np
import pytest
import spglib

from basisdb import (
    InvalidGroupError,
    InvalidHallNumberError,
    crystal_system,
    default_hall_number,
    get_setting,
    hall_numbers_of_group,
)
from basisdb.settings import N_HALL_NUMBERS, TRANSLATION_DENOMINATOR

ALL_HALLS = range(1, N_HALL_NUMBERS + 1)


def test_default_setting_is_smallest_hall_number_of_each_type():
    defaults = [default_hall_number(g) for g in range(1, 231)]
    assert len(set(defaults)) == 230
    for group, hall in zip(range(1, 231), defaults):
        same_type = [h for h in ALL_HALLS if spglib.get_spacegroup_type(h).number == group]
        assert hall == min(same_type)
    # Known anchors: monoclinic unique axis b, origin choice 1, rhombohedral on hexagonal axes.
    assert get_setting(14).hall_symbol == "-P 2ybc"
    assert get_setting(227).choice == "1" and get_setting(227).hall_number == 525
    assert get_setting(166).choice == "H"


def test_default_setting_is_what_spglib_standardizes_into():
    # Rock salt given in a primitive cell: spglib reports the setting we call default.
    lattice = 0.5 * np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0]]) * 5.6
    dataset = spglib.get_symmetry_dataset((lattice, [[0, 0, 0], [0.5, 0.5, 0.5]], [11, 17]))
    assert dataset.hall_number == default_hall_number(dataset.number)


def test_all_530_settings_have_exact_operations_with_centring():
    seen_groups = set()
    for hall in ALL_HALLS:
        s = get_setting(hall=hall)
        seen_groups.add(s.group)
        assert s.rotations.dtype == np.int8 and s.translations.dtype == np.int64
        assert ((s.translations >= 0) & (s.translations < TRANSLATION_DENOMINATOR)).all()
        db = spglib.get_symmetry_from_database(hall)
        assert np.array_equal(s.rotations, db["rotations"])
        t = s.translations / TRANSLATION_DENOMINATOR
        assert np.allclose((t - db["translations"] + 0.5) % 1 - 0.5, 0, atol=1e-12)
        assert hall in hall_numbers_of_group(s.group)
    assert seen_groups == set(range(1, 231))
    assert get_setting(225).n_operations == 192  # 48 point operations x 4 F-centring vectors


def test_hexagonal_metric_exactly_for_the_52_settings_on_hexagonal_axes():
    hexagonal = [h for h in ALL_HALLS if get_setting(hall=h).metric == "hexagonal"]
    assert len(hexagonal) == 52
    assert {get_setting(hall=h).group for h in hexagonal} == set(range(143, 195))
    assert all(get_setting(hall=h).is_default for h in hexagonal)
    assert get_setting(hall=434).choice == "R" and get_setting(hall=434).metric == "euclidean"


def test_crystal_systems():
    assert [crystal_system(g) for g in (1, 3, 16, 75, 143, 168, 195)] == [
        "triclinic",
        "monoclinic",
        "orthorhombic",
        "tetragonal",
        "trigonal",
        "hexagonal",
        "cubic",
    ]


@pytest.mark.parametrize("bad", [0, 231, -5, 1000])
def test_group_out_of_range(bad):
    with pytest.raises(InvalidGroupError, match="outside 1-230"):
        get_setting(bad)


@pytest.mark.parametrize("bad", ["227", 3.0, True, None])
def test_group_wrong_type(bad):
    with pytest.raises(InvalidGroupError, match="1-230"):
        get_setting(bad) if bad is not None else get_setting()


@pytest.mark.parametrize("bad", [0, 531])
def test_hall_out_of_range(bad):
    with pytest.raises(InvalidHallNumberError, match="outside 1-530") as info:
        get_setting(hall=bad)
    assert isinstance(info.value, ValueError)


def test_hall_inconsistent_with_group():
    with pytest.raises(
        InvalidHallNumberError,
        match=r"setting of group 227 \(Hall numbers \[525, 526\]\), not of group 225 \(Hall numbers \[523\]\)",
    ):
        get_setting(225, hall=525)
    assert get_setting(227, hall=526).choice == "2"
