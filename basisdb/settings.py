"""Space-group settings (Hall numbers) and their exact operations.

Operations come from spglib's database.  A setting acts on fractional coordinates of its
conventional cell by ``x -> R x + t``; the list includes the centring translations
(operations with ``R = I``), so it is the group modulo the lattice of the conventional
cell.  Translations are kept exactly as integers in units of 1/24 (every translation in
the 530 settings is a multiple of 1/12; 1/24 leaves room for derived quantities).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

import numpy as np
import spglib

from .errors import InvalidGroupError, InvalidHallNumberError

__all__ = [
    "N_GROUPS",
    "N_HALL_NUMBERS",
    "TRANSLATION_DENOMINATOR",
    "Metric",
    "Setting",
    "get_setting",
    "default_hall_number",
    "hall_numbers_of_group",
    "crystal_system",
]

N_GROUPS = 230
N_HALL_NUMBERS = 530
TRANSLATION_DENOMINATOR = 24

Metric = Literal["euclidean", "hexagonal"]

_CRYSTAL_SYSTEMS = (
    (2, "triclinic"),
    (15, "monoclinic"),
    (74, "orthorhombic"),
    (142, "tetragonal"),
    (167, "trigonal"),
    (194, "hexagonal"),
    (230, "cubic"),
)


@dataclass(frozen=True, eq=False)
class Setting:
    """One Hall setting of a space-group type, with its operations in exact form.

    Attributes:
        hall_number: spglib's Hall number, 1-530.
        group: ITA space-group number, 1-230.
        hall_symbol: Hall symbol, e.g. ``"F 4d 2 3 -1d"``.
        international: short Hermann-Mauguin symbol, e.g. ``"Fd-3m"``.
        choice: spglib's setting choice (``"1"``, ``"2"``, ``"H"``, ``"R"``, ``"b"``, ...);
            ``""`` where the type has a single setting.
        metric: the quadratic form that defines truncation radii for this setting,
            ``"hexagonal"`` (h^2+hk+k^2+l^2, settings on hexagonal axes) or ``"euclidean"``
            (h^2+k^2+l^2, every other setting, rhombohedral axes included).
        rotations: (n_ops, 3, 3) int8, acting on fractional coordinates (column vectors)
            of this setting's conventional cell.
        translations: (n_ops, 3) int64, numerators over :data:`TRANSLATION_DENOMINATOR`,
            reduced into [0, 24).
    """

    hall_number: int
    group: int
    hall_symbol: str
    international: str
    choice: str
    metric: Metric
    rotations: np.ndarray = field(repr=False)
    translations: np.ndarray = field(repr=False)

    @property
    def n_operations(self) -> int:
        """Number of operations modulo lattice translations, centring included."""
        return int(self.rotations.shape[0])

    @property
    def point_group_order(self) -> int:
        """Operations per primitive cell: n_operations over the number of centring translations."""
        pure = int((self.rotations == np.eye(3, dtype=np.int8)).all(axis=(1, 2)).sum())
        return self.n_operations // pure

    @property
    def crystal_system(self) -> str:
        return crystal_system(self.group)

    @property
    def is_default(self) -> bool:
        """Whether this is the setting spglib standardizes into (smallest Hall number)."""
        return default_hall_number(self.group) == self.hall_number

    @property
    def fractional_translations(self) -> np.ndarray:
        """(n_ops, 3) float64 translations, for evaluation only (never for identification)."""
        return self.translations / TRANSLATION_DENOMINATOR


def crystal_system(group: int) -> str:
    """Crystal system name of ITA number ``group``."""
    group = _check_group(group)
    return next(name for last, name in _CRYSTAL_SYSTEMS if group <= last)


def _integer_in_range(value: object, what: str, upper: int, error: type, hint: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise error(f"{what} must be an integer in 1-{upper}, got {value!r} ({type(value).__name__})")
    if not 1 <= int(value) <= upper:
        raise error(f"{what} {int(value)} is outside 1-{upper}; {hint}")
    return int(value)


def _check_group(group: object) -> int:
    return _integer_in_range(
        group,
        "space-group number",
        N_GROUPS,
        InvalidGroupError,
        "pass the ITA number of the type (e.g. 227 for Fd-3m), or hall=... for a specific setting",
    )


def _check_hall(hall: object) -> int:
    return _integer_in_range(
        hall,
        "Hall number",
        N_HALL_NUMBERS,
        InvalidHallNumberError,
        "Hall numbers are spglib's numbering of the 530 Hall settings",
    )


def quiet_spglib(function, *args, **kwargs):
    """Call a spglib function without its per-call DeprecationWarning about error handling
    (spglib 2.7-2.x); errors still surface as spglib reports them."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*OLD_ERROR_HANDLING.*", category=DeprecationWarning)
        return function(*args, **kwargs)


