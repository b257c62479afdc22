"""CIF text to a crystal, with gemmi: the one CIF reader of the library, the service and the model.

gemmi parses the syntax in linear time and expands nothing, so the work a CIF can cause is
bounded before it is done: its first data block with atom sites, times its symmetry
operations, is an upper bound on the atoms it describes.  The symmetry operations are the
block's own (``_space_group_symop_operation_xyz`` or the older ``_symmetry_equiv_pos_as_xyz``),
else those of the space group it names (Hall symbol, Hermann-Mauguin symbol or number), else
the identity.  Where a block lists operations and names a group whose type they do not form
(a CIF naming Fm-3m that lists only ``x,y,z``), the listed operations are used, with a
:class:`~basisdb.errors.CifSymmetryWarning` that names both.  Coordinates more than
:data:`MAX_FRACTIONAL` cells from the origin are refused, as they are in any structure.  Each
site's images under the operations are wrapped into the cell, and images within
:data:`SITE_TOLERANCE` of each other (fractional, per axis, periodically: pymatgen's site
tolerance) are one atom on a special position.  The coordinates are kept as written: unlike
pymatgen, 0.33336 is not rounded to 1/3 (spglib's tolerance, not the reader, decides symmetry).
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from scipy.spatial import cKDTree

from .errors import CifSymmetryWarning, StructureError, StructureTooLargeError

__all__ = ["CifCrystal", "read_cif", "parse_operation", "SITE_TOLERANCE", "MAX_FRACTIONAL"]

SITE_TOLERANCE = 1e-4  # fractional, per axis: images closer than this are one atom
# Fractional coordinates beyond this many cells from the origin are refused, by every reader
# (basisdb.Cell too): at 1e16, float64 has no digits left for the position inside the cell.
MAX_FRACTIONAL = 1e6
_OCCUPANCY_TOLERANCE = 1e-3
# One term of an operation's component: a sign, a number (1/2, 0.5, 2/885) and/or an axis.
_TERM = re.compile(r"([+-]?)([0-9]*\.?[0-9]*(?:/[0-9]+)?)\*?([xyz]?)")

_OPERATION_TAGS = (
    "_space_group_symop_operation_xyz",
    "_space_group_symop.operation_xyz",
    "_symmetry_equiv_pos_as_xyz",
    "_symmetry_equiv.pos_as_xyz",
)
_GROUP_TAGS = (
    "_space_group_name_Hall",
    "_symmetry_space_group_name_Hall",
    "_space_group_name_H-M_alt",
    "_symmetry_space_group_name_H-M",
    "_space_group_IT_number",
    "_symmetry_Int_Tables_number",
)
_CELL_TAGS = tuple(
    f"_cell_{part}" for part in ("length_a", "length_b", "length_c", "angle_alpha", "angle_beta", "angle_gamma")
)


@dataclass(frozen=True)
class CifCrystal:
    """The crystal of a CIF's first data block with atom sites, expanded to the whole cell.

    Attributes:
        lattice: (3, 3) float64, rows a, b, c in Angstrom (gemmi's orthogonalization: a along x,
            b in the xy plane).
        positions: (N, 3) float64 fractional coordinates in [0, 1).
        numbers: (N,) int64 atomic numbers.
        block: the data block's name.
    """

    lattice: np.ndarray
    positions: np.ndarray
    numbers: np.ndarray
    block: str


def read_cif(text: str, label: str = "", max_atoms: int | None = None) -> CifCrystal:
    """The crystal that CIF ``text`` describes.

    Raises :class:`~basisdb.errors.StructureError` for text that is not CIF, a block that
    lacks its cell or sites, an unknown element or space group, partial occupancy (a
    disordered structure has no space group to encode) and two sites on one position; with
    ``max_atoms``, :class:`~basisdb.errors.StructureTooLargeError` before any expansion when
    the sites times the operations could exceed it.
    """
    gemmi = _gemmi()
    name = f"CIF {label!r}"
    try:
        document = gemmi.cif.read_string(text)
    except (ValueError, RuntimeError) as exc:
        raise StructureError(f"cannot parse {name}: {exc}") from None
    block = next((b for b in document if len(b.find_values("_atom_site_fract_x"))), None)
    if block is None:
        cartesian = any(len(b.find_values("_atom_site_Cartn_x")) for b in document)
        raise StructureError(
            f"cannot parse {name}: "
            + (
                "its atom sites are Cartesian only; give fractional coordinates (_atom_site_fract_x)"
                if cartesian
                else "no data block lists atom sites (_atom_site_fract_x, ...)"
            )
        )
    listed = next((block.find_values(tag) for tag in _OPERATION_TAGS if len(block.find_values(tag))), None)
    named = _named_operations(gemmi, block, name) if listed is None else None
    sites, operations = len(block.find_values("_atom_site_fract_x")), len(listed if named is None else named[0])
    if max_atoms is not None and sites * operations > max_atoms:  # counted, not yet parsed
        raise StructureTooLargeError(
            f"{name} lists {sites} atom sites and {operations} symmetry operations, which can expand to "
            f"{sites * operations} atoms, more than the {max_atoms} allowed; send the structure in P1 or a "
            "smaller cell"
        )
    lattice = _lattice(gemmi, block, name)
    if named is None:
        rotations, numerators, denominator = _listed_operations(gemmi, listed, name)
        translations = numerators / denominator
        formed = _group_type(rotations, translations, lattice) if _closed(rotations, numerators, denominator) else None
        _warn_if_the_named_group_differs(gemmi, block, name, len(rotations), formed, lattice)
    else:
        rotations, translations = named
    try:  # gemmi reads the block's tags as typed (a quoted group number is refused)
        small = gemmi.make_small_structure_from_block(block)
    except (ValueError, RuntimeError) as exc:
        raise StructureError(f"cannot parse {name}: {exc}") from None
    fractional, numbers, labels = _sites(small, label)
    positions, numbers = _expand(fractional, numbers, labels, rotations, translations, name)
    return CifCrystal(lattice, positions, numbers, block.name)


def _gemmi():
    try:
        import gemmi
    except ImportError:
        raise StructureError("reading CIF needs gemmi: pip install gemmi") from None
    return gemmi


def parse_operation(text: str) -> tuple[np.ndarray, tuple[Fraction, Fraction, Fraction]]:
    """A symmetry operation in CIF's x,y,z notation as an integer rotation and an exact
    translation: ``"-x+1/2, x-y, z+1/6"``.  Any rational or decimal translation is read
    (a CIF written in a shifted origin has translations such as 2/885, which gemmi's
    operations, in units of 1/24, do not hold); the rotation must have determinant +-1.

    >>> parse_operation("1/2+x, x-y, -z")[1]
    (Fraction(1, 2), Fraction(0, 1), Fraction(0, 1))
    """
    parts = text.replace(" ", "").lower().split(",")
    if len(parts) != 3:
        raise ValueError(f"{text!r} does not have three components")
    rotation = np.zeros((3, 3), dtype=np.int64)
    translation = [Fraction(0)] * 3
    for row, part in enumerate(parts):
        position = 0
        while position < len(part) or not part:
            term = _TERM.match(part, position)
            if term.end() == position or not (term.group(2) or term.group(3)):
                raise ValueError(f"cannot read {part[position:]!r} in {text!r}")
            sign = -1 if term.group(1) == "-" else 1
            try:
                value = Fraction(term.group(2)) if term.group(2) else Fraction(1)
            except (ValueError, ZeroDivisionError):
                raise ValueError(f"cannot read the number {term.group(2)!r} in {text!r}") from None
            if term.group(3):
                if value.denominator != 1:
                    raise ValueError(f"{text!r} multiplies {term.group(3)} by {value}")
                rotation[row, "xyz".index(term.group(3))] += sign * int(value)
            else:
                translation[row] += sign * value
            position = term.end()
            if position < len(part) and part[position] not in "+-":
                raise ValueError(f"cannot read {part[position:]!r} in {text!r}")
    if round(abs(np.linalg.det(rotation))) != 1:
        determinant = np.linalg.det(rotation)
        raise ValueError(f"{text!r} is not a symmetry operation (its rotation has determinant {determinant:g})")
    return rotation, tuple(translation)


def _listed_operations(gemmi, listed, name: str) -> tuple[np.ndarray, np.ndarray, int]:
    """A block's own operations, exactly: (O, 3, 3) int64 rotations, and translations as (O, 3)
    int64 numerators over one common denominator."""
    try:
        parsed = [parse_operation(gemmi.cif.as_string(xyz)) for xyz in listed]
    except ValueError as exc:
        raise StructureError(f"{name}: a symmetry operation is not x,y,z notation: {exc}") from None
    rotations = np.array([rotation for rotation, _ in parsed], dtype=np.int64)
    denominator = math.lcm(*(t.denominator for _, translation in parsed for t in translation))
    numerators = np.array([[int(t * denominator) for t in translation] for _, translation in parsed], dtype=np.int64)
    return rotations, numerators, denominator


def _closed(rotations: np.ndarray, numerators: np.ndarray, denominator: int) -> bool:
    """Whether operations (exact: translations as numerators over ``denominator``) are closed
    under composition modulo lattice translations, which for a finite set is to form a group."""
    translations = numerators % denominator
    products = np.einsum("aij,bjk->abik", rotations, rotations).reshape(-1, 9)  # R_a R_b
    shifts = (np.einsum("aij,bj->abi", rotations, translations) + translations[:, None, :]) % denominator
    listed = np.unique(np.concatenate([rotations.reshape(-1, 9), translations], axis=1), axis=0)
    composed = np.concatenate([products, shifts.reshape(-1, 3)], axis=1)
    return len(np.unique(np.concatenate([listed, composed]), axis=0)) == len(listed)


def _named_operations(gemmi, block, name: str) -> tuple[np.ndarray, np.ndarray]:
    """The operations of the space group a block names (Hall symbol, Hermann-Mauguin symbol
    or number, in that order), or the identity when it names none."""
    named = _named_group(gemmi, block)
    if named is None:
        return np.eye(3, dtype=np.int64)[None], np.zeros((1, 3))
    tag, group, operations = named
    if operations is None:
        raise StructureError(
            f"{name} names space group {group!r} ({tag}), which gemmi does not know; list the symmetry "
            "operations (_space_group_symop_operation_xyz)"
        )
    return operations


def _named_group(gemmi, block) -> tuple[str, str, tuple[np.ndarray, np.ndarray] | None] | None:
    """``(tag, value, (rotations, translations))`` of the first group tag of a block, the
    operations gemmi's (None when it does not know the group); None when it names no group."""
    for tag in _GROUP_TAGS:
        value = block.find_value(tag)
        if value is None or gemmi.cif.is_null(value):
            continue
        group = gemmi.cif.as_string(value).strip()
        try:  # a Hall symbol spells out its operations; a name or number is looked up in gemmi's table
            if "Hall" in tag:
                found = gemmi.symops_from_hall(group)
            else:  # pymatgen writes screw axes as 2_1, which gemmi reads only in 6_3 and the like
                found = gemmi.find_spacegroup_by_name(group) or gemmi.find_spacegroup_by_name(group.replace("_", ""))
                found = found.operations() if found is not None else None
        except (ValueError, RuntimeError):
            found = None
        if found is None:
            return tag, group, None
        operations = list(found)
        rotations = np.array([op.rot for op in operations], dtype=np.int64) // gemmi.Op.DEN
        translations = np.array([op.tran for op in operations], dtype=np.float64) / gemmi.Op.DEN
        return tag, group, (rotations, translations)
    return None


