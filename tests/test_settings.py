import numpy as np
import pytest
import spglib

from basisdb import (
    InvalidGroupError,
    InvalidHallNumberError,
    build_basis,
    crystal_system,
    default_hall_number,
    enantiomorphic_partner,
    get_setting,
    group_number,
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


@pytest.mark.parametrize("bad", ["227", 3.0, True, None, b"Fm-3m"])
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


@pytest.mark.parametrize(
    "symbol, number",
    [
        ("Fm-3m", 225),
        ("P2_1/c", 14),
        ("P21/c", 14),
        ("P 21/c", 14),
        ("P 1 21/c 1", 14),
        ("P 1 2_1/c 1", 14),
        ("P2_1/n", 14),  # another setting's symbol names the same type
        ("Fd-3m", 227),
        ("F 41/d -3 2/m", 227),
        ("R-3m", 166),
        ("R-3m:H", 166),  # a suffix naming the default setting
        ("Fd-3m:1", 227),
        ("P6_3/mmc", 194),
        ("P 63/m m c", 194),
        ("Pnma", 62),
        ("Pbnm", 62),
        ("Ia-3d", 230),
        ("P-1", 2),
        ("P\u22121", 2),  # a Unicode minus, as copied from a paper
        ("Fm3m", 225),  # older editions: cubic without the bar, the e glide as a plain one
        ("Cmca", 64),
        ("Abm2", 39),
        ("fm-3m", 225),
        (" Fm-3m ", 225),
    ],
)
def test_group_by_hermann_mauguin_symbol(symbol, number):
    assert group_number(symbol) == number
    assert get_setting(symbol) is get_setting(number)
    assert default_hall_number(symbol) == default_hall_number(number)


def test_every_symbol_of_the_530_settings_names_its_type():
    for hall in ALL_HALLS:
        sg_type = spglib.get_spacegroup_type(hall)
        names = [sg_type.international_short, sg_type.international_full, *sg_type.international.split("=")]
        for name in names:
            assert group_number(name) == sg_type.number, (hall, name)


def test_symbols_agree_with_gemmi():
    gemmi = pytest.importorskip("gemmi")
    known = 0
    for group in gemmi.spacegroup_table():
        for name in (group.hm, group.short_name()):
            try:
                number = group_number(name)
            except InvalidGroupError:
                continue  # settings outside spglib's 530 (A 1, C -1, H 3, ...)
            known += 1
            # 'B 1 1 2' is C2 (5) in spglib's table and also a B-centred P2 (3) in gemmi's
            assert number == group.number or name in ("B 1 1 2", "B2"), (name, group.number, number)
    assert known > 950


def test_every_function_that_takes_a_group_takes_a_symbol():
    assert hall_numbers_of_group("Fd-3m") == (525, 526)
    assert crystal_system("P6_3/mmc") == "hexagonal"
    assert build_basis(group="Fd-3m", radius=2).hall_number == 525
    assert enantiomorphic_partner("P4_1") == 78
    assert get_setting("Fd-3m", hall=526).choice == "2"
    assert group_number(np.int64(225)) == 225


def test_unknown_symbols_are_named_with_the_closest_ones():
    closest = r"unknown space-group symbol 'Fm3-m'; did you mean 'Fm-3m' \(225\)"
    with pytest.raises(InvalidGroupError, match=closest) as info:
        get_setting("Fm3-m")
    assert isinstance(info.value, ValueError) and "or the ITA number 1-230" in str(info.value)
    with pytest.raises(InvalidGroupError, match=r"unknown space-group symbol 'XYZ'\. Pass a Hermann-Mauguin symbol"):
        default_hall_number("XYZ")
    with pytest.raises(InvalidGroupError, match="'227' is a number in a string: pass the ITA number 1-230 as an int"):
        group_number("227")
    with pytest.raises(InvalidGroupError, match="names Hall setting 526 of group 227, not its default .*hall=526"):
        get_setting("Fd-3m:2")
    with pytest.raises(InvalidGroupError, match="'X' is not a setting choice of group 166"):
        get_setting("R-3m:X")
    with pytest.raises(InvalidHallNumberError, match=r"not of group 225 \('Fm-3m'\)"):
        get_setting("Fm-3m", hall=525)