@lru_cache(maxsize=1)
def _group_of_hall() -> np.ndarray:
    """(531,) int: ITA number of each Hall number (index 0 unused)."""
    table = np.zeros(N_HALL_NUMBERS + 1, dtype=np.int64)
    for hall in range(1, N_HALL_NUMBERS + 1):
        table[hall] = quiet_spglib(spglib.get_spacegroup_type, hall).number
    return table


def hall_numbers_of_group(group: int) -> tuple[int, ...]:
    """All Hall numbers of ITA type ``group``, ascending; the first is the default."""
    group = _check_group(group)
    return tuple(int(h) for h in np.flatnonzero(_group_of_hall() == group))


def default_hall_number(group: int) -> int:
    """The smallest Hall number of ITA type ``group``: the setting spglib standardizes into."""
    return hall_numbers_of_group(group)[0]


def _resolve_hall(group: int | None, hall: int | None) -> int:
    if hall is None and group is None:
        raise InvalidGroupError("pass group=<ITA number 1-230> or hall=<Hall number 1-530>")
    if hall is None:
        return default_hall_number(group)
    hall = _check_hall(hall)
    if group is not None and _check_group(group) != _group_of_hall()[hall]:
        actual = int(_group_of_hall()[hall])
        raise InvalidHallNumberError(
            f"Hall number {hall} is a setting of group {actual} (Hall numbers "
            f"{list(hall_numbers_of_group(actual))}), not of group {group} (Hall numbers "
            f"{list(hall_numbers_of_group(group))})"
        )
    return hall


def get_setting(group: int | None = None, *, hall: int | None = None) -> Setting:
    """The setting with Hall number ``hall``, or the default setting of ITA type ``group``.

    >>> s = get_setting(227)
    >>> s.hall_number, s.hall_symbol, s.n_operations
    (525, 'F 4d 2 3 -1d', 192)
    """
    return _setting(_resolve_hall(group, hall))


@lru_cache(maxsize=N_HALL_NUMBERS)
def _setting(hall: int) -> Setting:
    sg_type = quiet_spglib(spglib.get_spacegroup_type, hall)
    symmetry = quiet_spglib(spglib.get_symmetry_from_database, hall)
    rotations = np.asarray(symmetry["rotations"], dtype=np.int8)
    scaled = np.asarray(symmetry["translations"], dtype=np.float64) * TRANSLATION_DENOMINATOR
    numerators = np.rint(scaled)
    # spglib's database holds translations as exact multiples of 1/12; refuse anything else
    # rather than silently snapping it to the grid.
    if np.abs(scaled - numerators).max(initial=0.0) > 1e-9:
        raise InvalidHallNumberError(
            f"spglib returned a translation for Hall number {hall} that is not a multiple of "
            f"1/{TRANSLATION_DENOMINATOR}"
        )
    translations = numerators.astype(np.int64) % TRANSLATION_DENOMINATOR
    on_hexagonal_axes = 143 <= sg_type.number <= 194 and sg_type.choice != "R"
    rotations.flags.writeable = False
    translations.flags.writeable = False
    return Setting(
        hall_number=hall,
        group=int(sg_type.number),
        hall_symbol=sg_type.hall_symbol,
        international=sg_type.international_short,
        choice=sg_type.choice or "",
        metric="hexagonal" if on_hexagonal_axes else "euclidean",
        rotations=rotations,
        translations=translations,
    )