def _warn_if_the_named_group_differs(gemmi, block, name: str, n_listed: int, formed, lattice) -> None:
    """A :class:`CifSymmetryWarning` when the space group a block names (its first group tag)
    is not ``formed``, the type of its ``n_listed`` operations (None: they form no group).
    Types are compared, as spglib identifies them, not operations: a CIF may name a group by
    its number, or by a symbol of another setting than the one it lists.  A name gemmi does
    not know is not compared: the listed operations say what the group is."""
    named = _named_group(gemmi, block)
    if named is None or named[2] is None:
        return
    tag, group, operations = named
    said = _group_type(*operations, lattice)
    if formed is not None and said.number == formed.number:
        return
    listed = f"lists {n_listed} symmetry operation{'s' if n_listed != 1 else ''}"
    found = f"which form No. {formed.number}, {formed.international_short}" if formed else "which form no space group"
    warnings.warn(
        f"{name} names space group {group!r} ({tag}: No. {said.number}, {said.international_short}) but {listed}, "
        f"{found}; its atoms were expanded with the listed operations",
        CifSymmetryWarning,
        stacklevel=3,
    )


def _group_type(rotations, translations, lattice):
    """spglib's space-group type of a set of operations, or None when they form no group."""
    import spglib

    from .settings import quiet_spglib

    return quiet_spglib(spglib.get_spacegroup_type_from_symmetry, rotations, translations, lattice=lattice)


