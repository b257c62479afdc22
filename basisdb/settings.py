"""Space-group settings (Hall numbers) and their exact operations.

Operations come from spglib's database.  A setting acts on fractional coordinates of its
conventional cell by ``x -> R x + t``; the list includes the centring translations
(operations with ``R = I``), so it is the group modulo the lattice of the conventional
cell.  Translations are kept exactly as integers in units of 1/24 (every translation in
the 530 settings is a multiple of 1/12; 1/24 leaves room for derived quantities).
"""

from __future__ import annotations

import difflib
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
    "group_number",
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


def crystal_system(group: int | str) -> str:
    """Crystal system name of the space-group type ``group`` (ITA number or symbol)."""
    group = _check_group(group)
    return next(name for last, name in _CRYSTAL_SYSTEMS if group <= last)


def _integer_in_range(value: object, what: str, upper: int, error: type, hint: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise error(f"{what} must be an integer in 1-{upper}, got {value!r} ({type(value).__name__})")
    if not 1 <= int(value) <= upper:
        raise error(f"{what} {int(value)} is outside 1-{upper}; {hint}")
    return int(value)


def _check_group(group: object) -> int:
    if isinstance(group, str):
        return _group_of_symbol(group)
    if isinstance(group, bool) or not isinstance(group, (int, np.integer)):
        raise InvalidGroupError(
            f"a space group is an ITA number 1-{N_GROUPS} or a Hermann-Mauguin symbol such as 'Fm-3m', "
            f"got {group!r} ({type(group).__name__})"
        )
    return _integer_in_range(
        group,
        "space-group number",
        N_GROUPS,
        InvalidGroupError,
        "pass the ITA number of the type (e.g. 227 for Fd-3m), or hall=... for a specific setting",
    )


def group_number(group: int | str) -> int:
    """The ITA number (1-230) of a space-group type given by number or by Hermann-Mauguin
    symbol, short or full, in any of its settings, as spglib, pymatgen and gemmi spell them.

    Spaces and underscores do not matter (``"P2_1/c"``, ``"P21/c"``, ``"P 1 21/c 1"``); older
    editions' symbols (cubic without the bar, ``"Fm3m"``; a glide for the e glide, ``"Cmca"``)
    and a Unicode minus are understood.  A
    symbol names the type: every function that takes ``group=`` uses the type's default
    setting, whichever setting the symbol is written in (``"P2_1/n"`` gives group 14 in
    ``P2_1/c``); a suffix for a setting choice (``"Fd-3m:2"``, ``"R-3m:H"``) is accepted only
    where it names the default one (pass ``hall=`` for another).  An unknown symbol raises
    :class:`~basisdb.InvalidGroupError` with the closest known ones.

    >>> group_number("Fm-3m"), group_number("P 21/c"), group_number("R-3m:H"), group_number(227)
    (225, 14, 166, 227)
    """
    return _check_group(group)


def _normalized_symbol(symbol: str) -> str:
    return symbol.replace("\u2212", "-").replace(" ", "").replace("_", "")


@lru_cache(maxsize=1)
def _symbol_table() -> tuple[dict[str, int], dict[tuple[int, str], int], dict[str, str]]:
    """From spglib's 530 Hall settings: normalized symbol -> ITA number; (ITA number,
    setting choice) -> Hall number; normalized symbol -> a spelling to show."""
    numbers: dict[str, int] = {}
    choices: dict[tuple[int, str], int] = {}
    shown: dict[str, str] = {}
    older: list[tuple[str, int]] = []  # symbols of older editions, added where they name nothing else

    def add(symbol: str, number: int) -> None:
        key = _normalized_symbol(symbol.strip())
        if numbers.setdefault(key, number) != number:  # pragma: no cover - spglib's tables are consistent
            raise InvalidGroupError(f"spglib names two types {numbers[key]} and {number} by {symbol!r}")
        shown.setdefault(key, symbol.strip())

    for hall in range(1, N_HALL_NUMBERS + 1):
        sg_type = quiet_spglib(spglib.get_spacegroup_type, hall)
        number = int(sg_type.number)
        add(sg_type.international_short, number)
        add(sg_type.international_full, number)
        for part in sg_type.international.split("="):  # "P 2_1/c = P 1 2_1/n 1"
            add(part, number)
        axes = sg_type.international_full.split()
        if len(axes) == 4 and axes[1:].count("1") == 2:  # monoclinic "P 1 2_1/n 1" is also "P2_1/n"
            add(axes[0] + next(a for a in axes[1:] if a != "1"), number)
        if number >= 195 and "-3" in sg_type.international_short:  # cubic without the bar: Fm3m
            older.append((sg_type.international_short.replace("-3", "3"), number))
        letters = sg_type.international.split("=")[0].split()
        if "e" in letters[1:]:  # ITA's double glide e (2002) was written as one of its two glides: Cmca
            position = letters.index("e", 1)
            for glide in ("bc", "ac", "ab")[position - 1]:
                older.append(("".join(letters[:position] + [glide] + letters[position + 1 :]), number))
        if sg_type.choice:
            choices.setdefault((number, sg_type.choice), hall)
    for symbol, number in older:
        if numbers.setdefault(symbol, number) == number:
            shown.setdefault(symbol, symbol)
    return numbers, choices, shown


def _group_of_symbol(symbol: str) -> int:
    numbers, choices, shown = _symbol_table()
    key = _normalized_symbol(symbol.strip())
    if key.isdigit():
        raise InvalidGroupError(
            f"space group {symbol!r} is a number in a string: pass the ITA number 1-{N_GROUPS} as an int, "
            "or a Hermann-Mauguin symbol such as 'Fm-3m'"
        )
    if key in numbers:
        return numbers[key]
    if ":" in key:
        name, choice = key.split(":", 1)
        number = numbers.get(name)
        hall = choices.get((number, choice)) if number is not None else None
        if number is None:
            pass  # an unknown symbol: named below
        elif hall is None:
            raise InvalidGroupError(
                f"space group {symbol!r}: {choice!r} is not a setting choice of group {number}; "
                f"pass group={number} (or its symbol without the suffix) for the default setting, "
                f"or hall= one of {list(hall_numbers_of_group(number))} for a specific one"
            )
        elif hall != default_hall_number(number):
            raise InvalidGroupError(
                f"space group {symbol!r} names Hall setting {hall} of group {number}, not its default "
                f"setting (Hall {default_hall_number(number)}): pass hall={hall} for that setting, or "
                f"group={number} for the default one"
            )
        else:
            return number
    folded = [number for known, number in numbers.items() if known.lower() == key.lower()]
    if len(set(folded)) == 1:
        return folded[0]
    close = dict.fromkeys(numbers[k] for k in difflib.get_close_matches(key, list(numbers), n=6, cutoff=0.6))
    names = [f"{_setting(default_hall_number(n)).international!r} ({n})" for n in list(close)[:4]]
    hint = f"; did you mean {' or '.join(names)}?" if names else "."
    raise InvalidGroupError(
        f"unknown space-group symbol {symbol!r}{hint} Pass a Hermann-Mauguin symbol such as 'Fm-3m', "
        f"'P2_1/c' or 'P 1 21/c 1', or the ITA number 1-{N_GROUPS}"
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


def hall_numbers_of_group(group: int | str) -> tuple[int, ...]:
    """All Hall numbers of ITA type ``group`` (number or symbol), ascending; the first is the default."""
    group = _check_group(group)
    return tuple(int(h) for h in np.flatnonzero(_group_of_hall() == group))


def default_hall_number(group: int | str) -> int:
    """The smallest Hall number of ITA type ``group`` (number or symbol): the setting spglib
    standardizes into."""
    return hall_numbers_of_group(group)[0]


def _resolve_hall(group: int | str | None, hall: int | None) -> int:
    if hall is None and group is None:
        raise InvalidGroupError("pass group=<ITA number 1-230 or symbol such as 'Fm-3m'> or hall=<Hall number 1-530>")
    if hall is None:
        return default_hall_number(group)
    hall = _check_hall(hall)
    if group is not None and (number := _check_group(group)) != _group_of_hall()[hall]:
        actual = int(_group_of_hall()[hall])
        named = f"group {number}" if number == group else f"group {number} ({group!r})"
        raise InvalidHallNumberError(
            f"Hall number {hall} is a setting of group {actual} (Hall numbers "
            f"{list(hall_numbers_of_group(actual))}), not of {named} (Hall numbers "
            f"{list(hall_numbers_of_group(number))})"
        )
    return hall


def get_setting(group: int | str | None = None, *, hall: int | None = None) -> Setting:
    """The setting with Hall number ``hall``, or the default setting of the space-group type
    ``group``: its ITA number or its Hermann-Mauguin symbol (see :func:`group_number`).

    >>> s = get_setting(227)
    >>> s.hall_number, s.hall_symbol, s.n_operations
    (525, 'F 4d 2 3 -1d', 192)
    >>> get_setting("Fd-3m") is s
    True
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
