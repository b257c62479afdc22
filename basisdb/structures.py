"""Crystal structures and their standardization into the store's settings (spglib).

Both clients of the store need this: the service's structure endpoint and the model's
input pipeline.  A :class:`Cell` is the plain (lattice, fractional positions, atomic
numbers) triple; :func:`standardize` maps it onto spglib's standardized conventional cell,
whose setting is the default setting (smallest Hall number) of its space-group type, the
one the store builds by default.

Every function that takes "a structure" reads it with :meth:`Cell.from_any`: a
:class:`Cell`, a pymatgen ``Structure``, an ASE ``Atoms``, spglib's ``(lattice, positions,
numbers)`` tuple, CIF text or a CIF file path.  CIF is read by :mod:`basisdb.cif` (gemmi),
the one CIF reader of the library, the service and the model; pymatgen and ASE objects are
read directly.  :meth:`Cell.to_pymatgen` and :meth:`Cell.to_ase` convert back.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import spglib

from .cif import MAX_FRACTIONAL, read_cif
from .errors import StructureError
from .normalizer import enantiomorphic_partner
from .settings import Setting, get_setting, quiet_spglib

__all__ = [
    "Cell",
    "Standardization",
    "standardize",
    "atomic_number",
    "ELEMENTS",
    "DEFAULT_SYMPREC",
    "MAX_FRACTIONAL",
    "MIN_ATOM_DISTANCE",
    "is_cif_text",
    "read_structure_file",
]

# Two atoms closer than this (Angstrom) are one site given twice; the shortest distance in
# the built-in Materials Project structures is 0.748 A (H2).
MIN_ATOM_DISTANCE = 0.5

# Measured on the 6,175 built-in Materials Project structures (benchmarks/symprec.py): with
# every atom moved by 5e-4 A, 1e-3 A loses the group of 96% of them; 1e-2 A (pymatgen's
# default) keeps 99.9% at 5e-4 A and 98.9% at 2e-3 A, and finds more symmetry than a strict
# 1e-5 A in 2.3% more clean structures than 1e-3 A does.
DEFAULT_SYMPREC = 1e-2


@dataclass(frozen=True, eq=False)
class Cell:
    """A periodic structure.

    Attributes:
        lattice: (3, 3) float64, rows are the lattice vectors a, b, c in Angstrom (Cartesian).
        positions: (N, 3) float64 fractional coordinates in that lattice.
        numbers: (N,) int64 atomic numbers.
        label: a name for messages (file name, material id, formula).
    """

    lattice: np.ndarray = field(repr=False)
    positions: np.ndarray = field(repr=False)
    numbers: np.ndarray = field(repr=False)
    label: str = ""

    def __post_init__(self) -> None:
        lattice = np.asarray(self.lattice, dtype=np.float64)
        positions = np.asarray(self.positions, dtype=np.float64)
        numbers = np.asarray(self.numbers)
        where = f"structure {self.label!r}: " if self.label else ""
        if lattice.shape != (3, 3) or not np.isfinite(lattice).all():
            raise StructureError(f"{where}lattice must be a finite (3, 3) matrix, got shape {lattice.shape}")
        if abs(np.linalg.det(lattice)) < 1e-6:
            raise StructureError(f"{where}lattice vectors are degenerate (cell volume ~ 0)")
        if positions.ndim != 2 or positions.shape[1] != 3 or not np.isfinite(positions).all():
            raise StructureError(f"{where}positions must be finite and shaped (N, 3), got {positions.shape}")
        if positions.size and np.abs(positions).max() > MAX_FRACTIONAL:
            row = int(np.abs(positions).max(axis=1).argmax())
            raise StructureError(
                f"{where}atom {row} is at fractional {positions[row].tolist()}, "
                f"more than {MAX_FRACTIONAL:g} cells from "
                "the origin; reduce positions into the cell (far out, float64 cannot tell where in the cell an atom is)"
            )
        if numbers.shape != (positions.shape[0],) or not np.issubdtype(numbers.dtype, np.integer):
            raise StructureError(
                f"{where}need one integer atomic number per position; got {numbers.shape} for "
                f"{positions.shape[0]} positions"
            )
        if positions.shape[0] == 0:
            raise StructureError(f"{where}the structure has no atoms")
        if ((numbers < 1) | (numbers > 118)).any():
            raise StructureError(f"{where}atomic numbers must lie in 1-118")
        object.__setattr__(self, "lattice", lattice)
        object.__setattr__(self, "positions", positions)
        object.__setattr__(self, "numbers", numbers.astype(np.int64))

    @property
    def n_atoms(self) -> int:
        return int(self.positions.shape[0])

    @classmethod
    def from_species(
        cls, lattice: Any, species: Any, positions: Any, *, cartesian: bool = False, label: str = ""
    ) -> Cell:
        """From element symbols (``"Na"``) or atomic numbers and positions, fractional or
        Cartesian (Angstrom, in the frame of ``lattice``'s rows).

        >>> Cell.from_species(5.64 * np.eye(3), ["Na", "Cl"], [[0, 0, 0], [2.82, 2.82, 2.82]], cartesian=True).positions
        array([[0. , 0. , 0. ],
               [0.5, 0.5, 0.5]])
        """
        numbers = [atomic_number(s, label) for s in species]
        lattice = np.asarray(lattice, dtype=np.float64)
        positions = np.asarray(positions, dtype=np.float64)
        if cartesian:
            if lattice.shape != (3, 3) or not np.isfinite(lattice).all() or abs(np.linalg.det(lattice)) < 1e-6:
                return cls(lattice, positions, numbers, label)  # the constructor names the problem
            positions = positions @ np.linalg.inv(lattice)
        return cls(lattice, positions, numbers, label)

    def spglib_cell(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.lattice, self.positions, self.numbers

    # -- readers --------------------------------------------------------------------------
    @classmethod
    def from_pymatgen(cls, structure: Any, label: str = "") -> Cell:
        """From a pymatgen ``Structure``; disordered structures are refused."""
        label = label or getattr(structure, "formula", "")
        if not structure.is_ordered:
            site = next(s for s in structure if not s.is_ordered)
            raise StructureError(
                f"structure {label!r} is disordered (site {site.species_string} at "
                f"{np.round(site.frac_coords, 4).tolist()} has partial occupancy); only ordered "
                "structures have a space group to encode"
            )
        return cls(
            lattice=structure.lattice.matrix,
            positions=structure.frac_coords,
            numbers=[site.specie.Z for site in structure],
            label=label,
        )

    @classmethod
    def from_ase(cls, atoms: Any, label: str = "") -> Cell:
        """From an ASE ``Atoms`` object (fully periodic)."""
        if not all(atoms.pbc):
            raise StructureError(
                f"structure {label or atoms.get_chemical_formula()!r} is not periodic in all three directions"
            )
        return cls(
            lattice=atoms.cell.array,
            positions=atoms.get_scaled_positions(wrap=False),
            numbers=atoms.numbers,
            label=label or atoms.get_chemical_formula(),
        )

    @classmethod
    def from_cif(cls, text: str, label: str = "", max_atoms: int | None = None) -> Cell:
        """From CIF text: its first data block with atom sites, expanded by its symmetry
        operations (see :func:`basisdb.cif.read_cif`).  With ``max_atoms``, a CIF whose
        sites times operations could exceed it raises
        :class:`~basisdb.errors.StructureTooLargeError` before anything is expanded.

        >>> text = (  # CIF separates by any whitespace: one line is a whole file
        ...     "data_Cu _cell_length_a 3.61 _cell_length_b 3.61 _cell_length_c 3.61 _cell_angle_alpha 90 "
        ...     "_cell_angle_beta 90 _cell_angle_gamma 90 _space_group_name_H-M_alt 'F m -3 m' "
        ...     "loop_ _atom_site_label _atom_site_fract_x _atom_site_fract_y _atom_site_fract_z Cu1 0 0 0"
        ... )
        >>> Cell.from_cif(text).n_atoms
        4
        """
        crystal = read_cif(text, label=label, max_atoms=max_atoms)
        return cls(crystal.lattice, crystal.positions, crystal.numbers, label)

    @classmethod
    def from_spglib(cls, cell: Any, label: str = "") -> Cell:
        """From spglib's ``(lattice, positions, numbers)`` tuple: lattice rows in Angstrom,
        fractional positions, and atomic numbers (or element symbols)."""
        if len(cell) != 3:
            extra = "; magnetic moments are not used, leave them out" if len(cell) == 4 else ""
            raise StructureError(
                f"a spglib cell is (lattice, positions, numbers), got a {type(cell).__name__} of {len(cell)} "
                f"items{extra}"
            )
        lattice, positions, numbers = cell
        if isinstance(numbers, str) or np.ndim(numbers) != 1:
            raise StructureError(
                f"{label or 'spglib cell'}: numbers must be a list of atomic numbers, one per position, "
                f"got {str(numbers)[:40]!r}"
            )
        if all(isinstance(n, str) for n in numbers):
            return cls.from_species(lattice, numbers, positions, label=label)
        return cls(lattice, positions, numbers, label)

    @classmethod
    def from_any(cls, structure: Any, label: str = "") -> Cell:
        """From any of the ways the ecosystem holds a structure:

        - a :class:`Cell`;
        - a pymatgen ``Structure`` or an ASE ``Atoms`` (subclasses such as pymatgen's
          ``MSONAtoms`` included);
        - spglib's ``(lattice, positions, numbers)`` tuple (see :meth:`from_spglib`);
        - CIF text: a string that starts with ``data_`` or holds a line break (bytes too);
        - a path (``str`` or ``os.PathLike``) to a structure file: CIF with the core's reader,
          any other format (POSCAR, CONTCAR, extended XYZ, ...) as pymatgen or ASE reads it,
          where one is installed (``pip install 'basisdb[structures]'``).

        >>> Cell.from_any(([[4, 0, 0], [0, 4, 0], [0, 0, 4]], [[0, 0, 0]], [29])).numbers
        array([29])
        """
        if isinstance(structure, Cell):
            return structure
        if isinstance(structure, bytes):
            try:
                structure = structure.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise StructureError(f"cannot read {label or 'CIF bytes'}: not UTF-8 text ({exc})") from None
        if isinstance(structure, str) and is_cif_text(structure):
            return cls.from_cif(structure, label=label or _cif_block_name(structure))
        if isinstance(structure, (str, os.PathLike)):
            return cls._from_path(Path(structure), label)
        if isinstance(structure, (tuple, list)) and len(structure) in (3, 4) and _is_matrix(structure[0]):
            return cls.from_spglib(structure, label)
        pymatgen_structure = _loaded_type("pymatgen.core.structure", "IStructure")
        if pymatgen_structure is not None and isinstance(structure, pymatgen_structure):
            return cls.from_pymatgen(structure, label)
        ase_atoms = _loaded_type("ase.atoms", "Atoms")
        if ase_atoms is not None and isinstance(structure, ase_atoms):
            return cls.from_ase(structure, label)
        raise StructureError(
            f"cannot read {label or 'a structure'} from a {type(structure).__module__}.{type(structure).__qualname__}; "
            "pass a pymatgen Structure, an ASE Atoms, a basisdb Cell, a spglib (lattice, positions, numbers) "
            "tuple, CIF text or a structure file's path"
        )

    @classmethod
    def _from_path(cls, path: Path, label: str) -> Cell:
        """A CIF file (by its suffix, or a ``data_`` line) with the core's CIF reader, any other
        structure file with :func:`read_structure_file` (pymatgen or ASE, where installed)."""
        shown = str(path)[:200]  # a file that cannot be read is named by its path, not its label
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise StructureError(
                f"cannot read {shown}: no such file (a string is read as CIF text when it holds a line break "
                "or starts with 'data_', otherwise as a path)"
            ) from None
        except IsADirectoryError:
            raise StructureError(f"cannot read {shown}: it is a folder, not a structure file") from None
        except UnicodeDecodeError as exc:
            if path.suffix.lower() == ".cif":
                raise StructureError(f"cannot read {shown}: not a text file ({exc})") from None
            text = None  # a binary format (an ASE trajectory, say)
        except OSError as exc:  # the reason without the file name again
            raise StructureError(f"cannot read {shown}: {exc.strerror or exc}") from None
        if text is not None and (path.suffix.lower() == ".cif" or _CIF_BLOCK.search(text)):
            return cls.from_cif(text, label=label or path.stem)
        return cls.from_any(read_structure_file(path), label=label or path.stem)

    # -- writers --------------------------------------------------------------------------
    def to_pymatgen(self) -> Any:
        """This cell as a pymatgen ``Structure`` (needs pymatgen).

        >>> Cell(4.05 * np.eye(3), [[0, 0, 0]], [13]).to_pymatgen().formula
        'Al1'
        """
        try:
            from pymatgen.core import Lattice, Structure
        except ImportError:
            raise ImportError("Cell.to_pymatgen needs pymatgen: pip install pymatgen") from None
        return Structure(Lattice(self.lattice), self.numbers.tolist(), self.positions, coords_are_cartesian=False)

    def to_ase(self) -> Any:
        """This cell as a fully periodic ASE ``Atoms`` (needs ASE).

        >>> Cell(4.05 * np.eye(3), [[0, 0, 0]], [13]).to_ase().get_chemical_formula()
        'Al'
        """
        try:
            from ase import Atoms
        except ImportError:
            raise ImportError("Cell.to_ase needs ASE: pip install ase") from None
        return Atoms(numbers=self.numbers, cell=self.lattice, scaled_positions=self.positions, pbc=True)


ELEMENTS = (
    "H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge As Se Br Kr "
    "Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba La Ce Pr Nd Pm Sm Eu Gd Tb Dy Ho Er Tm Yb "
    "Lu Hf Ta W Re Os Ir Pt Au Hg Tl Pb Bi Po At Rn Fr Ra Ac Th Pa U Np Pu Am Cm Bk Cf Es Fm Md No Lr Rf "
    "Db Sg Bh Hs Mt Ds Rg Cn Nh Fl Mc Lv Ts Og"
).split()
_ATOMIC_NUMBERS = {symbol: z for z, symbol in enumerate(ELEMENTS, start=1)}


def atomic_number(species: object, label: str = "") -> int:
    """The atomic number of an element symbol (``"Na"``) or of an integer 1-118."""
    if isinstance(species, str) and species in _ATOMIC_NUMBERS:
        return _ATOMIC_NUMBERS[species]
    if isinstance(species, (int, np.integer)) and not isinstance(species, bool) and 1 <= species <= len(ELEMENTS):
        return int(species)
    where = f"structure {label!r}: " if label else ""
    raise StructureError(
        f"{where}{str(species)[:20]!r} is not an element: use a symbol such as 'Na' or an atomic number 1-118"
    )


def is_cif_text(text: str) -> bool:
    """Whether a string is CIF text rather than a path: a path holds no line break, and a
    one-line string that starts with CIF's ``data_`` block header is text unless a file of
    that name exists (``data_1.cif``)."""
    if "\n" in text or "\r" in text:
        return True
    if not text.lstrip().startswith("data_"):
        return False
    try:
        return not Path(text).exists()
    except (OSError, ValueError):  # too long or holding NUL: not a path
        return True


def _is_matrix(value: object) -> bool:
    """Whether ``value`` looks like a lattice: a 2-dimensional array or nested sequence."""
    try:
        return np.ndim(value) == 2
    except ValueError:  # ragged nesting
        return False


def _cif_block_name(text: str) -> str:
    """The name of the first data block (``data_NaCl`` -> ``NaCl``), for messages."""
    for line in text.lstrip().splitlines()[:200]:
        if line.startswith("data_"):
            return line[5:].strip()
    return "CIF text"


def _loaded_type(module: str, name: str) -> type | None:
    """A class of an optional library, if the library is loaded (an object of that class
    cannot exist otherwise, so there is nothing to import)."""
    return getattr(sys.modules.get(module), name, None)


@dataclass(frozen=True, eq=False)
class Standardization:
    """A structure mapped onto spglib's standardized conventional cell.

    Attributes:
        setting: the setting of the standardized cell (default setting of its type).
        cell: the standardized conventional cell: spglib's idealized lattice, and positions
            that are the group average of the input atoms' images (exactly symmetric).
        transformation_matrix: (3, 3) float64 P with x_std = P x + p (mod 1) for input
            fractional coordinates x; det P < 0 when the input was inverted.
        origin_shift: (3,) float64 p.
        rotation: (3, 3) float64, the rigid rotation spglib applied to idealize the lattice.
        input_to_standardized: (N_input,) int64, the standardized atom at the image of each
            input atom.
        equivalent_atoms: (N_std,) int64, for each standardized atom the first atom of its
            orbit (Wyckoff orbit) under the group.
        wyckoffs: (N_std,) Wyckoff letters of the standardized atoms.
        primitive_atoms: (N_std,) int64, the atom of spglib's primitive cell at each
            standardized atom: two standardized atoms share one exactly when a centring
            translation of the setting maps one onto the other, so each is shared by as many
            standardized atoms as the setting has centring translations (1 when primitive).
        image_targets: (n_operations, N_input) int64, the standardized atom that the image
            under each operation of the setting of each input atom lands on: the group
            average that makes the positions exactly symmetric (:meth:`position_jacobian`).
        symprec: the tolerance used, Angstrom.
        inverted: the cell standardized is the input's mirror image x -> -x (only with
            ``canonical_handedness``, for the second member of an enantiomorphic pair).
        looser_group: the ITA number spglib finds at ten times ``symprec`` when that type
            has a larger point group (a hint that the structure is a distorted version of a
            more symmetric one, or that its noise exceeds ``symprec``), else None.
    """

    setting: Setting
    cell: Cell
    transformation_matrix: np.ndarray = field(repr=False)
    origin_shift: np.ndarray = field(repr=False)
    rotation: np.ndarray = field(repr=False)
    input_to_standardized: np.ndarray = field(repr=False)
    equivalent_atoms: np.ndarray = field(repr=False)
    wyckoffs: tuple[str, ...] = field(repr=False)
    primitive_atoms: np.ndarray = field(repr=False)
    image_targets: np.ndarray = field(repr=False)
    symprec: float = DEFAULT_SYMPREC
    inverted: bool = False
    looser_group: int | None = None

    def position_jacobian(self) -> np.ndarray:
        """(N_std, N_input, 3, 3) float64: the derivative of each standardized atom's
        fractional position with respect to each input atom's fractional position.

        A standardized atom is the mean of the images ``R_g (P x_i + p) + t_g`` that land on
        it (:attr:`image_targets`), so its derivative is the mean of ``R_g P`` over them, for
        spglib's transformation and origin held fixed.  The map is affine wherever the
        assignment of images to atoms stays the same, which it does for any motion that keeps
        the atoms within ``symprec`` of their places.  (spglib may move the origin with the
        atoms along polar axes, a shift of every atom alike, which the frames of
        :mod:`basisdb.frames` remove: the features do not depend on it.)"""
        n_std, n_input = self.cell.n_atoms, self.image_targets.shape[1]
        per_operation = self.setting.rotations.astype(np.float64) @ self.transformation_matrix  # (n_ops, 3, 3)
        jacobian = np.zeros((n_std * n_input, 3, 3))
        flat = (self.image_targets * n_input + np.arange(n_input)).ravel()
        np.add.at(jacobian, flat, np.repeat(per_operation, n_input, axis=0))
        counts = np.bincount(self.image_targets.ravel(), minlength=n_std).astype(np.float64)
        return jacobian.reshape(n_std, n_input, 3, 3) / counts[:, None, None, None]


def standardize(
    structure: Any,
    *,
    symprec: float = DEFAULT_SYMPREC,
    angle_tolerance: float = -1.0,
    canonical_handedness: bool = False,
) -> Standardization:
    """Detect the space group of ``structure`` and standardize it into the default setting.

    ``structure`` is anything :meth:`Cell.from_any` reads: a :class:`Cell`, a pymatgen
    ``Structure``, an ASE ``Atoms``, a spglib ``(lattice, positions, numbers)`` tuple, CIF
    text or a CIF file path.  ``symprec`` is spglib's distance tolerance in Angstrom.

    With ``canonical_handedness``, a crystal whose type is the second member of an
    enantiomorphic pair (P4_3 of P4_1/P4_3, P3_221 of P3_121/P3_221, ...) is replaced by its
    mirror image x -> -x before standardizing, so that a crystal and its mirror image give
    the same standardization up to the Euclidean normalizer (see :mod:`basisdb.frames`).
    """
    cell = Cell.from_any(structure)
    _check_symprec(symprec)
    _check_overlaps(cell)
    dataset = _symmetry_dataset(cell, symprec, angle_tolerance)
    inverted = False
    if canonical_handedness and enantiomorphic_partner(int(dataset.number)) < int(dataset.number):
        inverted = True
        dataset = _symmetry_dataset(
            Cell(cell.lattice, -cell.positions, cell.numbers, cell.label), symprec, angle_tolerance
        )
    setting = get_setting(hall=int(dataset.hall_number))
    transformation = np.asarray(dataset.transformation_matrix, dtype=np.float64) * (-1.0 if inverted else 1.0)
    sources = cell.positions @ transformation.T + dataset.origin_shift
    positions, image_targets = _symmetrize(
        sources,
        cell.numbers,
        dataset.std_positions,
        np.asarray(dataset.std_types),
        np.asarray(dataset.std_lattice),
        setting,
        cell.label,
    )
    std = Cell(lattice=dataset.std_lattice, positions=positions, numbers=dataset.std_types, label=cell.label)
    equivalent_atoms, wyckoffs = _standardized_orbits(dataset)
    return Standardization(
        setting=setting,
        cell=std,
        transformation_matrix=transformation,
        origin_shift=np.asarray(dataset.origin_shift, dtype=np.float64),
        rotation=np.asarray(dataset.std_rotation_matrix, dtype=np.float64),
        input_to_standardized=image_targets[_identity_operation(setting)],
        equivalent_atoms=equivalent_atoms,
        wyckoffs=wyckoffs,
        primitive_atoms=np.asarray(dataset.std_mapping_to_primitive, dtype=np.int64),
        image_targets=image_targets,
        symprec=float(symprec),
        inverted=inverted,
        looser_group=_looser_group(cell, symprec, setting.group),
    )


def _standardized_orbits(dataset) -> tuple[np.ndarray, tuple[str, ...]]:
    """For each atom of the standardized cell: the first standardized atom of its orbit, and
    its Wyckoff letter, taken from the input's symmetry search through the primitive cell
    both map to (a second search on the standardized cell costs as much as the first)."""
    of_input = np.asarray(dataset.mapping_to_primitive)
    first_input = np.empty(of_input.max() + 1, dtype=np.int64)
    first_input[of_input[::-1]] = np.arange(len(of_input))[::-1]
    source = first_input[np.asarray(dataset.std_mapping_to_primitive)]  # an input atom per standardized atom
    orbit = np.asarray(dataset.equivalent_atoms, dtype=np.int64)[source]
    _, first, inverse = np.unique(orbit, return_index=True, return_inverse=True)
    return first[inverse].astype(np.int64), tuple(dataset.wyckoffs[i] for i in source)


_LOOSER_FACTOR = 10.0


def _looser_group(cell: Cell, symprec: float, group: int) -> int | None:
    """The ITA number spglib finds at ``_LOOSER_FACTOR * symprec`` when that type has a
    larger point group than ``group`` (found at ``symprec``), else None."""
    try:
        loose = int(_symmetry_dataset(cell, symprec * _LOOSER_FACTOR, -1.0).number)
    except StructureError:
        return None
    return loose if get_setting(loose).point_group_order > get_setting(group).point_group_order else None


def _check_overlaps(cell: Cell) -> None:
    """Refuse two atoms closer than MIN_ATOM_DISTANCE (one site given twice), found with a
    periodic k-d tree in fractional coordinates and checked in Cartesian distance."""
    from scipy.spatial import cKDTree

    if cell.n_atoms < 2:
        return
    lattice = cell.lattice
    heights = abs(np.linalg.det(lattice)) / np.linalg.norm(np.cross(lattice[[1, 2, 0]], lattice[[2, 0, 1]]), axis=1)
    reach = min(0.5, MIN_ATOM_DISTANCE / heights.min())  # no closer pair is further apart on any axis
    fractional = cell.positions - np.floor(cell.positions)
    fractional[fractional >= 1.0] = 0.0
    pairs = cKDTree(fractional, boxsize=1.0).query_pairs(reach, p=np.inf, output_type="ndarray")
    if not len(pairs):
        return
    delta = fractional[pairs[:, 0]] - fractional[pairs[:, 1]]
    delta -= np.rint(delta)
    shifts = np.stack(np.meshgrid(*[np.arange(-1, 2)] * 3, indexing="ij"), axis=-1).reshape(-1, 3)
    distances = np.linalg.norm((delta[:, None, :] + shifts) @ lattice, axis=-1).min(axis=1)
    closest = int(distances.argmin())
    if distances[closest] < MIN_ATOM_DISTANCE:
        i, j = pairs[closest]
        raise StructureError(
            f"{cell.label or 'structure'}: atoms {i} and {j} are {distances[closest]:.3g} A apart, less than "
            f"{MIN_ATOM_DISTANCE} A: one site given twice (remove the duplicate)"
        )


def _check_symprec(symprec: object) -> None:
    if (
        isinstance(symprec, bool)
        or not isinstance(symprec, (int, float, np.integer, np.floating))
        or not (np.isfinite(symprec) and symprec > 0)
    ):
        raise StructureError(f"symprec must be a positive number (Angstrom), got {symprec!r}")


def _symmetry_dataset(cell: Cell, symprec: float, angle_tolerance: float):
    try:
        dataset = quiet_spglib(
            spglib.get_symmetry_dataset, cell.spglib_cell(), symprec=symprec, angle_tolerance=angle_tolerance
        )
    except Exception as exc:  # spglib >= 2.8 raises SpglibError
        dataset = None
        reason = str(exc)
    else:
        reason = "no symmetry found"
    if dataset is None:
        raise StructureError(
            f"spglib could not determine the space group of {cell.label or 'the structure'} "
            f"with symprec={symprec}: {reason}; try a larger symprec"
        )
    return dataset


def _nearest_of_species(
    points: np.ndarray, point_species: np.ndarray, atoms: np.ndarray, species: np.ndarray, lattice: np.ndarray
) -> np.ndarray:
    """(P,) int64: for each point, the atom of its species nearest to it in Cartesian
    distance, periodically (-1 where the species has no atom).

    A periodic k-d tree in fractional coordinates proposes the few nearest candidates, and
    the Cartesian distance decides among them, so skewed cells are handled: O(P log M)
    instead of comparing every point with every atom."""
    from scipy.spatial import cKDTree

    wrap = lambda y: np.where((y := y - np.floor(y)) >= 1.0, 0.0, y)  # noqa: E731 - the tree needs [0, 1)
    nearest = np.full(len(points), -1, dtype=np.int64)
    for value in np.unique(point_species):
        members = np.flatnonzero(species == value)
        rows = np.flatnonzero(point_species == value)
        if len(members) == 0:
            continue
        k = min(4, len(members))
        _, candidates = cKDTree(wrap(atoms[members]), boxsize=1.0).query(wrap(points[rows]), k=k)
        candidates = candidates.reshape(len(rows), k)
        delta = points[rows, None, :] - atoms[members][candidates]
        delta -= np.rint(delta)
        best = np.linalg.norm(delta @ lattice, axis=-1).argmin(axis=1)
        nearest[rows] = members[candidates[np.arange(len(rows)), best]]
    return nearest


def _symmetrize(
    sources: np.ndarray,
    source_numbers: np.ndarray,
    reference: np.ndarray,
    numbers: np.ndarray,
    lattice: np.ndarray,
    setting: Setting,
    label: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Exactly symmetric positions for the standardized atoms ``reference``: each becomes
    the mean of all images g(s) of the input atoms ``sources`` (already in the
    standardized frame) that land on it, over every operation g (the group average).

    spglib idealizes positions from one representative atom per orbit, so its result
    depends on the input's atom order within the input's noise; summing over every input
    atom and every operation does not.

    Returns the positions and, for each operation and source atom, the standardized atom
    its image lands on.
    """
    x = np.asarray(reference, dtype=np.float64)
    images = (
        np.einsum("oij,mj->omi", setting.rotations.astype(np.float64), sources)
        + setting.fractional_translations[:, None, :]
    ).reshape(-1, 3)
    image_species = np.tile(source_numbers, setting.n_operations)
    targets = _nearest_of_species(images, image_species, x, numbers, lattice)
    delta = images - x[targets]
    delta -= np.rint(delta)
    worst = float(np.linalg.norm(delta @ lattice, axis=-1).max()) if (targets >= 0).all() else np.inf
    counts = np.bincount(np.maximum(targets, 0), minlength=len(x)).astype(np.float64)
    if worst > 1.0 or (counts == 0).any():
        raise StructureError(
            f"{label or 'structure'}: cannot match the input atoms to the standardized cell "
            f"(worst mismatch {worst:.3g} A); try another symprec"
        )
    total = np.zeros_like(x)
    np.add.at(total, targets, delta)
    symmetric = np.mod(x + total / counts[:, None], 1.0)
    symmetric[symmetric == 1.0] = 0.0  # -1e-17 mod 1 rounds to 1.0
    return symmetric, targets.reshape(setting.n_operations, -1)