def _lattice(gemmi, block, name: str) -> np.ndarray:
    values = []
    for tag in _CELL_TAGS:
        value = block.find_value(tag)
        number = gemmi.cif.as_number(value) if value is not None else float("nan")
        if not np.isfinite(number) or number <= 0:
            raise StructureError(f"{name}: {tag} is missing or not a positive number")
        values.append(number)
    cell = gemmi.UnitCell(*values)
    # the volume relative to a box of the same edges: 0 (or NaN) when the angles close no cell
    if not cell.volume / np.prod(values[:3]) > 1e-6:
        raise StructureError(f"{name}: the cell {values} has no volume (its angles close no cell)")
    return np.array(cell.orth.mat, dtype=np.float64).T


def _sites(small, label: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(S, 3) fractional coordinates, (S,) atomic numbers and the labels of the listed sites."""
    sites = list(small.sites)
    fractional = np.array([[s.fract.x, s.fract.y, s.fract.z] for s in sites], dtype=np.float64).reshape(-1, 3)
    numbers = np.array([s.element.atomic_number for s in sites], dtype=np.int64)
    occupancy = np.array([s.occ for s in sites], dtype=np.float64)
    labels = [s.label for s in sites]
    for problem, at in [
        ("has no coordinates", ~np.isfinite(fractional).all(axis=1)),
        (
            f"is more than {MAX_FRACTIONAL:g} cells from the origin; reduce positions into the cell (far out, "
            "float64 cannot tell where in the cell an atom is)",
            np.abs(np.nan_to_num(fractional)).max(axis=1, initial=0) > MAX_FRACTIONAL,
        ),
        ("is not an element", numbers < 1),
    ]:
        if at.any():
            i = int(at.argmax())
            raise StructureError(f"CIF {label!r}: site {labels[i]!r} ({sites[i].type_symbol or '?'}) {problem}")
    partial = np.abs(occupancy - 1) > _OCCUPANCY_TOLERANCE
    if partial.any():
        i = int(partial.argmax())
        raise StructureError(
            f"structure {label!r} is disordered (site {labels[i]} at {np.round(fractional[i], 4).tolist()} has "
            f"occupancy {occupancy[i]:g}); only ordered structures have a space group to encode"
        )
    return fractional, numbers, labels


def _expand(fractional, numbers, labels, rotations, translations, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Every site's images, one atom per position: an image that falls on an earlier image
    of its own site is the same atom (a special position); one that falls on another
    site's is an error (a site listed twice, or a disordered structure given as two)."""
    images = (np.einsum("oij,sj->soi", rotations, fractional) + translations[None]) % 1.0
    images[images >= 1.0] = 0.0  # x % 1 is 1.0 for x just below 0
    flat = images.reshape(-1, 3)
    site = np.repeat(np.arange(len(fractional)), len(rotations))
    pairs = cKDTree(flat, boxsize=1.0).query_pairs(SITE_TOLERANCE, p=np.inf, output_type="ndarray")
    clash = pairs[site[pairs[:, 0]] != site[pairs[:, 1]]]
    if len(clash):
        a, b = site[clash[0]]
        raise StructureError(
            f"{name}: sites {labels[a]!r} and {labels[b]!r} fall on the same position "
            f"{np.round(flat[clash[0, 0]], 4).tolist()}: a site listed twice, or a disordered structure"
        )
    keep = np.ones(len(flat), dtype=bool)
    keep[pairs.max(axis=1)] = False  # the later image of each coinciding pair
    return flat[keep], numbers[site[keep]]
