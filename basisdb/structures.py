"""Crystal structures and their standardization into the store's settings (spglib).

Both clients of the store need this: the service's structure endpoint and the model's
input pipeline.  A :class:`Cell` is the plain (lattice, fractional positions, atomic
numbers) triple; :func:`standardize` maps it onto spglib's standardized conventional cell,
whose setting is the default setting (smallest Hall number) of its space-group type, the
one the store builds by default.

pymatgen is needed only to read CIF text and pymatgen objects (``pip install
'basisdb[service]'`` or ``'basisdb[model]'``); ASE objects are read directly.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import spglib

from .errors import StructureError
from .settings import TRANSLATION_DENOMINATOR, Setting, get_setting, quiet_spglib

__all__ = ["Cell", "Standardization", "standardize", "DEFAULT_SYMPREC"]

DEFAULT_SYMPREC = 1e-3


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

    def spglib_cell(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.lattice, self.positions, self.numbers

    # -- readers --------------------------------------------------------------------------
    @classmethod
    def from_pymatgen(cls, structure: Any, label: str = "") -> "Cell":
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
    def from_ase(cls, atoms: Any, label: str = "") -> "Cell":
        """From an ASE ``Atoms`` object (fully periodic)."""
        if not all(atoms.pbc):
            raise StructureError(f"structure {label or atoms.get_chemical_formula()!r} is not periodic in all three directions")
        return cls(
            lattice=atoms.cell.array,
            positions=atoms.get_scaled_positions(wrap=False),
            numbers=atoms.numbers,
            label=label or atoms.get_chemical_formula(),
        )

    @classmethod
    def from_cif(cls, text: str, label: str = "") -> "Cell":
        """From CIF text (the first data block); parser messages are passed on."""
        parser_module = _pymatgen("CIF")
        try:
            with warnings.catch_warnings():  # pymatgen's notes on rounding and occupancies
                warnings.simplefilter("ignore", UserWarning)
                structures = parser_module.CifParser.from_str(text).parse_structures(primitive=False)
        except Exception as exc:  # pymatgen raises many kinds for a bad file
            raise StructureError(f"cannot parse CIF {label!r}: {exc}".replace(" '':", ":")) from None
        if not structures:
            raise StructureError(f"CIF {label!r} holds no structure")
        return cls.from_pymatgen(structures[0], label=label)

    @classmethod
    def from_dict(cls, data: dict, label: str = "") -> "Cell":
        """From a pymatgen ``Structure.as_dict()`` dictionary."""
        _pymatgen("a structure dictionary")
        from pymatgen.core import Structure

        try:
            structure = Structure.from_dict(data)
        except Exception as exc:
            raise StructureError(f"not a pymatgen structure dictionary: {type(exc).__name__}: {exc}") from None
        return cls.from_pymatgen(structure, label=label)

    @classmethod
    def from_any(cls, structure: Any, label: str = "") -> "Cell":
        """From a :class:`Cell`, a pymatgen ``Structure``, an ASE ``Atoms`` or a CIF file path."""
        if isinstance(structure, Cell):
            return structure
        if isinstance(structure, (str, os.PathLike)):
            path = Path(structure)
            try:
                text = path.read_text()
            except OSError as exc:
                raise StructureError(f"cannot read {path}: {exc}") from None
            return cls.from_cif(text, label=label or path.stem)
        kind = type(structure).__module__.split(".")[0]
        if kind == "pymatgen":
            return cls.from_pymatgen(structure, label)
        if kind == "ase":
            return cls.from_ase(structure, label)
        raise StructureError(
            f"cannot read a structure from {type(structure).__name__}; pass a pymatgen "
            "Structure, an ASE Atoms, a basisdb Cell or a CIF file path"
        )


def _pymatgen(what: str):
    try:
        from pymatgen.io import cif
    except ImportError:
        raise StructureError(f"reading {what} needs pymatgen: pip install 'basisdb[service]'") from None
    return cif


@dataclass(frozen=True, eq=False)
class Standardization:
    """A structure mapped onto spglib's standardized conventional cell.

    Attributes:
        setting: the setting of the standardized cell (default setting of its type).
        cell: the standardized conventional cell: spglib's idealized lattice, and positions
            that are the group average of the input atoms' images (exactly symmetric).
        transformation_matrix: (3, 3) float64 P with x_std = P x + p (mod 1) for input
            fractional coordinates x.
        origin_shift: (3,) float64 p.
        rotation: (3, 3) float64, the rigid rotation spglib applied to idealize the lattice.
        input_to_standardized: (N_input,) int64, the standardized atom at the image of each
            input atom.
        equivalent_atoms: (N_std,) int64, for each standardized atom the first atom of its
            orbit (Wyckoff orbit) under the group.
        wyckoffs: (N_std,) Wyckoff letters of the standardized atoms.
        symprec: the tolerance used.
    """

    setting: Setting
    cell: Cell
    transformation_matrix: np.ndarray = field(repr=False)
    origin_shift: np.ndarray = field(repr=False)
    rotation: np.ndarray = field(repr=False)
    input_to_standardized: np.ndarray = field(repr=False)
    equivalent_atoms: np.ndarray = field(repr=False)
    wyckoffs: tuple[str, ...] = field(repr=False)
    symprec: float = DEFAULT_SYMPREC


def standardize(structure: Any, *, symprec: float = DEFAULT_SYMPREC, angle_tolerance: float = -1.0) -> Standardization:
    """Detect the space group of ``structure`` and standardize it into the default setting.

    ``structure`` is a :class:`Cell`, a pymatgen ``Structure`` or an ASE ``Atoms``.
    """
    cell = Cell.from_any(structure)
    if not (np.isfinite(symprec) and symprec > 0):
        raise StructureError(f"symprec must be a positive number (Angstrom), got {symprec!r}")
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
    setting = get_setting(hall=int(dataset.hall_number))
    sources = cell.positions @ np.asarray(dataset.transformation_matrix).T + dataset.origin_shift
    positions, input_to_standardized = _symmetrize(
        sources, cell.numbers, dataset.std_positions, np.asarray(dataset.std_types), np.asarray(dataset.std_lattice), setting, cell.label
    )
    std = Cell(lattice=dataset.std_lattice, positions=positions, numbers=dataset.std_types, label=cell.label)
    std_dataset = quiet_spglib(spglib.get_symmetry_dataset, std.spglib_cell(), symprec=symprec)
    return Standardization(
        setting=setting,
        cell=std,
        transformation_matrix=np.asarray(dataset.transformation_matrix, dtype=np.float64),
        origin_shift=np.asarray(dataset.origin_shift, dtype=np.float64),
        rotation=np.asarray(dataset.std_rotation_matrix, dtype=np.float64),
        input_to_standardized=input_to_standardized,
        equivalent_atoms=np.asarray(std_dataset.equivalent_atoms, dtype=np.int64),
        wyckoffs=tuple(std_dataset.wyckoffs),
        symprec=float(symprec),
    )


def _symmetrize(
    sources: np.ndarray, source_numbers: np.ndarray, reference: np.ndarray, numbers: np.ndarray,
    lattice: np.ndarray, setting: Setting, label: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Exactly symmetric positions for the standardized atoms ``reference``: each becomes
    the mean of all images g(s) of the input atoms ``sources`` (already in the
    standardized frame) that land on it, over every operation g (the group average).

    spglib idealizes positions from one representative atom per orbit, so its result
    depends on the input's atom order within the input's noise; summing over every input
    atom and every operation does not.

    Returns the positions and, for each source atom, the standardized atom it lands on.
    """
    x = np.asarray(reference, dtype=np.float64)
    images = (np.einsum("oij,mj->omi", setting.rotations.astype(np.float64), sources) + setting.fractional_translations[:, None, :]).reshape(-1, 3)
    image_species = np.tile(source_numbers, setting.n_operations)
    total = np.zeros_like(x)
    counts = np.zeros(len(x))
    targets = np.empty(len(images), dtype=np.int64)
    worst = 0.0
    chunk = max(1, (1 << 22) // max(1, len(x)))
    for start in range(0, len(images), chunk):
        block = images[start : start + chunk]
        delta = block[:, None, :] - x[None, :, :]
        delta -= np.rint(delta)
        distance = np.linalg.norm(delta @ lattice, axis=-1)
        distance[image_species[start : start + chunk, None] != numbers[None, :]] = np.inf
        target = distance.argmin(axis=1)
        rows = np.arange(len(block))
        worst = max(worst, float(distance[rows, target].max()))
        np.add.at(total, target, delta[rows, target])
        np.add.at(counts, target, 1.0)
        targets[start : start + chunk] = target
    if worst > 1.0 or (counts == 0).any():
        raise StructureError(
            f"{label or 'structure'}: cannot match the input atoms to the standardized cell "
            f"(worst mismatch {worst:.3g} A); try another symprec"
        )
    symmetric = np.mod(x + total / counts[:, None], 1.0)
    symmetric[symmetric == 1.0] = 0.0  # -1e-17 mod 1 rounds to 1.0
    identity = np.flatnonzero((setting.rotations == np.eye(3, dtype=np.int8)).all(axis=(1, 2)) & (setting.translations == 0).all(axis=1))[0]
    return symmetric, targets.reshape(setting.n_operations, -1)[identity]


def origin_shifts(standardization: Standardization) -> np.ndarray:
    """(F, 3) origin shifts s such that the atoms at ``positions + s`` are an equally valid
    standardization of the same crystal, in the same setting.

    spglib's standardization is unique only up to the affine normalizer of the group: rock
    salt can come back with Cl at the origin instead of Na, and a polar group (P1, P2, P4mm,
    ...) allows any shift along its polar axes.  Averaging a G-invariant model over these
    frames makes it invariant to the choice, so the same crystal gets the same answer
    whatever origin, cell or atom order it was given in.

    The frames are (a) the translations of the normalizer on the 1/24 grid that map the
    group onto itself, counted modulo the centring translations, with zero polar component;
    and (b) along the polar axes, the shifts that put each atom of the rarest species (ties:
    the heaviest) at polar coordinate 0.  Both are found with exact integer arithmetic on
    the operations; only (b) uses atom coordinates.
    """
    setting = standardization.setting
    polar = _polar_axes(setting)
    discrete = _normalizer_translations(setting, polar) / TRANSLATION_DENOMINATOR
    numbers = standardization.cell.numbers
    species, counts = np.unique(numbers, return_counts=True)
    rarest = species[np.lexsort((-species, counts))[0]]
    anchors = standardization.cell.positions[numbers == rarest]
    anchor_shifts = np.where(polar, -anchors, 0.0) if polar.any() else np.zeros((1, 3))
    shifts = (discrete[:, None, :] + anchor_shifts[None, :, :]).reshape(-1, 3)
    return shifts - np.floor(shifts)


def _polar_axes(setting: Setting) -> np.ndarray:
    """(3,) bool: the axes along which every operation leaves coordinates unchanged up to
    translation (R e_j = e_j for all R), i.e. continuous origin freedom."""
    identity = np.eye(3, dtype=np.int64)
    polar = (setting.rotations == identity).all(axis=(0, 1))
    # In every default setting the polar subspace is spanned by coordinate axes.
    rank = np.linalg.matrix_rank(np.concatenate(list(identity - setting.rotations.astype(np.int64))))
    if 3 - rank != polar.sum():
        raise StructureError(f"polar subspace of {setting.hall_symbol} is not along coordinate axes")
    return polar


def _normalizer_translations(setting: Setting, polar: np.ndarray) -> np.ndarray:
    """(S, 3) int: shifts s (numerators over TRANSLATION_DENOMINATOR, polar components 0)
    with s + G - s = G, one per class modulo the centring translations."""
    d = TRANSLATION_DENOMINATOR
    axes = [np.arange(d) if not p else np.array([0]) for p in polar]
    candidates = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)  # (C, 3)
    rotations = setting.rotations.astype(np.int64)
    translations = setting.translations  # (n, 3) in 24ths
    # Operation (R, t) becomes (R, t + (I - R) s) after moving the origin by -s.
    moved = (translations[None] + np.einsum("oij,cj->coi", np.eye(3, dtype=np.int64) - rotations, candidates)) % d
    # Membership test: encode (rotation class, translation) as integers.
    _, rotation_class = np.unique(rotations.reshape(len(rotations), -1), axis=0, return_inverse=True)
    rotation_class = rotation_class.ravel()
    keys = rotation_class * d**3 + translations @ np.array([d * d, d, 1])
    table = np.zeros((rotation_class.max() + 1) * d**3, dtype=bool)
    table[keys] = True
    moved_keys = rotation_class[None] * d**3 + moved @ np.array([d * d, d, 1])
    allowed = candidates[table[moved_keys].all(axis=1)]
    # Centring translations are operations with R = I: shifts differing by one give the
    # same configuration up to a symmetry of the group, so keep one per class.
    is_identity = (rotations == np.eye(3, dtype=np.int64)).all(axis=(1, 2))
    centring = translations[is_identity]
    classes = ((allowed[:, None, :] + centring[None]) % d) @ np.array([d * d, d, 1])
    canonical = classes.min(axis=1)
    _, first = np.unique(canonical, return_index=True)
    return allowed[np.sort(first)]