def _identity_operation(setting: Setting) -> int:
    return int(
        np.flatnonzero(
            (setting.rotations == np.eye(3, dtype=np.int8)).all(axis=(1, 2)) & (setting.translations == 0).all(axis=1)
        )[0]
    )


# a CIF data block's header at the start of a line
_CIF_BLOCK = re.compile(r"^\s*data_", re.MULTILINE)


def read_structure_file(path: str | os.PathLike) -> Any:
    """The structure in a file that is not CIF: pymatgen's ``Structure.from_file`` first
    (POSCAR, CONTCAR, ``*.vasp``, pymatgen JSON, ...), then ASE's ``ase.io.read`` (extended
    XYZ, and every other format ASE knows; the last image of a file of several), each as that
    library decides by the file's name and content, where it is installed.
    :class:`StructureError` names the file and what each reader said, or the extra that
    installs them (``basisdb[structures]``) when neither is installed."""
    import warnings

    path = Path(path)
    if not path.is_file():
        raise StructureError(f"cannot read {path}: {'it is a folder' if path.is_dir() else 'no such file'}")
    reasons, missing = [], []
    with warnings.catch_warnings():  # the readers' notes on rounding, occupancies, missing tags
        warnings.simplefilter("ignore")
        try:
            from pymatgen.core import Structure
        except ImportError:
            missing.append("pymatgen")
        else:
            try:
                return Structure.from_file(str(path))
            except Exception as exc:  # the readers raise every kind of error; all mean "not this reader"
                reasons.append(f"pymatgen: {_one_line(exc)}")
        try:
            import ase.io
        except ImportError:
            missing.append("ASE")
        else:
            try:
                return ase.io.read(str(path))
            except Exception as exc:
                reasons.append(f"ASE: {_one_line(exc)}")
    if len(missing) == 2:
        raise StructureError(
            f"cannot read {path.name}: it is not CIF, and other formats (POSCAR, extended XYZ, ...) are read by "
            "pymatgen or ASE, neither of which is installed: pip install 'basisdb[structures]'"
        )
    raise StructureError(
        f"neither {' nor '.join(r.split(':')[0] for r in reasons)} reads {path.name} ({'; '.join(reasons)})"
    )


def _one_line(exc: Exception, limit: int = 200) -> str:
    text = " ".join(str(exc).split())
    text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
